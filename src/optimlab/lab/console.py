"""The terminal, for the command line only (the library never prints)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def console(stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); 140 columns when piped or logged (``make demo``,
    CI), where rich's 80-column default would fold every spec."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, highlight=False, width=140)
    return out
