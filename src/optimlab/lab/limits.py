"""Upper bounds on the sizes a user can type, as data, and the checks that name them.

Beyond these a command cannot finish on any machine, or its plan alone fills the memory
(``--seeds 30000000`` builds 30 million run specs before the first epoch): such a value is a
typing mistake and gets one line naming the option, the value and the bound. Numbers and specs
as text are bounded too, so that a string of thousands of digits fails as a value, not inside
``int()``.
"""

from __future__ import annotations

from typing import Any

from .errors import UserError

#: the largest value of each count the lab accepts, by the name its option and messages use
LIMITS: dict[str, int] = {
    "seeds": 10_000,
    "seed": 2**63 - 1,
    "epochs": 1_000_000,
    "steps": 100_000_000,
    "batch_size": 2**31 - 1,
    "jobs": 1_024,
    "nproc": 1_024,
    "threads": 1_024,
    "workers": 1_024,
    "budget": 1_000_000,
    "heartbeat_interval": 86_400,
    "grace_period": 864_000,
    "max_retry": 1_000,
    "frames": 100_000,
    "params": 10_000_000_000,
    "tensors": 100_000,
    "repeats": 10_000,
    # optimlab claims
    "tune_seeds": 10_000,
    "replicates": 1_000,
    "grid_points": 10_000,
    "starts": 1_000_000,
    "points_per_decade": 10_000,
    "surface_steps": 100_000_000,
}

#: the longest texts accepted: one number, and one optimizer spec or schedule
MAX_NUMBER_CHARS = 64
MAX_SPEC_CHARS = 2_000


def short(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters for a message (a spec may be thousands long)."""
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def bound(label: str) -> int | None:
    """The bound of the count a message calls ``label`` (``"--nproc"``, ``"number of seeds"``,
    ``"batch size"``...), or None for a count without one."""
    key = label.strip().lstrip("-").removeprefix("number of ").replace(" ", "_").replace("-", "_")
    return LIMITS.get(key)


def check_count(label: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int from ``minimum`` to ``bound(label)``.

    Raises:
        UserError: not a whole number (bools are refused), below ``minimum`` or above the bound,
            naming ``label``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        shown = short(repr(value)) if isinstance(value, str) else short(str(value))
        raise UserError(f"Invalid {label} {shown} (expected a whole number >= {minimum})")
    limit = bound(label)
    if limit is not None and value > limit:
        raise UserError(f"Invalid {label} {short(str(value))} (at most {limit:,})")
    return value


def parse_count(label: str, text: str, *, minimum: int = 1) -> int:
    """A count written as text (ASCII digits only), checked by :func:`check_count`."""
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit():
        raise UserError(f"Invalid {label} {short(text)!r} (expected a whole number >= {minimum})")
    limit = bound(label)
    if limit is not None and len(digits.lstrip("0")) > len(str(limit)):
        raise UserError(f"Invalid {label} {short(digits)} (at most {limit:,})")
    return check_count(label, int(digits), minimum=minimum)
