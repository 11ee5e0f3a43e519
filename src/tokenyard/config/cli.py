"""``tokenyard config check FILE``: validate a config file and say what is wrong, by key path."""

from __future__ import annotations

import click

from tokenyard.config.errors import ConfigError
from tokenyard.config.loader import ConfigFileError, load_config

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
    """
    try:
        config = load_config(file)
    except ConfigFileError as error:
        click.echo(error.format(), err=True)
        raise SystemExit(EXIT_UNREADABLE) from None
    except ConfigError as error:
        click.echo(error.format(), err=True)
        click.echo(f"{file}: {len(error.issues)} error(s)", err=True)
        raise SystemExit(EXIT_INVALID) from None
    click.echo(
        f"ok: {len(config.models)} models, {len(config.classes)} classes, "
        f"{len(config.tenants)} tenants, {len(config.keys)} keys"
    )
