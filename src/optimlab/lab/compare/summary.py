"""A comparison's numbers, read from its results store: runs grouped by optimizer, curves over
seeds, and the summary table (``summary.csv``).

Means are over the runs that finished (diverged and unfinished runs are counted, never
averaged); an undefined value (no finished run; a 95% interval from one seed) is an empty cell.
Curves are the mean over the finished seeds of an optimizer with the range from the lowest to the
highest seed. Each optimizer has its colour of :mod:`optimlab.lab.pages` and a short label (its
name and the hyperparameters that tell it apart, :func:`optimlab.lab.pages.short_labels`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..pages import colors, csv_number, json_number, short_labels
from ..stats import ci95, mean
from ..store import Store, StoredRun

SUMMARY_COLUMNS = (
    "optimizer",
    "lr",
    "effective_lr",
    "seeds",
    "seeds_finished",
    "final_train_loss_mean",
    "test_accuracy_mean",
    "test_accuracy_ci95",
    "wall_time_s_mean",
    "diverged_runs",
    "skipped_steps",
)

@dataclass
class RunData:
    """One stored run with its rows."""

    run: StoredRun
    steps: list[int]
    losses: list[float]
    times: list[float]
    epoch_numbers: list[int]
    train_losses: list[float]
    test_accuracies: list[float]
    test_losses: list[float] = field(default_factory=list)


@dataclass
class Curve:
    """Mean and range over seeds at each x."""

    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]


@dataclass
class OptimizerGroup:
    """All runs of one optimizer label, and what the report draws and tabulates for it."""

    optimizer: str
    color: str
    finished: list[RunData] = field(default_factory=list)
    diverged: list[RunData] = field(default_factory=list)
    unfinished: list[RunData] = field(default_factory=list)
    label: str = ""  # the short label of charts and tables (set by :func:`collect`)
    spec: str = ""  # the spec as run, where ``optimizer`` names it otherwise (an overlay's folder tag)

    @property
    def seeds(self) -> int:
        """Runs of this optimizer (finished, diverged or unfinished)."""
        return len(self.finished) + len(self.diverged) + len(self.unfinished)

    def final_train_losses(self) -> list[float]:
        return [r.train_losses[-1] for r in self.finished if r.train_losses]

    def final_accuracies(self) -> list[float]:
        return [r.test_accuracies[-1] for r in self.finished if r.test_accuracies]

    def wall_times(self) -> list[float]:
        return [r.run.wall_time_s for r in self.finished]

    def step_shares(self) -> list[float]:
        return [r.run.step_time_share for r in self.finished if r.run.step_time_share is not None]

    def loss_curve(self) -> Curve | None:
        return _curve([r.steps for r in self.finished], [r.losses for r in self.finished])

    def loss_time_curve(self) -> Curve | None:
        runs = [r for r in self.finished if r.times]
        if not runs:
            return None
        n = min(len(r.times) for r in runs)
        x = [mean([r.times[i] for r in runs]) for i in range(n)]
        c = _curve([r.steps for r in runs], [r.losses for r in runs])
        return Curve(x, c.mean[:n], c.low[:n], c.high[:n]) if c else None

    def accuracy_curve(self) -> Curve | None:
        return _curve([r.epoch_numbers for r in self.finished], [r.test_accuracies for r in self.finished])

    def epoch_curve(self, what: str) -> Curve | None:
        """Mean and range over the finished seeds of an epoch column: ``train_losses``,
        ``test_losses`` or ``test_accuracies``."""
        return _curve([r.epoch_numbers for r in self.finished], [getattr(r, what) for r in self.finished])


@dataclass
class SummaryRow:
    """One optimizer's line of ``summary.csv`` (plus what the HTML table adds)."""

    optimizer: str
    seeds: int  # runs planned and stored (finished, diverged or unfinished)
    seeds_finished: int
    final_train_loss_mean: float
    test_accuracy_mean: float
    test_accuracy_ci95: float
    wall_time_s_mean: float
    diverged_runs: int
    step_time_share_mean: float = math.nan
    diverged_at: list[tuple[int, int | None]] = field(default_factory=list)  # (seed, step)
    unfinished_runs: int = 0
    skipped_steps: int = 0  # over every run: steps that skip_nonfinite left out
    lr: float = math.nan  # of the first phase
    #: the first phase's step per unit gradient: lr / (1 - momentum) for momentum methods
    effective_lr: float = math.nan
    step_time_share_low: float = math.nan
    step_time_share_high: float = math.nan
    label: str = ""
    color: str = ""

    def csv_values(self) -> list[str]:
        return [self.optimizer, csv_number(self.lr), csv_number(self.effective_lr),
                str(self.seeds), str(self.seeds_finished), csv_number(self.final_train_loss_mean),
                csv_number(self.test_accuracy_mean), csv_number(self.test_accuracy_ci95),
                csv_number(self.wall_time_s_mean), str(self.diverged_runs), str(self.skipped_steps)]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (undefined numbers are None)."""
        return {
            "optimizer": self.optimizer,
            "lr": json_number(self.lr),
            "effective_lr": json_number(self.effective_lr),
            "seeds": self.seeds,
            "seeds_finished": self.seeds_finished,
            "final_train_loss_mean": json_number(self.final_train_loss_mean),
            "test_accuracy_mean": json_number(self.test_accuracy_mean),
            "test_accuracy_ci95": json_number(self.test_accuracy_ci95),
            "wall_time_s_mean": json_number(self.wall_time_s_mean),
            "diverged_runs": self.diverged_runs,
            "step_time_share_mean": json_number(self.step_time_share_mean),
            "diverged_at": [{"seed": s, "step": st} for s, st in self.diverged_at],
            "unfinished_runs": self.unfinished_runs,
            "skipped_steps": self.skipped_steps,
        }


@dataclass
class ReportData:
    """Everything a report shows, read from one store."""

    experiment: dict[str, Any]
    groups: list[OptimizerGroup]
    task: str
    source: str
    provenance: list[dict[str, Any]] = field(default_factory=list)
    updated_at: float | None = None  # when the last run was written (seconds since the epoch)
    overlay_command: str | None = None  # an overlay of several folders: the command that drew it

    def summary(self) -> list[SummaryRow]:
        rows = []
        for g in self.groups:
            acc = g.final_accuracies()
            lr, effective = _step_sizes(g.spec or g.optimizer)
            shares = g.step_shares()
            rows.append(SummaryRow(
                optimizer=g.optimizer,
                seeds=g.seeds,
                seeds_finished=len(g.finished),
                final_train_loss_mean=mean(g.final_train_losses()),
                test_accuracy_mean=mean(acc),
                test_accuracy_ci95=ci95(acc),
                wall_time_s_mean=mean(g.wall_times()),
                diverged_runs=len(g.diverged),
                step_time_share_mean=mean(g.step_shares()),
                diverged_at=[(r.run.seed, r.run.diverged_step) for r in g.diverged],
                unfinished_runs=len(g.unfinished),
                skipped_steps=sum(r.run.skipped_steps for r in (*g.finished, *g.diverged, *g.unfinished)),
                lr=lr,
                effective_lr=effective,
                step_time_share_low=min(shares) if shares else math.nan,
                step_time_share_high=max(shares) if shares else math.nan,
                label=g.label,
                color=g.color,
            ))
        return rows


def _step_sizes(label: str) -> tuple[float, float]:
    """The lr and the effective step (:func:`.plan.effective_lr`) of a spec's first phase."""
    from ..spec import parse_spec
    from .plan import effective_lr

    try:
        phase = parse_spec(label).phases[0]
        lr = phase.resolved().get("lr")
        effective = effective_lr(phase)
    except ValueError:  # a store written with an optimizer this version no longer knows
        return math.nan, math.nan
    return (float(lr) if isinstance(lr, (int, float)) else math.nan,
            math.nan if effective is None else effective)


