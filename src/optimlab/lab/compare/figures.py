"""PNG figures of a comparison (matplotlib, Agg backend): the page's charts (:mod:`.views`), in
the same colours, short labels, fitted ranges and exponent style.

``loss.png``: training loss against step on a log axis (the seeds' figure), smoothed as the page
starts; ``loss_time.png``: the same against training seconds; ``loss_epoch.png``: the mean
training loss of each epoch; ``test_loss.png`` and ``accuracy.png``: test loss and test accuracy
(%) per epoch; ``step_share.png``: the share of training time in ``optimizer.step()``, mean over
seeds with the range from the lowest to the highest seed. Each optimizer is its mean over
finished seeds with a band from the lowest to the highest seed; diverged runs are dotted, held at
the top edge where they leave the range and marked there with a triangle. Legends sit below the
plot.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from .. import pages
from ..files import atomic_write_bytes
from . import views
from .summary import ReportData, SummaryRow

#: each line panel's file
PANEL_FILES = {"loss": "loss.png", "loss-time": "loss_time.png", "loss-epoch": "loss_epoch.png",
               "test-loss": "test_loss.png", "accuracy": "accuracy.png"}
FIGURE_NAMES = (*PANEL_FILES.values(), "step_share.png")
WIDTH = 9.0  # inches, at 100 dpi


def pyplot():
    """matplotlib's pyplot on the Agg backend, in the pages' look."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "font.family": "DejaVu Sans", "font.size": 11, "axes.edgecolor": "#c5ccd6",
        "axes.labelcolor": pages.INK, "xtick.color": pages.MUTED, "ytick.color": pages.MUTED,
        "axes.titlesize": 13, "axes.titleweight": "bold", "axes.titlelocation": "left",
        "text.color": pages.INK, "axes.spines.top": False, "axes.spines.right": False,
    })
    return plt


def save_png(fig, path: Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG atomically; no creation date or version stamp, so the same data
    gives the same bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return atomic_write_bytes(path, buffer.getvalue())


def log_ticks(ax, y_range: tuple[float, float]) -> None:
    """Labelled ticks of :func:`optimlab.lab.pages.log_ticks` (``2×10⁻¹``), minor ones unlabelled."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, LogLocator, NullFormatter

    vals, text = pages.log_ticks(*y_range, html_tags=False)
    ax.set_yscale("log")
    ax.set_ylim(*y_range)
    ax.yaxis.set_major_locator(FixedLocator(vals))
    ax.yaxis.set_major_formatter(FixedFormatter(text))
    ax.yaxis.set_minor_locator(LogLocator(subs=tuple(range(2, 10))))
    ax.yaxis.set_minor_formatter(NullFormatter())


def layout_with_legend(fig, handles: list, labels: list[str], *, plot_h: float = 3.6,
                       left: float = 0.95) -> None:
    """Size ``fig`` (inches: title, plot of ``plot_h``, axis labels) and put the legend below
    the plot in as many rows as its labels take at the figure's width."""
    legend_h = 0.0
    if handles:
        width = max(len(t) for t in labels) * 0.08 + 0.65  # inches an entry takes
        ncol = max(1, min(len(labels), int((WIDTH - 0.3) / width)))
        legend_h = 0.23 * math.ceil(len(labels) / ncol) + 0.08
    top, axis = 0.5, 0.62
    height = top + plot_h + axis + legend_h
    fig.set_size_inches(WIDTH, height)
    fig.subplots_adjust(left=left / WIDTH, right=1 - 0.2 / WIDTH, top=1 - top / height,
                        bottom=(axis + legend_h) / height)
    if handles:
        fig.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.3 / WIDTH, 0.06 / height),
                   ncol=ncol, frameon=False, fontsize=10, handlelength=1.8, columnspacing=1.4,
                   borderaxespad=0)


def _panel_figure(plt, panel: views.Panel, task: str):
    fig, ax = plt.subplots(figsize=(WIDTH, 5))
    ax.grid(True, which="major", color=pages.GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_xlabel(panel.x_title)
    ax.set_ylabel(panel.y_title)
    ax.set_title(f"{panel.title} ({task})" if task else panel.title)
    handles, labels = [], []
    for line in panel.lines:
        if line.low is not None and line.high is not None:
            ax.fill_between(line.x, line.low, line.high, color=line.color, alpha=0.16, linewidth=0)
        (h,) = ax.plot(line.x, line.y, color=line.color, linewidth=1.6,
                       marker="o" if panel.markers else None, markersize=3.5)
        handles.append(h)
        labels.append(line.label)
    top = views.clip_top([math.inf], panel.y_range)[0] if panel.y_range else None
    legends = views.diverged_legend(panel)
    for d in panel.diverged:
        if d.x:
            (h,) = ax.plot(d.x, views.clip_top(d.y, panel.y_range), color=d.color, linestyle=":",
                           linewidth=1.2)
            if top is not None:
                ax.plot([d.x[-1]], [top], marker="^", color=d.color, markersize=9, clip_on=False)
            if id(d) in legends:
                handles.append(h)
                labels.append(legends[id(d)])
    if panel.x_title == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.y_range is not None:
        if panel.log_y:
            log_ticks(ax, panel.y_range)
        else:
            ax.set_ylim(*panel.y_range)
    layout_with_legend(fig, handles, labels)
    return fig


def _share_figure(plt, rows: list[SummaryRow], task: str):
    shown = views.share_rows(rows)
    fig, ax = plt.subplots(figsize=(WIDTH, 1.4 + 0.42 * max(1, len(shown))))
    names = [r.label for r in shown]
    longest = max((len(n) for n in names), default=8)
    fig.subplots_adjust(left=min(0.5, 0.04 + 0.0105 * longest), right=0.97, top=1 - 0.5 / fig.get_size_inches()[1],
                        bottom=0.7 / fig.get_size_inches()[1])
    mean = [100 * r.step_time_share_mean for r in shown]
    err = [[m - 100 * r.step_time_share_low for r, m in zip(shown, mean)],
           [100 * r.step_time_share_high - m for r, m in zip(shown, mean)]]
    ax.barh(range(len(shown)), mean, color=[r.color for r in shown], xerr=err,
            error_kw={"ecolor": "#3e4c59", "elinewidth": 1.2, "capsize": 3})
    ax.set_yticks(range(len(shown)), names, fontsize=10)
    ax.invert_yaxis()
    ax.set_xlabel("% of training time (bar: mean; whisker: lowest to highest seed)")
    ax.grid(True, axis="x", color=pages.GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title("Share of training time in optimizer.step()" + (f" ({task})" if task else ""))
    return fig


def write_figures(data: ReportData, rows: list[SummaryRow], line_panels: list[views.Panel],
                  out: Path) -> list[Path]:
    """Write every PNG figure into ``out``; returns their paths."""
    plt = pyplot()
    paths = []
    for panel in line_panels:
        fig = _panel_figure(plt, panel, data.task)
        paths.append(save_png(fig, Path(out) / PANEL_FILES[panel.id]))
        plt.close(fig)
    fig = _share_figure(plt, rows, data.task)
    paths.append(save_png(fig, Path(out) / "step_share.png"))
    plt.close(fig)
    return paths
