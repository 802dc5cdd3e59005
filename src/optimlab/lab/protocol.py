"""How a comparison is measured: the tuning budget, tuning noise and time-to-target.

Three measurements that a defensible optimizer comparison needs beyond a mean over seeds:

* **Expected best score as a function of the tuning budget** (Dodge et al. 2019, "Show Your
  Work: Improved Reporting of Experimental Results"). Given the scores of the ``N`` trials a study
  ran, the expected best score of a study that had run only ``n`` of them. An optimizer whose
  curve rises late needs many trials; one whose curve is flat is easy to tune.
* **Tuning noise** (Sivaprasad et al. 2020, "Optimizer Benchmarking Needs to Account for
  Hyperparameter Tuning"; Choi et al. 2019). The best trial of a study is itself a random
  quantity: another sampler seed would have drawn other trials. :func:`tuning_gap` resamples each
  study's trials and says whether one optimizer's best beats another's beyond that noise.
* **Time-to-target** (AlgoPerf, Dahl et al. 2023, "Benchmarking Neural Network Training
  Algorithms"). A run evaluated at a fixed interval of steps reaches a declared target at the
  first evaluation at or past it; a run that never does is "not reached in N steps", which is
  kept distinct from any number.

Scores are "higher is better" unless a function says otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .stats import Interval, median_interval

__all__ = [
    "Crossing",
    "CrossingSummary",
    "ExpectedBest",
    "TuningGap",
    "best_of_n",
    "expected_best",
    "expected_best_curve",
    "summarize_crossings",
    "time_to_target",
    "tuning_gap",
]


# ---- the expected best score of n trials --------------------------------------------------------
@dataclass(frozen=True)
class ExpectedBest:
    """The best score of ``n`` trials: its expectation and standard deviation."""

    n: int
    mean: float
    std: float


def _checked(scores: Sequence[float]) -> list[float]:
    xs = [float(s) for s in scores]
    if not xs:
        raise ValueError("no scores (a study needs at least one complete trial)")
    if any(math.isnan(x) for x in xs):
        raise ValueError("nan among the scores (only complete trials have a score)")
    return sorted(xs)


def best_of_n(scores: Sequence[float], n: int, *, replacement: bool = False
              ) -> tuple[list[float], list[float]]:
    """The distribution of the best of ``n`` trials drawn from the observed ``scores``.

    With the ``N`` scores sorted, ``v_(1) <= ... <= v_(N)``, the best of ``n`` is ``v_(i)`` with
    probability::

        without replacement (n <= N):  C(i-1, n-1) / C(N, n)
        with replacement:              (i/N)^n - ((i-1)/N)^n

    Without replacement it is the best of a uniformly chosen ``n``-subset of the trials that ran:
    its mean is the unbiased estimate (a U-statistic) of the expected best of ``n`` independent
    trials. With replacement it is the best of ``n`` draws from the empirical distribution, the
    form Dodge et al. 2019 give (it extends past ``N``). Equal scores are merged.

    Returns:
        ``(values, probabilities)``: distinct values ascending and their probabilities.

    Raises:
        ValueError: no scores, a ``nan`` score, ``n < 1``, or ``n > N`` without replacement.
    """
    xs = _checked(scores)
    big_n = len(xs)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"Invalid n: {n!r} (expected a whole number >= 1)")
    if not replacement and n > big_n:
        raise ValueError(f"Invalid n: {n} (expected at most the {big_n} trials without replacement)")
    if replacement:
        probs = [(i / big_n) ** n - ((i - 1) / big_n) ** n for i in range(1, big_n + 1)]
    else:
        total = math.comb(big_n, n)
        probs = [math.comb(i - 1, n - 1) / total for i in range(1, big_n + 1)]
    values: list[float] = []
    merged: list[float] = []
    for v, p in zip(xs, probs):
        if values and values[-1] == v:
            merged[-1] += p
        else:
            values.append(v)
            merged.append(p)
    return values, merged


def expected_best(scores: Sequence[float], n: int, *, replacement: bool = False,
                  higher_is_better: bool = True) -> ExpectedBest:
    """Mean and standard deviation of the best of ``n`` trials (see :func:`best_of_n`).

    With ``higher_is_better=False`` (losses) the best is the lowest score.
    """
    sign = 1.0 if higher_is_better else -1.0
    values, probs = best_of_n([sign * s for s in scores], n, replacement=replacement)
    m = sum(p * v for v, p in zip(values, probs))
    var = max(0.0, sum(p * (v - m) ** 2 for v, p in zip(values, probs)))
    return ExpectedBest(n, sign * m, math.sqrt(var))


def expected_best_curve(scores: Sequence[float], max_n: int | None = None, *,
                        replacement: bool = False, higher_is_better: bool = True
                        ) -> list[ExpectedBest]:
    """:func:`expected_best` for ``n = 1 .. max_n`` (default: the number of scores)."""
    top = len(scores) if max_n is None else max_n
    return [expected_best(scores, n, replacement=replacement, higher_is_better=higher_is_better)
            for n in range(1, top + 1)]


# ---- tuning noise -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuningGap:
    """How much optimizer ``a``'s best trial beats ``b``'s, and how sure that is.

    ``observed`` is ``max(a) - max(b)``; ``[low, high]`` is the central ``level`` interval of the
    same difference when each study's trials are drawn again (with replacement, as many as it
    ran); ``prob_a_better`` is the probability that ``a``'s redrawn best exceeds ``b``'s.
    """

    observed: float
    low: float
    high: float
    level: float
    prob_a_better: float

    @property
    def separated(self) -> bool:
        """``a`` is better than ``b`` beyond tuning noise: the interval lies above 0."""
        return self.low > 0

    @property
    def reversed(self) -> bool:
        """``b`` is better than ``a`` beyond tuning noise: the interval lies below 0."""
        return self.high < 0


def tuning_gap(a: Sequence[float], b: Sequence[float], *, level: float = 0.95) -> TuningGap:
    """Whether the best trial of study ``a`` beats that of study ``b`` beyond tuning noise.

    Each study is redrawn as a bootstrap sample of its own trials (``N_a`` draws from ``a``, ``N_b``
    from ``b``, with replacement): a study run again with another sampler seed would have found
    other trials. The best of each redrawn study follows :func:`best_of_n` with replacement, so the
    distribution of the difference of the two bests is computed exactly (no random resampling:
    the same scores always give the same answer).

    A study whose best trial is a lucky outlier has a wide interval: its redrawn best is often a
    lesser trial. An optimizer is "better beyond tuning noise" when the interval's lower bound is
    above 0 (:attr:`TuningGap.separated`).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"Invalid level: {level!r} (expected 0 < level < 1)")
    va, pa = best_of_n(a, len(a), replacement=True)
    vb, pb = best_of_n(b, len(b), replacement=True)
    gaps: dict[float, float] = {}
    better = 0.0
    for x, px in zip(va, pa):
        for y, py in zip(vb, pb):
            gaps[x - y] = gaps.get(x - y, 0.0) + px * py
            if x > y:
                better += px * py
    alpha = (1.0 - level) / 2
    low = high = math.nan
    cdf = 0.0
    for g in sorted(gaps):
        cdf += gaps[g]
        if math.isnan(low) and cdf >= alpha - 1e-12:
            low = g
        if math.isnan(high) and cdf >= 1.0 - alpha - 1e-12:
            high = g
    return TuningGap(max(a) - max(b), low, high, level, min(1.0, better))


# ---- time-to-target -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Crossing:
    """When a run first reached its target, evaluated at a fixed interval of steps.

    ``step``/``seconds`` are those of the first evaluation at or past the target, or None when the
    run never reached it within the ``steps_run`` steps it ran (``diverged_step`` when it stopped
    because its loss went non-finite).
    """

    step: int | None
    seconds: float | None
    steps_run: int
    diverged_step: int | None = None

    @property
    def reached(self) -> bool:
        return self.step is not None

    def steps_or_inf(self) -> float:
        """The step as a number, ``inf`` when not reached (for medians and profiles)."""
        return float(self.step) if self.step is not None else math.inf

    def seconds_or_inf(self) -> float:
        return float(self.seconds) if self.seconds is not None else math.inf

    def describe(self) -> str:
        """``"step 340 (2.1 s)"``, ``"not reached in 600 steps"`` or ``"... (diverged at step 17)"``."""
        if self.reached:
            secs = f" ({self.seconds:.3g} s)" if self.seconds is not None else ""
            return f"step {self.step}{secs}"
        text = f"not reached in {self.steps_run} steps"
        if self.diverged_step is not None:
            text += f" (diverged at step {self.diverged_step})"
        return text


def time_to_target(
    steps: Sequence[int],
    scores: Sequence[float],
    target: float,
    *,
    seconds: Sequence[float] | None = None,
    steps_run: int | None = None,
    higher_is_better: bool = True,
    diverged_step: int | None = None,
) -> Crossing:
    """The first evaluation of a curve at or past ``target``.

    Args:
        steps: the global step of each evaluation, strictly increasing (a fixed interval of steps,
            plus the last step of the run).
        scores: the validation score at each of those steps; ``nan`` never counts as reaching.
        target: the score to reach (``>= target``, or ``<= target`` when not
            ``higher_is_better``).
        seconds: the cumulative training time at each evaluation (optional).
        steps_run: how many steps the run trained (default: the last evaluated step); the ``N``
            of "not reached in N steps".
        diverged_step: the step at which the run diverged, if it did.

    Raises:
        ValueError: lengths differ, steps not strictly increasing, or a ``nan`` target.
    """
    if len(steps) != len(scores) or (seconds is not None and len(seconds) != len(steps)):
        raise ValueError("steps, scores and seconds must have the same length")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError("steps must be strictly increasing")
    if math.isnan(target):
        raise ValueError("target is nan")
    ran = steps_run if steps_run is not None else (int(steps[-1]) if steps else 0)
    for i, (step, score) in enumerate(zip(steps, scores)):
        if math.isnan(score):
            continue
        if (score >= target) if higher_is_better else (score <= target):
            return Crossing(int(step), float(seconds[i]) if seconds is not None else None, ran,
                            diverged_step)
    return Crossing(None, None, ran, diverged_step)


