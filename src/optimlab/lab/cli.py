"""The ``optimlab`` command line: parses arguments into specs and calls the library."""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from .._version import __version__
from .errors import UserError

app = typer.Typer(
    help="optimlab: compare gradient-descent optimizers on the seeds' experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"optimlab {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    )] = False,
) -> None:
    """optimlab: compare gradient-descent optimizers on the seeds' experiments."""


# Each feature module defines register(app), which adds its commands. Add one line per module.
COMMAND_MODULES: list[str] = [
    "optimlab.lab.cli_compare",
    "optimlab.lab.cli_tune",
    "optimlab.lab.cli_surface",
    "optimlab.lab.cli_bench",
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
