"""PNG figures of a comparison (matplotlib, Agg backend), drawn from :class:`.summary.ReportData`.

``loss.png``: training loss against step on a log axis (the seeds' figure); ``loss_time.png``: the
same against training seconds; ``accuracy.png``: test accuracy per epoch; ``step_share.png``: share
of training time spent in ``optimizer.step()``. Each optimizer is its mean over finished seeds with
a min-max band; diverged runs are dotted and end with a cross at their last finite step.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..files import atomic_write_bytes
from .summary import Curve, OptimizerGroup, ReportData, SummaryRow

FIGURE_NAMES = ("loss.png", "loss_time.png", "accuracy.png", "step_share.png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _band(ax, curve: Curve, color: str, label: str, marker: str | None = None) -> None:
    if curve.low != curve.high:
        ax.fill_between(curve.x, curve.low, curve.high, color=color, alpha=0.18, linewidth=0)
    ax.plot(curve.x, curve.mean, color=color, linewidth=1.4, label=label, marker=marker, markersize=4)


def _diverged(ax, group: OptimizerGroup, use_time: bool) -> None:
    for r in group.diverged:
        pts = [(t if use_time else s, v) for s, t, v in zip(r.steps, r.times, r.losses) if math.isfinite(v)]
        label = f"{group.optimizer} seed {r.run.seed}: diverged at step {r.run.diverged_step}"
        if not pts:
            ax.plot([], [], color=group.color, linestyle=":", label=label)
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color=group.color, linestyle=":", linewidth=1, label=label)
        ax.plot([xs[-1]], [ys[-1]], color=group.color, marker="x", markersize=8)


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    # no creation date or version stamp: the same store gives the same bytes
    # fixed margins instead of bbox_inches="tight", which draws every figure twice
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def write_figures(data: ReportData, rows: list[SummaryRow], out: Path) -> list[Path]:
    """Write the four PNG figures into ``out``; returns their paths."""
    plt = _pyplot()
    paths = []
    title = data.task or "comparison"

    def new(ylabel: str, xlabel: str, log: bool = False):
        fig, ax = plt.subplots(figsize=(9, 5.4))
        fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.12)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(True, which="major", color="#e6e9ee", linewidth=0.8)
        ax.set_axisbelow(True)
        return fig, ax

    def finish(fig, ax, name: str, heading: str) -> None:
        ax.set_title(f"{heading} ({title})", fontsize=11)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
        path = Path(out) / name
        _save(fig, path)
        plt.close(fig)
        paths.append(path)

    for name, use_time, xlabel in (("loss.png", False, "step"), ("loss_time.png", True, "training seconds")):
        fig, ax = new("training loss", xlabel, log=True)
        for g in data.groups:
            c = g.loss_time_curve() if use_time else g.loss_curve()
            if c is not None:
                _band(ax, c, g.color, g.optimizer)
            _diverged(ax, g, use_time)
        finish(fig, ax, name, "Training loss")

    fig, ax = new("test accuracy", "epoch")
    for g in data.groups:
        c = g.accuracy_curve()
        if c is not None:
            _band(ax, c, g.color, g.optimizer, marker="o")
    finish(fig, ax, "accuracy.png", "Test accuracy per epoch")

    fig, ax = new("% of training time in optimizer.step()", "optimizer")
    shown = [(r, g) for r, g in zip(rows, data.groups) if math.isfinite(r.step_time_share_mean)]
    ax.bar([r.optimizer for r, _ in shown], [100 * r.step_time_share_mean for r, _ in shown],
           color=[g.color for _, g in shown])
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    finish(fig, ax, "step_share.png", "Time share of optimizer.step()")
    return paths
