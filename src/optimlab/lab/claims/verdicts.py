"""The decision rules of a claim: from a measured interval and a threshold to a verdict.

A check measures one quantity with a confidence interval (:class:`~optimlab.lab.stats.Interval`)
and applies one :class:`Test`:

* ``above``: the claim says the quantity exceeds ``hold``. It **holds** when the whole interval
  lies above ``hold``; it **does not hold** when the whole interval lies below ``fail``
  (``fail >= hold``: an effect smaller than ``fail`` is too small to count as the claim); it is
  **inconclusive** otherwise. ``above(0, 0)`` is the two-sided test of a difference; a
  non-inferiority claim ("at least matches, within m") is ``above(-m, -m)``.
* ``within``: the claim says the quantity is within ``±margin`` of 0 (equivalence). It holds when
  the interval lies inside ``(-margin, margin)``, does not hold when it lies wholly outside, and
  is inconclusive otherwise.

A claim with several checks holds when every check holds, does not hold when any does not hold,
and is inconclusive otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..stats import Interval

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)


@dataclass(frozen=True)
class Test:
    """A threshold test on a measured interval (see the module docstring)."""

    kind: str  # "above" | "within"
    hold: float = 0.0
    fail: float = 0.0
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("above", "within"):
            raise ValueError(f"Invalid test kind: {self.kind!r} (expected 'above' or 'within')")
        if self.kind == "above" and self.fail < self.hold:
            raise ValueError(f"Invalid test: fail {self.fail} below hold {self.hold}")
        if self.kind == "within" and not self.margin > 0:
            raise ValueError(f"Invalid margin: {self.margin!r} (expected > 0)")

    def decide(self, interval: Interval) -> str:
        low, high = interval.low, interval.high
        if math.isnan(low) or math.isnan(high):
            return INCONCLUSIVE
        if self.kind == "above":
            if low > self.hold:
                return HOLDS
            if high < self.fail:
                return DOES_NOT_HOLD
            return INCONCLUSIVE
        if -self.margin < low and high < self.margin:
            return HOLDS
        if low > self.margin or high < -self.margin:
            return DOES_NOT_HOLD
        return INCONCLUSIVE


def above(hold: float, fail: float | None = None) -> Test:
    """Holds when the interval lies above ``hold``; fails when it lies below ``fail``."""
    return Test("above", hold=hold, fail=hold if fail is None else fail)


def within(margin: float) -> Test:
    """Holds when the interval lies inside ``(-margin, margin)``."""
    return Test("within", margin=margin)


def combine(verdicts: Sequence[str]) -> str:
    """All hold: holds; any does not hold: does not hold; otherwise inconclusive."""
    if any(v == DOES_NOT_HOLD for v in verdicts):
        return DOES_NOT_HOLD
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return INCONCLUSIVE
