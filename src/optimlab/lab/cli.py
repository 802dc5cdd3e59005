"""The ``optimlab`` command line: each feature's command module parses its options, calls the
library and presents the result; this module gathers them and turns user mistakes into one line
and exit code 2."""

from __future__ import annotations

import errno
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Annotated

import typer

from .._version import __version__
from ..bench import cli as bench_cli
from .compare import cli as compare_cli
from .console import console
from .errors import Terminated, UserError
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

#: click's base of the errors it raises for bad command lines (typer may vendor click, so the
#: class is found through typer's public BadParameter rather than imported by module name)
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

#: what to do about an operating-system error, by errno
_OS_HINTS = {
    errno.ENOSPC: "free some space, then run the same command with --resume",
    errno.EDQUOT: "free some space, then run the same command with --resume",
    errno.EROFS: "the folder cannot be written: choose another --out",
    errno.EACCES: "choose a folder you can write, e.g. another --out",
    errno.EPERM: "choose a folder you can write, e.g. another --out",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder: give a file name",
}


def describe_os_error(e: OSError) -> str:
    """One line for an operating-system error: what, where, and what to do."""
    what = e.strerror or str(e) or type(e).__name__
    where = f" ({e.filename})" if e.filename else ""
    hint = _OS_HINTS.get(e.errno or 0)
    return f"{what}{where}" + (f"; {hint}" if hint else "")


def fail(message: str, code: int = 2) -> None:
    """Print ``optimlab: error: MESSAGE`` as one line on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    typer.echo(f"optimlab: error: {line}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point, and the CLI's one error boundary.

    Every expected failure becomes one line on stderr and exit code 2: a bad command line
    (click's usage errors), a :class:`UserError` (bad value, missing or bad data, bad
    checkpoint, foreign or busy output folder) and an ``OSError`` (full disk, read-only or
    unwritable folder), with what to do where there is a remedy. Anything else is a bug and
    keeps its traceback.
    """
    previous = signal.signal(signal.SIGTERM, _terminate) if _in_main_thread() else None
    try:
        code = app(args=None if argv is None else list(argv), prog_name="optimlab",
                   standalone_mode=False)
    except Terminated:  # a command that does not stop cleanly on its own
        sys.exit(Terminated.exit_code)
    except UserError as e:
        fail(str(e))
    except _CLICK_ERROR as e:
        message = e.format_message()  # type: ignore[attr-defined]
        if not message.strip():  # a group called without a command: its help was printed
            sys.exit(2)
        fail(message)
    except OSError as e:
        fail(describe_os_error(e))
    except MemoryError:
        fail("Out of memory; try smaller sizes (--batch-size, --seeds, --jobs)")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else 0)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM: the first stops the command like Ctrl-C, at its next consistent point; a
    second ends the process at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated
