"""`tokenyard chaos ...`: the TCP chaos proxy and the network-namespace harness's checks."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from tokenyard.chaos.faults import DirectionFaults, Faults, FaultsInvalid
from tokenyard.cli import port_type


def parse_target(value: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; raises ValueError with a readable message."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def faults_from_options(direction: str, **fields: Any) -> Faults:
    """Build the proxy's faults from command-line values applied to ``direction`` (up, down or both)."""
    one = DirectionFaults(**fields)
    issues = one.validate()
    if issues:
        raise FaultsInvalid(issues)
    none = DirectionFaults()
    return Faults(
        up=one if direction in ("up", "both") else none,
        down=one if direction in ("down", "both") else none,
    )


@click.group("chaos")
def chaos_group() -> None:
    """Transport chaos: a TCP fault-injecting proxy, and network-namespace labs (root)."""


@chaos_group.command("proxy")
@click.option("--listen-host", default="127.0.0.1", show_default=True)
@click.option("--listen-port", type=port_type(), default=0, show_default=True, help="0 picks a free port.")
@click.option("--target", required=True, help="HOST:PORT to forward to.")
@click.option("--direction", type=click.Choice(["up", "down", "both"]), default="both", show_default=True,
              help="up: client->server, down: server->client.")
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--jitter-ms", type=float, default=0.0, show_default=True, help="latency +/- this, order kept.")
@click.option("--bandwidth-kbps", type=float, default=0.0, show_default=True, help="kilobits/s; 0 = uncapped.")
@click.option("--slice-bytes", type=int, default=0, show_default=True, help="write in segments of N bytes.")
@click.option("--slice-delay-ms", type=float, default=1.0, show_default=True)
@click.option("--probability", type=float, default=1.0, show_default=True,
              help="chance per connection that latency/jitter/bandwidth/slicing apply.")
@click.option("--reset-prob", type=float, default=0.0, show_default=True, help="chance per connection of RST.")
@click.option("--reset-after-bytes", type=int, default=0, show_default=True)
@click.option("--blackhole-prob", type=float, default=0.0, show_default=True)
@click.option("--close-after-bytes", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--api-port", type=port_type(), default=0, show_default=True, help="control API port; 0 picks one.")
def proxy_command(
    listen_host: str,
    listen_port: int,
    target: str,
    direction: str,
    seed: int,
    api_port: int,
    **fault_fields: Any,
) -> None:
    """Forward TCP to TARGET with faults; change them at run time over the HTTP API (GET/POST /faults)."""
    try:
        host, port = parse_target(target)
        faults = faults_from_options(direction, **fault_fields)
    except FaultsInvalid as exc:
        raise click.BadParameter(str(exc)) from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from exc
    from tokenyard.runtime import run

    try:
        run(_serve_proxy(host, port, faults, seed, listen_host, listen_port, api_port))
    except ListenError as exc:  # a port in use: one line, as serve and sim say it
        click.echo(f"error: {exc.option}: cannot listen: {exc.reason}", err=True)
        sys.exit(1)


class ListenError(Exception):
    """The proxy or its API could not listen on the port the option named."""

    def __init__(self, option: str, exc: OSError) -> None:
        super().__init__(option)
        self.option = option
        self.reason = exc.strerror or str(exc)


async def _serve_proxy(
    host: str, port: int, faults: Faults, seed: int, listen_host: str, listen_port: int, api_port: int
) -> None:
    from tokenyard.chaos.api import ApiServer
    from tokenyard.chaos.proxy import ChaosProxy
    from tokenyard.runtime import wait_for_shutdown

    proxy = ChaosProxy(host, port, faults, seed=seed, listen_host=listen_host, listen_port=listen_port)
    api = ApiServer(proxy, listen_host, api_port)
    try:
        await proxy.start()
    except OSError as exc:
        raise ListenError("--listen-port", exc) from exc
    try:
        try:
            await api.start()
        except OSError as exc:
            await api.close()  # closes whatever it opened before the bind failed
            raise ListenError("--api-port", exc) from exc
        try:
            click.echo(f"tokenyard chaos proxy listening on http://{listen_host}:{proxy.port}")
            click.echo(f"tokenyard chaos api listening on {api.url}")
            click.echo(f"forwarding to {host}:{port}", err=True)
            await wait_for_shutdown()
        finally:
            await api.close()
    finally:
        await asyncio.shield(proxy.close())


@chaos_group.group("netns")
def netns_group() -> None:
    """Network-namespace labs (root only): veth hosts, nftables loss, PMTU blackholes, tbf bandwidth."""


@netns_group.command("check")
def netns_check_command() -> None:
    """Report which namespace faults this machine supports; exits 1 when the harness cannot run at all."""
    from tokenyard.chaos.netns import probe_capabilities

    caps = probe_capabilities()
    for name, (ok, detail) in caps.items():
        click.echo(f"{name:<10} {'yes' if ok else 'no ':<4} {detail}")
    if not caps["netns"][0]:
        raise SystemExit(1)