def _curve(xs: list[list[int]], ys: list[list[float]]) -> Curve | None:
    """Mean, min and max across runs, over the x positions all of them reached."""
    if not ys or not all(ys):
        return None
    n = min(len(y) for y in ys)
    columns = [[y[i] for y in ys] for i in range(n)]
    return Curve(
        x=[float(v) for v in xs[0][:n]],
        mean=[mean(c) for c in columns],
        low=[min(c) for c in columns],
        high=[max(c) for c in columns],
    )


def collect(store: Store) -> ReportData:
    """Read every run of ``store`` and group it by optimizer (in the comparison's order)."""
    groups: dict[str, OptimizerGroup] = {}
    task, source = "", ""
    for run in store.runs():
        task, source = task or run.task, source or run.source
        group = groups.get(run.optimizer)
        if group is None:
            group = groups[run.optimizer] = OptimizerGroup(run.optimizer, "")
        steps, losses, times = store.steps(run.run_id)
        epochs = store.epochs(run.run_id)
        data = RunData(run, steps, losses, times, [e.epoch for e in epochs],
                       [e.train_loss for e in epochs], [e.test_accuracy for e in epochs],
                       [e.test_loss for e in epochs])
        if run.status == "finished":
            group.finished.append(data)
        elif run.status == "diverged":
            group.diverged.append(data)
        else:
            group.unfinished.append(data)
    for group, c, label in zip(groups.values(), colors(list(groups)), short_labels(list(groups))):
        group.color, group.label = c, label
    return ReportData(store.get_experiment() or {}, list(groups.values()), task, source,
                      store.provenance(), updated_at=store.last_update())


def write_summary_csv(path: Path, rows: list[SummaryRow]) -> None:
    """``summary.csv`` with :data:`SUMMARY_COLUMNS`, written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        writer.writerow(row.csv_values())
    atomic_write_text(path, buffer.getvalue())
