"""The ``optimlab`` command line: parses arguments into specs and calls the library."""

from __future__ import annotations

import errno
import importlib
import sys
from collections.abc import Sequence

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
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)

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
    try:
        code = app(args=None if argv is None else list(argv), prog_name="optimlab",
                   standalone_mode=False)
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
    sys.exit(code if isinstance(code, int) else 0)