@dataclass(frozen=True)
class CrossingSummary:
    """Time-to-target over the final seeds: median and CI of steps and of seconds."""

    steps: Interval  # ``inf`` where the median seed did not reach the target
    seconds: Interval
    reached: int
    runs: int
    steps_run: int

    def steps_text(self, interval: bool = True) -> str:
        """The median steps: ``"340 [300, 420]"`` (``"340"`` without the interval), ``"not
        reached in 600 steps"`` where the median seed did not reach the target, ``"–"`` with
        no runs."""
        if self.runs == 0:
            return "–"
        if math.isinf(self.steps.estimate):
            return f"not reached in {self.steps_run} steps"

        def bound(x: float) -> str:
            return "not reached" if math.isinf(x) else f"{x:.0f}"

        median = f"{self.steps.estimate:.0f}"
        return f"{median} [{bound(self.steps.low)}, {bound(self.steps.high)}]" if interval else median

    def describe(self) -> str:
        """``"median 340 steps [300, 420] (94% CI), 5/5 seeds reached"`` or the not-reached form."""
        count = f"{self.reached}/{self.runs} seeds reached"
        if self.runs == 0:
            return "no runs"
        if math.isinf(self.steps.estimate):
            return f"median: {self.steps_text()} ({count})"
        median, _, interval = self.steps_text().partition(" ")
        return f"median {median} steps {interval} ({self.steps.level:.0%} CI), {count}"


def summarize_crossings(crossings: Sequence[Crossing], level: float = 0.95) -> CrossingSummary:
    """Median and distribution-free CI of steps and seconds to target, "not reached" as ``inf``."""
    return CrossingSummary(
        median_interval([c.steps_or_inf() for c in crossings], level),
        median_interval([c.seconds_or_inf() for c in crossings], level),
        sum(c.reached for c in crossings),
        len(crossings),
        max((c.steps_run for c in crossings), default=0),
    )
