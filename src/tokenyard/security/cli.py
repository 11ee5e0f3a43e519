"""`tokenyard keys ...` and `tokenyard policy export ...`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from typing import Any

import click

from tokenyard.config.cli import exit_with
from tokenyard.config.errors import ConfigError
from tokenyard.config.loader import load_eastwest
from tokenyard.security.cilium import dump_manifests, render_policies
from tokenyard.security.eastwest import EastWestPolicy, PolicyRule
from tokenyard.security.keystore import KeyRecord, KeyStoreError, SqliteKeyStore
from tokenyard.state import StateUnavailable, open_state

DEFAULT_STORE = "tokenyard-keys.db"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _store_option(func: Any) -> Any:
    return click.option(
        "--store",
        default=lambda: os.environ.get("TOKENYARD_KEYSTORE", DEFAULT_STORE),
        show_default=f"$TOKENYARD_KEYSTORE or {DEFAULT_STORE}",
        help="SQLite key store file.",
    )(func)


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d`` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 15m, 12h or 30d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _describe(record: KeyRecord, now: float) -> str:
    models = ",".join(record.models) if record.models is not None else "*"
    classes = ",".join(record.classes) if record.classes is not None else "*"
    routes = ",".join(record.routes) if record.routes is not None else "*"
    return (f"{record.key_id}\t{record.name}\t{record.tenant}\t{record.status(now)}\t"
            f"models={models}\tclasses={classes}\troutes={routes}\tsha256={record.key_sha256[:12]}")


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys (stored hashed; the plaintext is shown once)."""


@keys_group.command("create")
@_store_option
@click.option("--tenant", required=True, help="Tenant the key belongs to.")
@click.option("--name", default=None, help="Unique name (default: tenant-timestamp).")
@click.option("--models", default=None, help="Comma-separated models the key may call (default: all).")
@click.option("--classes", default=None, help="Comma-separated traffic classes it may ask for.")
@click.option("--expires-in", default=None, help="Lifetime such as 30d or 12h (default: never).")
@click.option("--daily-tokens", type=click.IntRange(min=1), default=None, help="Token budget per day.")
@click.option("--monthly-tokens", type=click.IntRange(min=1), default=None, help="Token budget per month.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, help="Tokens per minute.")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=None, help="Concurrent requests.")
@click.option("--routes", default=None,
              help="Comma-separated route globs it may call, such as /v1/retrieve,/v1/tools/* (default: all).")
def create(store: str, tenant: str, name: str | None, models: str | None, classes: str | None,
           expires_in: str | None, daily_tokens: int | None, monthly_tokens: int | None,
           rpm: int | None, tpm: int | None, max_concurrency: int | None, routes: str | None) -> None:
    """Issue a key; prints its id and the plaintext key (shown only this once)."""
    route_list = _csv(routes)
    for pattern in route_list or ():
        if not pattern.startswith("/"):
            raise click.BadParameter(f"route pattern {pattern!r} must start with '/'", param_hint="--routes")
    try:
        plaintext, record = SqliteKeyStore(store).create(
            tenant, name=name, models=_csv(models), classes=_csv(classes),
            expires_in_s=parse_duration(expires_in) if expires_in else None,
            daily_token_budget=daily_tokens, monthly_token_budget=monthly_tokens, rpm=rpm, tpm=tpm,
            routes=route_list, max_concurrency=max_concurrency,
        )
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {record.key_id} ({record.name}) for tenant {record.tenant}")
    click.echo(plaintext)


@keys_group.command("list")
@_store_option
def list_keys(store: str) -> None:
    """List keys (id, name, tenant, status, scope, digest prefix); never the keys themselves."""
    try:
        records = SqliteKeyStore(store).list()
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    now = time.time()
    for record in records:
        click.echo(_describe(record, now))


@keys_group.command("revoke")
@_store_option
@click.option("--state", default=lambda: os.environ.get("TOKENYARD_STATE", "memory"),
              show_default="$TOKENYARD_STATE or memory",
              help="The gateways' shared state (a redis:// URL): they are told to reload at once.")
@click.argument("key")
def revoke(store: str, state: str, key: str) -> None:
    """Revoke KEY (its id or name); gateways reading the store stop accepting it within a second."""
    try:
        record = SqliteKeyStore(store).revoke(key)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {record.key_id} ({record.name})")
    if state != "memory":
        try:
            asyncio.run(_announce(state))
        except (StateUnavailable, OSError, ValueError) as exc:
            click.echo(f"warning: could not broadcast the revocation ({exc}); gateways still see it at their "
                       "next poll", err=True)


async def _announce(state_url: str) -> None:
    from tokenyard.security.service import KEYS_CHANNEL

    state = open_state(state_url)
    try:
        await state.publish(KEYS_CHANNEL, b"reload")
    finally:
        await state.aclose()


@click.group("policy")
def policy_group() -> None:
    """East-west policy tools."""


@policy_group.command("export")
@click.option("--cilium", "fmt", flag_value="cilium", required=True, help="Render CiliumNetworkPolicy YAML.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="A YAML file with an `eastwest:` section (a gateway config or a policy file).")
def export(fmt: str, path: str) -> None:
    """Render the east-west allow-list; warnings go to stderr.

    The file is read as ``tokenyard config check`` reads it (``${ENV}`` substituted, every key checked) and
    errors are reported the same way, with the same exit codes: 1 for an invalid file, 2 for unreadable YAML.
    """
    try:
        section = load_eastwest(path)
    except ConfigError as error:
        exit_with(path, error)
    if section is None:
        exit_with(path, ConfigError([("eastwest", f"no `eastwest:` section in {path}, nothing to export")]))
    rules = [PolicyRule(name=rule.name or f"rule-{index}", identities=rule.identities, models=rule.models,
                        routes=rule.routes, tools=rule.tools, selector=dict(rule.selector))
             for index, rule in enumerate(section.rules)]
    manifests, warnings = render_policies(
        EastWestPolicy(rules),
        gateway_labels=dict(section.gateway.labels),
        port=section.gateway.port,
        namespace=section.gateway.namespace,
    )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    sys.stdout.write(dump_manifests(manifests))
