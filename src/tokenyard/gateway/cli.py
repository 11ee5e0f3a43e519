"""``tokenyard serve``: run the gateway until SIGINT/SIGTERM."""

from __future__ import annotations

import errno
import sys
from typing import NoReturn

import click

from tokenyard import runtime
from tokenyard.cli import port_type
from tokenyard.config import ConfigError, GatewayConfig, config_for_upstream, load_config, override_listen
from tokenyard.config.paths import check_paths
from tokenyard.config.server import BUSY_POLL_MAX_US
from tokenyard.security.keystore import KeyStoreError
from tokenyard.telemetry.tracing import check_tracing_extra


def resolve_config(config_path: str | None, upstream: str | None, host: str | None, port: int | None,
                   busy_poll_us: int | None = None) -> GatewayConfig:
    """The config ``serve`` runs: a file, or ``--upstream`` alone; ``--host``/``--port``/``--busy-poll-us``
    override the listener's."""
    if config_path is not None and upstream is not None:
        raise click.UsageError("give either --config or --upstream, not both")
    if config_path is None and upstream is None:
        raise click.UsageError("give --config FILE or --upstream URL")
    try:
        if upstream is not None:
            config = config_for_upstream(upstream, host or "127.0.0.1", 8080 if port is None else port)
            return config if busy_poll_us is None else override_listen(config, busy_poll_us=busy_poll_us)
        assert config_path is not None
        # Re-checked, not just replaced: moving a config without credentials off loopback is refused.
        config = override_listen(load_config(config_path), host, port, busy_poll_us)
        check_tracing_extra(config.telemetry)  # the tracing extra is missing: one clear error, before starting
    except ConfigError as exc:
        lines = "\n".join(f"  {path or '<root>'}: {message}" for path, message in exc.issues)
        raise click.ClickException(f"invalid configuration:\n{lines}") from exc
    # Files named by a valid config (TLS, logs, key store) are checked before anything starts, so a bad path is
    # one line naming its key, not a traceback from deep in start-up.
    problems = check_paths(config)
    if problems:
        _fail_config(problems)
    return config


def _fail_config(issues: list[tuple[str, str]]) -> NoReturn:
    for path, message in issues:
        click.echo(f"error: {path}: {message}", err=True)
    sys.exit(2)


def start_failure(config: GatewayConfig, exc: OSError) -> str:
    """One line for an OS error at start-up, naming the listener when it is a bind that failed."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and "bind" in text:
        admin = config.admin.listen if config.admin is not None else None
        key = "admin.listen" if admin is not None and f", {admin.port})" in text else "listen"
        return f"error: {key}: cannot listen: {text}"
    return f"error: cannot start the gateway: {exc}"


async def serve(config: GatewayConfig) -> None:
    from tokenyard.gateway.app import start_gateway, stop_gateway

    running = await start_gateway(config)
    print(f"tokenyard serve listening on {running.base_url}", flush=True)
    try:
        await runtime.wait_for_shutdown()
    finally:
        await stop_gateway(running)


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--host", default=None, help="Listen address (default: the config's, or 127.0.0.1).")
@click.option("--port", type=port_type(), default=None, help="Listen port; 0 picks a free one (printed).")
@click.option("--upstream", default=None, help="Front this one OpenAI-compatible server (base URL).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Gateway processes sharing the port (SO_REUSEPORT); share limits with state: redis://.")
@click.option("--busy-poll-us", type=click.IntRange(0, BUSY_POLL_MAX_US), default=None,
              help="Poll instead of sleeping for this long after each request starts and each response: "
                   "lower latency for CPU while traffic flows (the config's listen.busy_poll_us; 0: off).")
def serve_command(config_path: str | None, host: str | None, port: int | None, upstream: str | None,
                  workers: int, busy_poll_us: int | None) -> None:
    """Run the gateway."""
    config = resolve_config(config_path, upstream, host, port, busy_poll_us)
    if workers > 1:
        from tokenyard.gateway.workers import WorkerStartError, supervise

        try:
            runtime.run(supervise(config, workers))
        except WorkerStartError as exc:  # a worker's own one-line reason (a port in use, a bad TLS file)
            click.echo(exc.line, err=True)
            sys.exit(exc.code)
        except OSError as exc:  # the supervisor's reservation of the port
            click.echo(start_failure(config, exc), err=True)
            sys.exit(1)
    else:
        try:
            runtime.run(serve(config))
        except KeyStoreError as exc:  # the file changed since the check, or cannot be written
            _fail_config([("key_store.path", str(exc))])
        except OSError as exc:  # a port in use, as `tokenyard sim` reports it: one line, exit 1
            click.echo(start_failure(config, exc), err=True)
            sys.exit(1)
    sys.stdout.flush()
