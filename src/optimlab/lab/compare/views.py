"""What a comparison's charts draw, computed once for the page (plotly) and the PNGs (matplotlib).

* Per-step curves are smoothed: each seed's batch losses through a bias-corrected exponential
  moving average (TensorBoard's smoothing; the page has a slider for its weight, :func:`ema`),
  then the mean over the finished seeds, with a band from the lowest to the highest smoothed seed.
  A band of raw batch losses would reach down to the luckiest batch of any seed and stretch a log
  axis by decades.
* Per-epoch curves: the epoch's mean training loss, the test loss and the test accuracy (in %),
  each seed's smoothed over the same span of training as the per-step curves
  (:func:`epoch_weight`; none when that span is under two epochs), then the mean over the
  finished seeds with the same band.
* The y-range of each chart is fitted to the finished runs (:func:`fit_log`); a run that diverged
  is drawn dotted up to its last finite loss, held at the top edge where it leaves the range, and
  marked there with a triangle at the step where it diverged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..stats import mean
from .summary import OptimizerGroup, ReportData, RunData, SummaryRow

#: most points a per-step line keeps; longer runs are averaged over consecutive steps first
MAX_POINTS = 3000

#: epochs up to which epoch curves are drawn with markers (beyond, the markers make a wall)
MARKER_EPOCHS = 30


def default_smoothing(steps: int) -> float:
    """The EMA weight the charts start with: a window of about 1/60 of the run (0 below 120
    steps), at most 0.98."""
    window = steps / 60
    return 0.0 if window < 2 else round(min(0.98, 1 - 1 / window), 2)


def epoch_weight(weight: float, steps_per_epoch: float) -> float:
    """The EMA weight over epochs that averages over as much training as ``weight`` over steps:
    the window ``1/(1-w)`` shrinks by the steps of an epoch (0 below two epochs)."""
    if weight >= 1 or steps_per_epoch <= 0:
        return 0.0
    window = 1 / (1 - weight) / steps_per_epoch
    return 0.0 if window < 2 else round(1 - 1 / window, 2)


def steps_per_epoch(data: ReportData) -> float:
    """Steps of one epoch (of the first run with an epoch), 1 when there is none."""
    for g in data.groups:
        for r in (*g.finished, *g.unfinished):
            if r.epoch_numbers and r.steps:
                return len(r.steps) / len(r.epoch_numbers)
    return 1.0


def ema(values: list[float], weight: float) -> list[float]:
    """Bias-corrected exponential moving average: ``s_t = w*s_{t-1} + (1-w)*x_t``, divided by
    ``1 - w**t`` so that the first points are not pulled towards 0. Non-finite values pass through
    as nan and are skipped."""
    out, s, debias = [], 0.0, 1.0
    for v in values:
        if not math.isfinite(v):
            out.append(math.nan)
            continue
        s = weight * s + (1 - weight) * v
        debias *= weight
        out.append(s / (1 - debias) if debias < 1 else v)
    return out


def binned(x: list[float], values: list[list[float]], limit: int = MAX_POINTS
           ) -> tuple[list[float], list[list[float]]]:
    """``x`` and each row of ``values`` averaged over runs of ``ceil(len/limit)`` consecutive
    points (x: the last of each run), so that no line has more than ``limit`` points."""
    n = len(x)
    k = math.ceil(n / limit) if n > limit else 1
    if k == 1:
        return x, values
    xs = [x[min(i + k, n) - 1] for i in range(0, n, k)]
    return xs, [[mean(v[i:i + k]) for i in range(0, n, k)] for v in values]


@dataclass
class Line:
    """One optimizer's line on a chart: mean over seeds and (with several seeds) the band."""

    group: int  # index of the optimizer in the comparison
    label: str
    spec: str
    color: str
    x: list[float]
    y: list[float]
    low: list[float] | None = None
    high: list[float] | None = None


@dataclass
class Diverged:
    """A diverged run: its finite losses (held at the top edge above the range) and where it
    diverged."""

    group: int
    label: str
    color: str
    seed: int
    step: int | None
    x: list[float]
    y: list[float]


