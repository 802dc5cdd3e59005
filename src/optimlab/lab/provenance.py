"""What produced a result: the command, the versions, the machine and the source commit.

:func:`collect` returns a JSON-ready dict that every results store records next to its results
and that reports show, with the command that reproduces the run. Nothing in it is secret: callers
pass the command with any password already masked.
"""

from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from . import pages
from .device import cpu_name, device_name

#: the keys of :func:`collect`, in display order, with their labels
LABELS: dict[str, str] = {
    "command": "command",
    "date": "started",
    "optimlab": "optimlab",
    "torch": "torch",
    "python": "Python",
    "platform": "platform",
    "device": "device",
    "device_name": "device name",
    "cpu": "CPU",
    "threads": "torch threads",
    "git_commit": "git commit",
}


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as a shell line, ``optimlab`` first (``sys.argv`` by default)."""
    args = list(sys.argv if argv is None else argv)
    return shlex.join(["optimlab", *args[1:]])


def command_for(command: str, options: Mapping[str, Any], repeated: Collection[str] = ()) -> str:
    """The shell line of ``optimlab COMMAND`` with keyword ``options`` as its flags, for a run
    started from Python: None and False are left out, True is a bare flag, parsed specs and
    schedules are written as their labels, sequences joined with commas (one flag per item for
    the keys in ``repeated``)."""
    args = ["optimlab", command]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)) and key in repeated:
            for v in value:
                args += [flag, _label(v)]
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(_label(v) for v in value)]
        else:
            args += [flag, _label(value)]
    return shlex.join(args)


def _label(value: Any) -> str:
    return value.label() if hasattr(value, "label") else str(value)


def git_commit(package_dir: Path | None = None) -> str | None:
    """The commit of the source checkout optimlab runs from (``-dirty`` when tracked files
    changed), or None for an installed package or when git is missing."""
    package_dir = package_dir or Path(__file__).resolve().parents[1]
    root = package_dir.parent.parent  # <root>/src/optimlab
    if not (root / ".git").exists() or not (root / "pyproject.toml").is_file():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def collect(command: str | None = None, device: torch.device | str | None = None) -> dict[str, Any]:
    """The provenance of a run started now by ``command`` on ``device`` (default: the CPU)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return {
        "command": command if command is not None else command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "optimlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(dev),
        "device_name": device_name(dev),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }


def display_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` pairs of a provenance record for a report, known keys first."""
    rows = [(label, _text(record[key])) for key, label in LABELS.items() if key in record]
    rows += [(key, _text(value)) for key, value in record.items() if key not in LABELS]
    return rows


def _text(value: Any) -> str:
    return "–" if value is None else str(value)


def provenance_section(records: Sequence[dict[str, Any]], *, extra: Sequence[tuple[str, str]] = (),
                       command: str | None = None, note: str = "") -> str:
    """A report's "how this was made" block (:func:`optimlab.lab.pages.provenance_section`):
    the command that began the run (or ``command``) to reproduce it, then the first record's
    versions, machine and date, and ``extra`` rows; later records (``--resume``) are listed by
    their command and device."""
    first = records[0] if records else {}
    rows = [(label, text) for label, text in display_rows(first) if label != "command"] + list(extra)
    resumed = "; ".join(f"{r.get('command', '')} on {r.get('device', '?')}" for r in records[1:])
    notes = [n for n in (note, f"Resumed by: {resumed}." if resumed else "") if n]
    return pages.provenance_section(rows, command if command is not None else first.get("command"),
                                    note=" ".join(notes))
