"""Targets, performance profiles and significance verdicts for tuned optimizers.

Time-to-target follows AlgoPerf (Dahl et al. 2023, "Benchmarking Neural Network Training
Algorithms"): a run is scored by the training time it needs to first reach a fixed validation
target (:func:`optimlab.lab.protocol.time_to_target`), and a run that never reaches it scores
infinity. Performance profiles follow Dolan & Moré (2002, "Benchmarking optimization software
with performance profiles"), as AlgoPerf uses them to aggregate over workloads. Verdicts compare
each optimizer with the best one by Welch's t-test over seeds with Holm's correction for the
multiple comparisons, and by the tuning noise of the two studies (Sivaprasad et al. 2020).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..protocol import TuningGap, tuning_gap
from ..stats import ci95, holm_adjust, mean, welch_p_value

#: the validation target is this fraction of the best validation accuracy any optimizer reached
#: on the task, unless the task declares its own (``Task.target``) or ``--target`` gives one
TARGET_FRACTION = 0.99

#: significance level of the verdicts (family-wise, after Holm's correction)
ALPHA = 0.05


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of a run: after ``epoch`` epochs, ``step`` steps, ``wall_time_s`` seconds."""

    epoch: int
    accuracy: float
    loss: float
    wall_time_s: float
    step: int


def validation_target(
    best_accuracies: Mapping[str, float],
    *,
    declared: float | None = None,
    fraction: float = TARGET_FRACTION,
) -> float:
    """The task's validation target.

    ``declared`` (a per-task target declared as data) wins; otherwise
    ``target = fraction * max_o best_accuracy(o)`` over the optimizers ``o`` whose best accuracy
    is finite. ``nan`` when no optimizer has one.
    """
    if declared is not None:
        return float(declared)
    finite = [a for a in best_accuracies.values() if math.isfinite(a)]
    return fraction * max(finite) if finite else math.nan


