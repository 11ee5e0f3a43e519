"""``tokenyard config check FILE``: validate a config file and say what is wrong, by key path."""

from __future__ import annotations

from typing import NoReturn

import click

from tokenyard.config.errors import ConfigError
from tokenyard.config.loader import ConfigFileError, load_config
from tokenyard.config.paths import check_paths

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


@click.group("config")
def config_group() -> None:
    """Validate configuration files."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
def check_command(file: str) -> None:
    """Validate FILE: prints a summary and exits 0, or prints each error as KEY.PATH: message and exits 1.

    Exits 2 when FILE cannot be read or is not valid YAML. ${ENV} references are resolved from the environment.
    The files the config names are checked too (TLS and JWKS files exist, log and key store directories exist,
    an existing key store is SQLite), without creating or changing any.
    """
    try:
        config = load_config(file)
        problems = check_paths(config)
        if problems:
            raise ConfigError(problems)
    except ConfigError as error:
        exit_with(file, error)
    click.echo(
        f"ok: {len(config.models)} models, {len(config.classes)} classes, "
        f"{len(config.tenants)} tenants, {len(config.keys)} keys"
    )


def exit_with(file: str, error: ConfigError) -> NoReturn:
    """Report ``error`` as ``config check`` does and exit: 2 for an unreadable file or bad YAML (one line), 1 for
    an invalid config (one ``KEY.PATH: message`` line per issue, then a count). Shared by every command that
    reads a gateway config file, so they all report the same way."""
    click.echo(error.format(), err=True)
    if isinstance(error, ConfigFileError):
        raise SystemExit(EXIT_UNREADABLE) from None
    click.echo(f"{file}: {len(error.issues)} error(s)", err=True)
    raise SystemExit(EXIT_INVALID) from None
