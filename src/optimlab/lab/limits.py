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

#: the largest value of each count the lab accepts
LIMITS: dict[str, int] = {
    "seeds": 10_000,
    "epochs": 1_000_000,
    "steps": 100_000_000,
    "batch_size": 2**31 - 1,
    "jobs": 1_024,
    "nproc": 1_024,
    "threads": 1_024,
    "workers": 1_024,
    "budget": 1_000_000,
    "frames": 100_000,
    "params": 10_000_000_000,
    "tensors": 100_000,
    "repeats": 10_000,
}

#: the longest texts accepted: one number, and one optimizer spec or schedule
MAX_NUMBER_CHARS = 64
MAX_SPEC_CHARS = 2_000


def short(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters for a message (a spec may be thousands long)."""
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def check_count(name: str, value: Any, *, minimum: int = 1, option: str | None = None) -> int:
    """``value`` as an int in ``minimum .. LIMITS[name]``.

    Raises:
        UserError: not a whole number (bools are refused), below ``minimum`` or above the bound.
    """
    shown = option or name.replace("_", " ")
    limit = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"Invalid {shown} {value!r} (expected a whole number >= {minimum})")
    if value < minimum:
        raise UserError(f"Invalid {shown} {value} (expected a whole number >= {minimum})")
    if value > limit:
        raise UserError(f"Invalid {shown} {short(str(value))} (at most {limit:,})")
    return value


def parse_count(name: str, text: str, *, minimum: int = 1, option: str | None = None) -> int:
    """A count written as text (ASCII digits only), checked by :func:`check_count`."""
    shown = option or name.replace("_", " ")
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit():
        raise UserError(f"Invalid {shown} {short(text)!r} (expected a whole number >= {minimum})")
    if len(digits.lstrip("0")) > len(str(LIMITS[name])):
        raise UserError(f"Invalid {shown} {short(digits)} (at most {LIMITS[name]:,})")
    return check_count(name, int(digits), minimum=minimum, option=option)
