"""The quantities a claim measures, by name: each reads an experiment's results and returns one
value per independent unit (seed, start point or optimizer) with how to summarise them.

Paired quantities compare two optimizers unit by unit: on a training experiment seed ``s`` gives
both the same initial weights and data order; on a surface both start from the same point.
Ratios are carried as natural logarithms (a ratio test is a difference test on logs) and shown
as ratios. A run that diverged counts as the worst outcome (an infinite loss, accuracy ``-inf``),
never as a number averaged in; where a unit has an infinite value the summary is the median
with its order-statistic interval instead of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..runspec import RunResult
from ..stats import Interval, mean, median_interval, t_interval
from .experiments import SurfaceResult, TrainingView

#: the share of a run's steps that "early" and "final" training losses average over
WINDOW = 0.1


@dataclass(frozen=True)
class Measurement:
    """One value per unit, how to summarise them, and the numbers behind them."""

    what: str  # e.g. "final training loss, adagrad / rmsprop"
    scale: str  # "ratio" (values are natural logs), "points" (accuracy, shown in points), "plain"
    unit: str  # "seed", "start point", "optimizer"
    values: tuple[float, ...]
    statistic: str = "mean"  # "mean" (Student t) or "median" (order statistics)
    context: str = ""

    def finite_or_ordered(self) -> list[float]:
        return [v for v in self.values if not math.isnan(v)]

    def interval(self, level: float = 0.95) -> Interval:
        values = self.finite_or_ordered()
        if self.statistic == "median" or any(math.isinf(v) for v in values):
            return median_interval(values, level)
        return t_interval(values, level)

    def summary(self, level: float = 0.95) -> str:
        """How the interval was made, e.g. ``"mean of 10 seeds, 95% t-interval"``."""
        iv = self.interval(level)
        units = f"{iv.n} {self.unit}{'' if iv.n == 1 else 's'}"
        if self.statistic == "median" or any(math.isinf(v) for v in self.finite_or_ordered()):
            return f"median of {units}, {iv.level:.0%} order-statistic interval"
        return f"mean of {units}, {iv.level:.0%} t-interval"

    def show(self, x: float) -> str:
        return show(self.scale, x)


def show(scale: str, x: float) -> str:
    """A value on ``scale`` as text: ``1.83x``, ``+0.42 pt``, ``0.123``."""
    if math.isnan(x):
        return "n/a"
    if scale == "ratio":
        if math.isinf(x):
            return "inf" if x > 0 else "0x"
        return f"{math.exp(x):.3g}x"
    if scale == "points":
        if math.isinf(x):
            return "-inf pt" if x < 0 else "+inf pt"
        return f"{100 * x:+.2f} pt"
    return f"{x:.4g}"


# ---- training experiments -----------------------------------------------------------------------
def _loss(run: RunResult, part: str) -> float:
    """Mean training loss over the first (``early``) or last (``final``) 10% of the steps."""
    if run.status != "finished" or not run.step_losses:
        return math.inf
    losses = run.step_losses
    k = max(1, round(WINDOW * len(losses)))
    chunk = losses[:k] if part == "early" else losses[-k:]
    return sum(chunk) / len(chunk)


def _accuracy(run: RunResult) -> float:
    if run.status != "finished" or not run.epochs:
        return -math.inf
    return float(run.epochs[-1].test_accuracy)


def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` for non-negative ``a``, ``b``, with ``inf`` (the worst outcome) ordered."""
    if (math.isinf(a) and math.isinf(b)) or (a == 0 and b == 0):
        return math.nan
    if math.isinf(a) or b == 0:
        return math.inf
    if math.isinf(b) or a == 0:
        return -math.inf
    return math.log(a / b)


def _lrs(res: TrainingView, labels: Sequence[str]) -> str:
    parts = []
    for label in labels:
        if label in res.chosen:
            parts.append(f"{label} lr {res.chosen[label]:.3g} (tuned)")
        else:
            parts.append(f"{label} = {res.specs[label]}")
    return "; ".join(parts)


def _best_tuned(res: TrainingView, exclude: str) -> str:
    candidates = [o for o in res.experiment.optimizers if o != exclude]
    return max(candidates, key=lambda o: (mean([_accuracy(r) for r in res.finals[o]]), o))


def loss_ratio(res: TrainingView, a: str, b: str, part: str = "final") -> Measurement:
    """Per seed ``log(L_a / L_b)``, ``L`` the mean training loss of the early or final 10%."""
    la = [_loss(r, part) for r in res.finals[a]]
    lb = [_loss(r, part) for r in res.finals[b]]
    which = "first" if part == "early" else "last"
    return Measurement(
        f"{part} training loss (mean of the {which} 10% of steps), {a} / {b}", "ratio", "seed",
        tuple(_log_ratio(x, y) for x, y in zip(la, lb)),
        context=(f"{a} {_fmt_mean(la)}, {b} {_fmt_mean(lb)}; " + _lrs(res, (a, b))),
    )


