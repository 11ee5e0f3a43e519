"""The `tokenyard` command line: subcommands only.

Each subcommand lives in the module of the area that owns it and is imported only when it is run, so
`tokenyard --help` stays fast and no area's import cost (matplotlib, redis, ...) is paid by another.
To add a command, add one line to ``COMMANDS``: name -> "module:attribute" of a click command.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (import path "module:attr", one-line help shown in `tokenyard --help`)
    "sim": ("tokenyard.sim.cli:command", "Simulated model server, retrieval or tool service, or a fleet."),
    "serve": ("tokenyard.gateway.cli:serve_command", "Run the gateway."),
    "config": ("tokenyard.config.cli:config_group", "Validate configuration files."),
    "demo": ("tokenyard.demo:command", "Simulated fleet + gateway + workload, on embedded defaults."),
    "bench": ("tokenyard.bench.cli:command", "Workload generator and SLO report."),
    "chaos": ("tokenyard.chaos.cli:chaos_group", "Transport chaos proxy and network-namespace scenarios."),
    "keys": ("tokenyard.security.cli:keys_group", "Create, list and revoke API keys in the key store."),
    "policy": ("tokenyard.security.cli:policy_group", "Export the east-west allow-list (CiliumNetworkPolicy)."),
    "pipeline": ("tokenyard.pipeline.cli:pipeline_group", "Streaming-first pipeline workers."),
    "plan": ("tokenyard.plan.cli:command",
             "Capacity planner: replicas, tokens and cost per model to hold each class's SLO."),
}


MAX_PORT = 65535


def port_type() -> click.IntRange:
    """The type of every port option: 0..65535, where 0 picks a free port (the range config files use)."""
    return click.IntRange(0, MAX_PORT)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the table's help text so `--help` imports nothing.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tokenyard")
def cli() -> None:
    """tokenyard: an LLM traffic-engineering gateway."""


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="tokenyard")
