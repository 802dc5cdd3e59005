"""The ``optimlab`` command line: parses arguments into specs and calls the library."""

from __future__ import annotations

import importlib
import sys

import typer

from .errors import UserError

app = typer.Typer(
    help="optimlab: compare gradient-descent optimizers on the seeds' experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each feature module defines register(app), which adds its commands. Add one line per module.
COMMAND_MODULES: list[str] = [
    "optimlab.lab.cli_compare",
    "optimlab.lab.cli_tune",
    "optimlab.lab.cli_surface",
    "optimlab.lab.cli_bench",
    "optimlab.lab.claims.cli",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=True)
    except UserError as e:
        typer.echo(f"optimlab: error: {e}", err=True)
        sys.exit(2)