def accuracy_difference(res: TrainingView, a: str, b: str) -> Measurement:
    """Per seed test accuracy of ``a`` minus ``b``; ``b="best-tuned"``: the best other tuned one."""
    if b == "best-tuned":
        b = _best_tuned(res, a)
    xa = [_accuracy(r) for r in res.finals[a]]
    xb = [_accuracy(r) for r in res.finals[b]]
    return Measurement(
        f"test accuracy, {a} - {b}", "points", "seed",
        tuple(x - y if not (math.isinf(x) and math.isinf(y)) else math.nan for x, y in zip(xa, xb)),
        context=f"{a} {_fmt_mean(xa)}, {b} {_fmt_mean(xb)}; " + _lrs(res, (a, b)),
    )


def _grid_means(res: TrainingView, optimizer: str) -> list[tuple[float, float]]:
    chance = 1.0 / res.classes if res.classes else 0.0
    out = []
    for lr, scores in res.grid[optimizer]:
        values = [chance if math.isnan(s) else s for s in scores]
        out.append((lr, sum(values) / len(values)))
    return out


def _interpolate(points: list[tuple[float, float]], lr: float) -> float | None:
    x = math.log10(lr)
    xs = [math.log10(p) for p, _ in points]
    if x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        return None
    return float(np.interp(x, xs, [s for _, s in points]))


def lr_versus_optimizer(res: TrainingView, factor: float = 10.0) -> Measurement:
    """Per optimizer: validation accuracy lost by a ``factor`` error in the learning rate, minus
    the accuracy lost by choosing this optimizer instead of the best one (each at its best rate).

    The loss from the learning rate is ``best(o)`` minus the mean of the grid's accuracy at
    ``lr* x factor`` and ``lr* / factor`` (interpolated on log lr; a side outside the grid is left
    out; a diverged run scores chance level).
    """
    best = {o: dict(_grid_means(res, o))[res.chosen[o]] for o in res.experiment.optimizers}
    top = max(best.values())
    values, lr_costs, opt_costs = [], [], []
    for o in res.experiment.optimizers:
        grid = _grid_means(res, o)
        sides = [_interpolate(grid, res.chosen[o] * f) for f in (factor, 1 / factor)]
        sides = [s for s in sides if s is not None]
        lr_cost = best[o] - sum(sides) / len(sides) if sides else math.nan
        lr_costs.append(lr_cost)
        opt_costs.append(top - best[o])
        values.append(lr_cost - (top - best[o]))
    return Measurement(
        f"validation accuracy lost by a {factor:g}x learning-rate error minus that lost by the "
        "choice of optimizer", "points", "optimizer", tuple(values), statistic="median",
        context=(f"median accuracy lost by a {factor:g}x lr error {100 * _median(lr_costs):.2f} pt, "
                 f"by the choice of optimizer {100 * _median(opt_costs):.2f} pt, over "
                 f"{len(values)} optimizers"),
    )


# ---- surface experiments ------------------------------------------------------------------------
def _steep_direction(surface: Any) -> np.ndarray:
    """The Hessian's eigenvector of the largest eigenvalue at the (first) minimum."""
    m = torch.tensor(surface.minima[0], dtype=torch.float64)
    h = torch.autograd.functional.hessian(lambda p: surface(p), m)
    _, vectors = torch.linalg.eigh(h)
    return vectors[:, -1].numpy()


#: the across-valley oscillation has died out once it stays within this share of its start
SETTLED = 0.01


def _across(path: Any, surface: Any) -> np.ndarray:
    """The signed distance of every point from the valley floor, along the steep direction."""
    direction = _steep_direction(surface)
    return (path.points - np.asarray(surface.minima[0])) @ direction


def _settle_step(s: np.ndarray) -> float:
    """The first step from which ``|s_t| <= SETTLED * |s_0|`` for good (inf if not by the end)."""
    outside = np.flatnonzero(np.abs(s) > SETTLED * abs(s[0]))
    if outside.size and outside[-1] == len(s) - 1:
        return math.inf
    return float(outside[-1] + 1) if outside.size else 0.0


def _reversal_share(path: Any, surface: Any) -> float:
    """The share of steps that reverse the direction of travel across the valley, counted until
    the oscillation has died out (``_settle_step``); 0 for a path that never reverses."""
    if path.diverged:
        return math.inf
    s = _across(path, surface)
    settle = _settle_step(s)
    end = len(s) if math.isinf(settle) else int(settle) + 1
    moves = np.diff(s[:end])
    if len(moves) < 2:
        return 0.0
    return float(np.mean(moves[1:] * moves[:-1] < 0))


def _surface_pair(res: SurfaceResult, a: str, b: str, fn: Callable[[Any, Any], float]
                  ) -> tuple[list[float], list[float]]:
    from ..surface.catalog import get_surface

    surface = get_surface(res.experiment.surface)
    return [fn(p, surface) for p in res.paths[a]], [fn(p, surface) for p in res.paths[b]]


