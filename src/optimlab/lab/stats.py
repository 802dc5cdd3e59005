"""Summary statistics over seeds: means, 95% confidence intervals, significance."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