@dataclass
class Panel:
    """One chart: its lines, diverged runs and fitted y-range (log panels: in data units)."""

    id: str
    title: str
    x_title: str
    y_title: str
    log_y: bool
    lines: list[Line]
    diverged: list[Diverged] = field(default_factory=list)
    y_range: tuple[float, float] | None = None
    markers: bool = False


def fit_log(lines: list[Line], diverged: list[Diverged] = (), pad: float = 0.04
            ) -> tuple[float, float] | None:
    """The y-range of a log chart: from the lowest mean (or the 2nd percentile of the band's
    lows, if lower) to the highest point of the finished runs' lines and bands, padded by 4% of
    its span. Diverged runs do not stretch it; with no finished run, their finite values set it."""
    lows, values = [], []
    for line in lines:
        values += [v for v in line.y if _pos(v)]
        if line.low is not None and line.high is not None:
            lows += [v for v in line.low if _pos(v)]
            values += [v for v in line.high if _pos(v)]
    if not values:
        values = [v for d in diverged for v in d.y if _pos(v)]
    if not values:
        return None
    lo = min(values)
    if lows:
        lows.sort()
        lo = min(lo, lows[int(0.02 * (len(lows) - 1))])
    hi = max(values)
    a, b = math.log10(lo), math.log10(hi)
    span = max(b - a, 0.3)
    return 10 ** (a - pad * span), 10 ** (b + pad * span)


def fit_linear(lines: list[Line], *, floor: float, ceiling: float, min_span: float,
               pad: float = 0.06) -> tuple[float, float] | None:
    """The y-range of a linear chart over the lines and bands, padded, within [floor, ceiling]."""
    values = [v for line in lines for series in (line.y, line.low or [], line.high or [])
              for v in series if math.isfinite(v)]
    if not values:
        return None
    lo, hi = min(values), max(values)
    span = max(hi - lo, min_span)
    mid = (lo + hi) / 2
    lo, hi = mid - span / 2 - pad * span, mid + span / 2 + pad * span
    return max(floor, lo), min(ceiling, hi)


