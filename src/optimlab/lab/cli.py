"""The ``optimlab`` command line: each feature's command module parses its options, calls the
library and presents the result; this module gathers them and turns user mistakes into one line
and exit code 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .._version import __version__
from ..bench import cli as bench_cli
from .compare import cli as compare_cli
from .console import console
from .errors import UserError
from .surface import cli as surface_cli
from .tune import cli as tune_cli

app = typer.Typer(
    help="optimlab: compare gradient-descent optimizers on the seeds' experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LIST_CHOICES = ("tasks", "optimizers")


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


@app.command("list")
def list_command(
    what: Annotated[str, typer.Argument(help="tasks or optimizers")],
) -> None:
    """List the tasks, or the optimizers with their conventions."""
    from rich.markup import escape
    from rich.table import Table

    from ..optim import available, convention_defaults, conventions, entry
    from .spec import format_value
    from .tasks import get_task, task_names

    out = console()
    if what == "tasks":
        table = Table(header_style="bold")
        for col in ("task", "description", "epochs", "batch", "default optimizers"):
            table.add_column(col)
        for name in task_names():
            try:
                t = get_task(name)
            except UserError as e:  # a package's entry point that does not load
                table.add_row(name, f"[red]cannot load: {escape(str(e))}[/red]", "", "", "")
                continue
            table.add_row(name, escape(t.description), str(t.epochs), str(t.batch_size),
                          escape(", ".join(t.optimizers)))
        out.print(table)
    elif what == "optimizers":
        table = Table(header_style="bold")
        for col in ("optimizer", "description", "conventions (defaults that differ from pytorch)"):
            table.add_column(col)
        for name in available():
            lines = []
            for conv in conventions():
                values = convention_defaults(conv, name)
                shown = ", ".join(f"{k}={format_value(v)}" for k, v in values.items()) or "as pytorch"
                lines.append(f"@{conv}: {shown}" if conv != "pytorch" else "@pytorch: torch.optim defaults")
            table.add_row(name, entry(name).summary, "\n".join(lines))
        out.print(table)
    else:
        raise UserError(f"Cannot list {what!r} (expected one of {', '.join(LIST_CHOICES)})")


compare_cli.register(app)
tune_cli.register(app)
surface_cli.register(app)
bench_cli.register(app)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=True)
    except UserError as e:
        typer.echo(f"optimlab: error: {e}", err=True)
        sys.exit(2)