def performance_ratios(
    times: Mapping[str, Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """Ratios ``r[p][s] = t[p][s] / min_s' t[p][s']`` per problem ``p`` and solver ``s``.

    A solver that failed on ``p`` (time ``inf`` or ``nan``) gets ``inf``; a problem that no
    solver solved gives ``inf`` to every solver.
    """
    out: dict[str, dict[str, float]] = {}
    for problem, by_solver in times.items():
        finite = [t for t in by_solver.values() if math.isfinite(t) and t >= 0]
        best = min(finite) if finite else math.inf
        ratios: dict[str, float] = {}
        for solver, t in by_solver.items():
            if not (math.isfinite(t) and t >= 0) or not math.isfinite(best):
                ratios[solver] = math.inf
            elif best == 0:
                ratios[solver] = 1.0 if t == 0 else math.inf
            else:
                ratios[solver] = t / best
        out[problem] = ratios
    return out


def performance_profile(
    times: Mapping[str, Mapping[str, float]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """Dolan-Moré performance profile of each solver at each ``tau``.

    ``rho_s(tau) = |{p : r[p][s] <= tau}| / n_p``: the fraction of the ``n_p`` problems (tasks) on
    which solver ``s`` (an optimizer) is within a factor ``tau`` of the best solver's time. A
    solver missing from a problem counts as failed there.
    """
    ratios = performance_ratios(times)
    solvers: list[str] = []
    for by_solver in times.values():
        solvers.extend(s for s in by_solver if s not in solvers)
    n_p = len(ratios)
    profile: dict[str, list[float]] = {}
    for s in solvers:
        profile[s] = [
            sum(1 for r in ratios.values() if r.get(s, math.inf) <= tau) / n_p if n_p else math.nan
            for tau in taus
        ]
    return profile


def profile_taus(times: Mapping[str, Mapping[str, float]], points: int = 50) -> list[float]:
    """Abscissae for a profile: 1 .. the largest finite ratio (x1.1), geometric, plus every ratio.

    Including each ratio exactly makes the step function's jumps land on plotted points.
    """
    finite = sorted(
        {r for by in performance_ratios(times).values() for r in by.values() if math.isfinite(r)}
    )
    top = max(finite[-1] * 1.1, 2.0) if finite else 2.0
    grid = [top ** (i / (points - 1)) for i in range(points)]
    return sorted(set(grid) | set(finite))


@dataclass(frozen=True)
class Comparison:
    """One optimizer against the task's best one."""

    optimizer: str
    mean: float
    ci95: float
    p_value: float  # Welch, unadjusted
    p_adjusted: float  # Holm
    significant: bool  # p_adjusted < alpha
    #: the best optimizer's best trial minus this one's, over redraws of both studies' trials
    #: (:func:`optimlab.lab.protocol.tuning_gap`); None without trial scores
    tuning: TuningGap | None = None

    @property
    def beyond_tuning_noise(self) -> bool:
        """Significant over seeds, and the best one's tuning beats this one's over redraws of
        the trials (True where no trial scores were given)."""
        return self.significant and (self.tuning is None or self.tuning.separated)


@dataclass(frozen=True)
class Verdict:
    """Which optimizers differ significantly from the best one on a task, and which are in noise."""

    task: str
    metric: str
    best: str | None
    best_mean: float
    best_ci95: float
    comparisons: tuple[Comparison, ...]
    alpha: float

    def line(self) -> str:
        """One sentence: the best optimizer, the significantly worse ones, the ones within noise."""
        if self.best is None:
            return f"{self.task}: no optimizer has a finished run; nothing to compare."
        text = (
            f"{self.task}: {self.best} is best ({self.metric} {_fmt(self.best_mean, self.metric)}"
            f" ± {_fmt(self.best_ci95, self.metric, interval=True)})"
        )
        worse = [c for c in self.comparisons if c.beyond_tuning_noise]
        tuning = [c for c in self.comparisons if c.significant and not c.beyond_tuning_noise]
        noise = [c for c in self.comparisons if not c.significant and not math.isnan(c.p_adjusted)]
        untestable = [c for c in self.comparisons if math.isnan(c.p_adjusted)]
        parts = []
        if worse:
            parts.append(
                f"significantly worse (Welch, Holm-adjusted p < {self.alpha:g}"
                + (", and beyond tuning noise" if any(c.tuning for c in worse) else "") + "): "
                + ", ".join(f"{c.optimizer} (p={c.p_adjusted:.2g})" for c in worse)
            )
        if tuning:
            parts.append(
                "worse over seeds but within tuning noise (another draw of the trials could "
                "have found as good a configuration): "
                + ", ".join(f"{c.optimizer} (p={c.p_adjusted:.2g}, best-trial gap "
                            f"{_fmt(c.tuning.low)}..{_fmt(c.tuning.high)})"
                            for c in tuning if c.tuning is not None)
            )
        if noise:
            parts.append(
                f"within seed noise of {self.best}: "
                + ", ".join(f"{c.optimizer} (p={c.p_adjusted:.2g})" for c in noise)
            )
        if untestable:
            parts.append(
                "untestable (fewer than 2 finished seeds): "
                + ", ".join(c.optimizer for c in untestable)
            )
        if not self.comparisons:
            parts.append("no other optimizer to compare with")
        return text + "; " + "; ".join(parts) + "."


def verdict(
    task: str,
    samples: Mapping[str, Sequence[float]],
    *,
    metric: str = "test accuracy",
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    trials: Mapping[str, Sequence[float]] | None = None,
) -> Verdict:
    """Compare every optimizer's per-seed ``samples`` with the best mean's.

    The best optimizer is the one with the highest mean (lowest if not ``higher_is_better``)
    among those with at least one sample. Each other optimizer gets Welch's two-sided p-value
    against the best, and the m p-values are adjusted together with Holm's step-down procedure;
    a difference is significant when the adjusted p-value is below ``alpha``.

    Seeds are one source of noise; tuning is the other (Sivaprasad et al. 2020). With
    ``trials`` (each optimizer's validation scores of its evaluated trials, higher is better) a
    significant difference counts as "worse" only when the best optimizer's best trial also beats
    this one's beyond tuning noise (:func:`optimlab.lab.protocol.tuning_gap` at level
    ``1 - alpha``); otherwise it is reported as within tuning noise.
    """
    present = {k: list(v) for k, v in samples.items() if len(v) > 0}
    if not present:
        return Verdict(task, metric, None, math.nan, math.nan, (), alpha)
    sign = 1.0 if higher_is_better else -1.0
    best = max(present, key=lambda k: sign * mean(present[k]))
    others = [k for k in present if k != best]
    with warnings.catch_warnings():
        # scipy warns on near-identical seeds (tiny variances); the p-value is still defined
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        raw = [welch_p_value(present[best], present[k]) for k in others]
    adjusted = holm_adjust(raw)
    def gap(k: str) -> TuningGap | None:
        if not trials or not trials.get(best) or not trials.get(k):
            return None
        return tuning_gap(trials[best], trials[k], level=1.0 - alpha)

    comparisons = tuple(
        Comparison(
            k, mean(present[k]), ci95(present[k]), p, pa, (not math.isnan(pa)) and pa < alpha,
            gap(k),
        )
        for k, p, pa in zip(others, raw, adjusted)
    )
    return Verdict(task, metric, best, mean(present[best]), ci95(present[best]), comparisons, alpha)


def _fmt(x: float, metric: str = "", *, interval: bool = False) -> str:
    """An accuracy in % (its interval in percentage points), any other metric as it is."""
    if math.isnan(x):
        return "n/a"
    if "accuracy" in metric:
        return f"{100 * x:.2f} pp" if interval else f"{100 * x:.2f}%"
    return f"{x:.4f}"