def _pos(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _smoothed(runs: list[RunData], weight: float, use_time: bool) -> tuple[list[float], list[list[float]]]:
    n = min(len(r.losses) for r in runs)
    if use_time:
        x = [mean([r.times[i] for r in runs]) for i in range(n)]
    else:
        x = [float(s) for s in runs[0].steps[:n]]
    x, seeds = binned(x, [r.losses[:n] for r in runs])
    return x, [ema(s, weight) for s in seeds]


def _band(group: int, g: OptimizerGroup, x: list[float], seeds: list[list[float]]) -> Line:
    columns = list(zip(*seeds))
    y = [mean(list(c)) for c in columns]
    if len(seeds) < 2:
        return Line(group, g.label, g.optimizer, g.color, x, y)
    finite = [[v for v in c if math.isfinite(v)] for c in columns]
    low = [min(c) if c else math.nan for c in finite]
    high = [max(c) if c else math.nan for c in finite]
    return Line(group, g.label, g.optimizer, g.color, x, y, low, high)


def step_panel(data: ReportData, weight: float, *, use_time: bool) -> Panel:
    """Training loss against step (or training seconds), smoothed with ``weight``."""
    lines, diverged = [], []
    for k, g in enumerate(data.groups):
        runs = [r for r in g.finished if r.losses]
        if runs:
            x, seeds = _smoothed(runs, weight, use_time)
            lines.append(_band(k, g, x, seeds))
        for r in g.diverged:
            pts = [(t if use_time else float(s), v) for s, t, v in zip(r.steps, r.times, r.losses)
                   if math.isfinite(v)]
            diverged.append(Diverged(k, g.label, g.color, r.run.seed, r.run.diverged_step,
                                     [p[0] for p in pts], [p[1] for p in pts]))
    if use_time:
        ident, title, x_title = "loss-time", "Training loss against training time", "training seconds"
    else:
        ident, title, x_title = "loss", "Training loss per step", "step"
    panel = Panel(ident, title, x_title, "training loss (log scale)", True, lines, diverged)
    panel.y_range = fit_log(lines, diverged)
    return panel


_EPOCH_PANELS = {
    "train_losses": ("loss-epoch", "Training loss per epoch", "training loss (log scale)"),
    "test_losses": ("test-loss", "Test loss per epoch", "test loss (log scale)"),
    "test_accuracies": ("accuracy", "Test accuracy per epoch", "test accuracy (%)"),
}


def epoch_seeds(runs: list[RunData], what: str, scale: float = 1.0) -> tuple[list[float], list[list[float]]]:
    """The epochs all ``runs`` reached and each run's ``what`` column over them (times ``scale``)."""
    n = min(len(getattr(r, what)) for r in runs)
    return ([float(e) for e in runs[0].epoch_numbers[:n]],
            [[scale * v for v in getattr(r, what)[:n]] for r in runs])


def epoch_panel(data: ReportData, what: str, weight: float = 0.0) -> Panel:
    """A per-epoch chart: ``train_losses``, ``test_losses`` or ``test_accuracies`` (in %), each
    seed smoothed with ``weight`` (over epochs)."""
    ident, title, y_title = _EPOCH_PANELS[what]
    accuracy = what == "test_accuracies"
    lines, epochs = [], 0
    for k, g in enumerate(data.groups):
        runs = [r for r in g.finished if getattr(r, what)]
        if not runs:
            continue
        x, seeds = epoch_seeds(runs, what, 100.0 if accuracy else 1.0)
        epochs = max(epochs, len(x))
        lines.append(_band(k, g, x, [ema(s, weight) for s in seeds]))
    panel = Panel(ident, title, "epoch", y_title, not accuracy, lines, markers=epochs <= MARKER_EPOCHS)
    panel.y_range = (fit_linear(lines, floor=0.0, ceiling=100.0, min_span=1.0) if accuracy
                     else fit_log(lines))
    return panel


def panels(data: ReportData, weight: float) -> list[Panel]:
    """Every line chart of a comparison, in the page's order, smoothed with ``weight`` (per step)."""
    per_epoch = epoch_weight(weight, steps_per_epoch(data))
    return [step_panel(data, weight, use_time=False), epoch_panel(data, "train_losses", per_epoch),
            epoch_panel(data, "test_losses", per_epoch), epoch_panel(data, "test_accuracies", per_epoch),
            step_panel(data, weight, use_time=True)]


def diverged_legend(panel: Panel) -> dict[int, str]:
    """One legend text per optimizer with diverged runs (its first diverged run carries it):
    ``sgd (lr=3): 3 seeds diverged (steps 117-121)``."""
    by_group: dict[int, list[Diverged]] = {}
    for d in panel.diverged:
        by_group.setdefault(d.group, []).append(d)
    texts = {}
    for runs in by_group.values():
        steps = sorted(d.step for d in runs if d.step is not None)
        where = "" if not steps else (f" at step {steps[0]}" if steps[0] == steps[-1]
                                      else f" at steps {steps[0]}–{steps[-1]}")
        seeds = f"{len(runs)} seeds" if len(runs) > 1 else f"seed {runs[0].seed}"
        texts[id(runs[0])] = f"{runs[0].label}: {seeds} diverged{where}"
    return texts


def clip_top(values: list[float], y_range: tuple[float, float] | None) -> list[float]:
    """``values`` held at the top of ``y_range`` (a diverged run's losses above it)."""
    if y_range is None:
        return values
    top = y_range[1] / 10 ** (0.01 * math.log10(y_range[1] / y_range[0]))  # just inside the edge
    return [min(v, top) for v in values]


def total_steps(data: ReportData) -> int:
    """The most steps any run of the comparison has."""
    return max((len(r.steps) for g in data.groups for r in (*g.finished, *g.diverged, *g.unfinished)),
               default=0)


def share_rows(rows: list[SummaryRow]) -> list[SummaryRow]:
    """The optimizers with a measured step share, in the comparison's order."""
    return [r for r in rows if math.isfinite(r.step_time_share_mean)]
