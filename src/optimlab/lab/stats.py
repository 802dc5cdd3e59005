"""Summary statistics over seeds: means, medians, confidence intervals, significance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean (Student's t, n-1 dof).

    ``nan`` for fewer than two values: one seed gives no interval.
    """
    n = len(values)
    if n < 2:
        return math.nan
    m = mean(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    from scipy import stats  # imported on first use: it takes seconds

    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have equal means (nan if n < 2)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a[0] == b[0] else 0.0
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (step-down, family-wise error).

    With the m finite p-values sorted ascending ``p_(1) <= ... <= p_(m)``::

        p_adj_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))

    Rejecting every hypothesis with ``p_adj <= alpha`` controls the family-wise error rate at
    ``alpha`` (Holm 1979, "A simple sequentially rejective multiple test procedure"). ``nan``
    entries (no test possible) stay ``nan`` and do not count in ``m``.
    """
    finite = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(finite)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Interval:
    """An estimate with a confidence interval ``[low, high]`` of the stated (achieved) level."""

    estimate: float
    low: float
    high: float
    level: float  # the coverage the interval achieves (may fall short of the one asked for)
    n: int

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (False when the interval is undefined)."""
        return not (math.isnan(self.low) or math.isnan(self.high)) and (
            value < self.low or value > self.high
        )

    def format(self, spec: str = ".4g") -> str:
        """``"0.912 [0.905, 0.918]"``; ``inf`` reads ``inf``, an undefined bound ``n/a``."""

        def one(x: float) -> str:
            return "n/a" if math.isnan(x) else format(x, spec)

        return f"{one(self.estimate)} [{one(self.low)}, {one(self.high)}]"


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean with its Student-t confidence interval (n-1 dof); bounds ``nan`` for n < 2."""
    n = len(values)
    m = mean(values)
    if n < 2:
        return Interval(m, math.nan, math.nan, level, n)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(m, m - half, m + half, level, n)


def median_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The median with a distribution-free confidence interval from order statistics.

    With ``x_(1) <= ... <= x_(n)`` the interval ``[x_(k), x_(n-k+1)]`` covers the population
    median with probability ``1 - 2 * P(B <= k - 1)``, ``B ~ Binomial(n, 1/2)`` (no assumption on
    the distribution). The largest ``k`` whose coverage reaches ``level`` is used; when even
    ``[x_(1), x_(n)]`` falls short (n <= 5 for 95%), that range is returned with the coverage it
    achieves (``Interval.level``). Values may be ``inf`` (e.g. "target not reached"): the order
    statistics stay defined. ``nan`` is rejected.
    """
    if any(math.isnan(v) for v in values):
        raise ValueError("median_interval: nan among the values (drop undefined values first)")
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, level, 0)
    mid = n // 2
    median = xs[mid] if n % 2 else _midpoint(xs[mid - 1], xs[mid])
    k, coverage = 1, _order_coverage(n, 1)
    while k + 1 <= (n + 1) // 2 and _order_coverage(n, k + 1) >= level:
        k += 1
        coverage = _order_coverage(n, k)
    return Interval(median, xs[k - 1], xs[n - k], coverage, n)


def _midpoint(a: float, b: float) -> float:
    return a if a == b else (a + b) / 2


def _order_coverage(n: int, k: int) -> float:
    from scipy import stats

    return 1.0 - 2.0 * float(stats.binom.cdf(k - 1, n, 0.5))