def reversal_ratio(res: SurfaceResult, a: str, b: str) -> Measurement:
    """Per start ``log(R_a / R_b)``, ``R`` the share of steps reversing across the valley."""
    ra, rb = _surface_pair(res, a, b, _reversal_share)
    return Measurement(
        f"share of steps that reverse direction across the valley, {a} / {b}", "ratio",
        "start point", tuple(_log_ratio(x, y) for x, y in zip(ra, rb)),
        context=(f"share {a} {_fmt_mean(ra)}, {b} {_fmt_mean(rb)}; lr {a} {res.chosen[a]:.3g}, "
                 f"{b} {res.chosen[b]:.3g} (each the best of the same grid)"),
    )


def settle_ratio(res: SurfaceResult, a: str, b: str) -> Measurement:
    """Per start ``log(T_a / T_b)``, ``T`` the steps until the across-valley oscillation stays
    within 1% of the start's distance from the floor (``inf``: not within the run)."""

    def settle(path: Any, surface: Any) -> float:
        return math.inf if path.diverged else _settle_step(_across(path, surface))

    ta, tb = _surface_pair(res, a, b, settle)
    return Measurement(
        f"steps until the oscillation across the valley dies out (stays within "
        f"{SETTLED:.0%}), {a} / {b}", "ratio", "start point",
        tuple(_log_ratio(x, y) for x, y in zip(ta, tb)), statistic="median",
        context=(f"{a} median {_median(ta):.0f}, {b} median {_median(tb):.0f} steps "
                 f"(of {res.steps}); lr {a} {res.chosen[a]:.3g}, {b} {res.chosen[b]:.3g}"),
    )


def _distance_step(path: Any, surface: Any, tol: float = 1e-3) -> float:
    """The first step within ``tol`` of the (first) minimum; inf if never (or diverged)."""
    if path.diverged:
        return math.inf
    d = np.linalg.norm(path.points - np.asarray(surface.minima[0]), axis=1)
    hits = np.flatnonzero(d < tol)
    return float(hits[0]) if hits.size else math.inf


def convergence_ratio(res: SurfaceResult, a: str, b: str) -> Measurement:
    """Per start ``log(T_a / T_b)``, ``T`` the steps until the path is within 1e-3 of the
    minimum (``inf``: not within the run)."""
    ta, tb = _surface_pair(res, a, b, _distance_step)
    return Measurement(
        f"steps to come within 1e-3 of the minimum on {res.experiment.surface}, {a} / {b}",
        "ratio", "start point", tuple(_log_ratio(x, y) for x, y in zip(ta, tb)),
        statistic="median",
        context=(f"{a} median {_median(ta):.0f}, {b} median {_median(tb):.0f} steps "
                 f"(of {res.steps}); lr {a} {res.chosen[a]:.3g}, {b} {res.chosen[b]:.3g} "
                 "(each the best of the same grid)"),
    )


def _escape_step(path: Any, escape_value: float) -> float:
    below = np.flatnonzero(path.values <= escape_value)
    return float(below[0]) if below.size else math.inf


def escape_ratio(res: SurfaceResult, a: str, b: str) -> Measurement:
    """Per start ``log(T_a / T_b)``: ``T`` the steps to escape (``f <= escape_value``); a path
    that never escapes within the run has ``T = inf``."""
    from ..surface.catalog import get_surface

    level = get_surface(res.experiment.surface).escape_value
    ta = [_escape_step(p, level) for p in res.paths[a]]
    tb = [_escape_step(p, level) for p in res.paths[b]]

    def steps(ts: list[float]) -> str:
        finite = [t for t in ts if math.isfinite(t)]
        text = f"median {_median(ts):.0f}" if math.isfinite(_median(ts)) else "median not reached"
        return f"{text} ({len(finite)}/{len(ts)} escaped in {res.steps} steps)"

    return Measurement(
        f"steps to escape the saddle (f <= {level:g}), {a} / {b}", "ratio", "start point",
        tuple(_log_ratio(x, y) for x, y in zip(ta, tb)), statistic="median",
        context=(f"{a} {steps(ta)}, {b} {steps(tb)}; lr {a} {res.chosen[a]:.3g}, "
                 f"{b} {res.chosen[b]:.3g} (each the best of the same grid)"),
    )


def _median(values: Sequence[float]) -> float:
    vs = [v for v in values if not math.isnan(v)]
    return median_interval(vs).estimate if vs else math.nan


def _fmt_mean(values: Sequence[float]) -> str:
    if any(math.isinf(v) for v in values):
        return f"median {_median(values):.4g}"
    return f"mean {mean(values):.4g}"


QUANTITIES: dict[str, Callable[..., Measurement]] = {
    "loss_ratio": loss_ratio,
    "accuracy_difference": accuracy_difference,
    "lr_versus_optimizer": lr_versus_optimizer,
    "reversal_ratio": reversal_ratio,
    "settle_ratio": settle_ratio,
    "convergence_ratio": convergence_ratio,
    "escape_ratio": escape_ratio,
}
