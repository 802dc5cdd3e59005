"""The report of a tuning study: ``report.html`` (self-contained) and ``tune_summary.csv``.

Read from the study's storage only (:func:`.results.load_results`, :func:`.results.summarize`), in
the look of :mod:`optimlab.lab.pages`. Per task and optimizer: the ranges it searched, the trials
used against the equal budget, the best hyperparameters, the test accuracy of the best
configuration over seeds (mean and 95% CI, in %) and the time and steps it took to first reach the
task's validation target. Per task: a one-line verdict (Welch's test against the best optimizer,
Holm-corrected), the learning-rate sensitivity of every trial as one small panel per optimizer
(small multiples on one y-range) and the validation curves of the best trials. Across tasks:
performance profiles of time-to-target (Dolan & Moré), in steps and in wall-clock seconds; with a
single task they would say nothing, so they are left out with a sentence why.

The page embeds plotly.js, so it opens offline; every string that comes from the user (task and
optimizer names, specs, the study name) is HTML-escaped, and chart data goes through JSON with
``<``, ``>`` and ``&`` escaped so that no string can close the ``<script>`` it sits in.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ...optim import Dimension
from .. import pages
from ..files import atomic_write_text
from ..pages import Cell, Chart, colors, escape, fmt, layout, number
from ..provenance import provenance_section
from .config import TuneConfig
from .profiles import performance_profile, profile_taus
from .results import (
    TaskSummary,
    TuneResults,
    curve,
    hyperparameters_text,
    profiles,
    ranking,
    summarize,
    summary_csv,
)
from .space import SPACES, dimensions

REPORT_NAME = "report.html"
CSV_NAME = "tune_summary.csv"


# ---- HTML -----------------------------------------------------------------------------------------
def _trial_lr(t: FrozenTrial) -> float | None:
    if "lr" in t.params:
        return float(t.params["lr"])
    return None


def _trial_accuracy(t: FrozenTrial) -> float | None:
    if t.state == TrialState.COMPLETE and t.value is not None:
        return float(t.value)
    if t.state == TrialState.PRUNED and t.intermediate_values:
        v = t.intermediate_values[max(t.intermediate_values)]
        return float(v) if math.isfinite(v) else None
    return None


def _range_text(d: Dimension) -> str:
    """A searched dimension as words: ``lr 10⁻⁴ to 1 (log)``, ``momentum 0.1 to 0.999 (log of 1 − momentum)``."""
    if d.complement:
        name = d.key if d.index is None else f"{d.key}[{d.index}]"
        lo, hi = 1 - d.high, 1 - d.low
        return f"{name} {number(lo, 3)} to {number(hi, 3)} (log of 1 − {name})"
    return f"{d.name} {number(d.low, 3)} to {number(d.high, 3)}" + (" (log)" if d.log else "")


def search_space(cfg: TuneConfig, optimizer: str) -> str:
    """What ``optimizer`` searched: each tuned dimension's range and the fixed hyperparameters."""
    phase = cfg.specs[optimizer].phases[0]
    parts = [_range_text(d) for d in dimensions(cfg.space, phase, cfg.lr_range)]
    fixed = ", ".join(f"{k}={v}" for k, v in phase.hyperparameters.items())
    return "; ".join(parts) + (f"; fixed: {fixed}" if fixed else "")


def _sensitivity_charts(results: TuneResults, task: str, labels: dict[str, str],
                        palette: dict[str, str]) -> tuple[list[Chart], list[str]]:
    """One small chart per optimizer: each trial's validation accuracy (%) against its learning
    rate over the searched range, all on one y-range; the optimizers without a tuned lr are
    named (they have nothing to show here)."""
    cfg = results.config
    points: dict[str, dict[str, list]] = {}
    for o in cfg.optimizers:
        groups = {"complete": ([], [], []), "pruned": ([], [], []), "diverged": ([], [], [])}
        for t in results.results[(task, o)].trials:
            lr = _trial_lr(t)
            if lr is None:
                continue
            spec = escape(str(t.user_attrs.get("spec", "")))
            if t.user_attrs.get("status") == "diverged":
                groups["diverged"][0].append(lr)
                groups["diverged"][2].append(f"{spec}<br>diverged at step {t.user_attrs.get('diverged_step')}")
                continue
            acc = _trial_accuracy(t)
            if acc is None:
                continue
            key = "complete" if t.state == TrialState.COMPLETE else "pruned"
            groups[key][0].append(lr)
            groups[key][1].append(100 * acc)
            groups[key][2].append(spec + ("" if key == "complete" else "<br>pruned: its last reported value"))
        points[o] = groups
    values = [y for g in points.values() for key in ("complete", "pruned") for y in g[key][1]]
    lo, hi = (min(values), max(values)) if values else (0.0, 100.0)
    pad = max(1.0, 0.06 * (hi - lo))
    y_range = [max(0.0, lo - pad), min(100.0, hi + pad)]
    charts, without = [], []
    for k, o in enumerate(cfg.optimizers):
        lr_dims = [d for d in dimensions(cfg.space, cfg.specs[o].phases[0], cfg.lr_range) if d.key == "lr"]
        if not lr_dims:
            without.append(labels[o])
            continue
        traces = []
        for key, symbol in (("complete", "circle"), ("pruned", "circle-open"), ("diverged", "x")):
            xs, ys, texts = points[o][key]
            if not xs:
                continue
            traces.append({
                "type": "scatter", "mode": "markers", "x": xs,
                "y": ys if key != "diverged" else [y_range[0]] * len(xs),
                "name": key, "text": texts, "showlegend": False,
                "hovertemplate": "lr %{x:.3g}: %{y:.2f}%<br>%{text}<extra></extra>" if key != "diverged"
                else "lr %{x:.3g}<br>%{text}<extra></extra>",
                "marker": {"color": palette[o], "symbol": symbol, "size": 9,
                           "line": {"color": palette[o], "width": 1.5}},
            })
        chart_layout = layout(labels[o], "learning rate (log)", "validation accuracy (%)",
                              log_x=True, legend=False, plot_height=170)
        chart_layout["margin"].update(l=48, b=42)
        d = lr_dims[0]
        decades = [10.0**e for e in range(math.ceil(math.log10(d.low)), math.floor(math.log10(d.high)) + 1)]
        step = max(1, math.ceil(len(decades) / 5))
        chart_layout["xaxis"].update(
            range=[math.log10(d.low) - 0.1, math.log10(d.high) + 0.1], autorange=False,
            tickmode="array", tickvals=decades[::step],
            ticktext=[pages.power_text(1, round(math.log10(v))) for v in decades[::step]])
        chart_layout["yaxis"].update(range=y_range, autorange=False)
        charts.append(Chart(f"sensitivity-{task}-{k}", traces, chart_layout))
    return charts, without


def _curves_chart(results: TuneResults, summary: TaskSummary, labels: dict[str, str],
                  palette: dict[str, str], ident: str) -> Chart | None:
    traces: list[dict[str, Any]] = []
    for o in results.config.optimizers:
        r = results.results[(summary.task, o)]
        if r.best is None:
            continue
        pts = curve(r.best.user_attrs.get("curve"))
        traces.append({
            "type": "scatter", "mode": "lines+markers" if len(pts) <= 30 else "lines",
            "name": escape(labels[o]), "x": [p.step for p in pts],
            "y": [100 * p.accuracy if math.isfinite(p.accuracy) else None for p in pts],
            "line": {"color": palette[o], "width": 2}, "hovertemplate": "%{y:.2f}%",
        })
    if not traces:
        return None
    if math.isfinite(summary.target):
        xs = [x for tr in traces for x in tr["x"]]
        traces.append({
            "type": "scatter", "mode": "lines", "name": "validation target",
            "x": [0, max(xs) if xs else 1], "y": [100 * summary.target] * 2,
            "line": {"color": "#1f2933", "dash": "dash", "width": 1}, "hoverinfo": "skip",
        })
    chart_layout = layout("Validation accuracy of each optimizer's best trial", "step",
                          "validation accuracy (%)", hover="x unified")
    note = "One seed on the validation split; the dashed line is the validation target."
    return Chart(ident, traces, chart_layout, note)


def _profile_chart(times: dict[str, dict[str, float]], what: str, optimizers: tuple[str, ...],
                   labels: dict[str, str], palette: dict[str, str]) -> Chart:
    taus = profile_taus(times)
    prof = performance_profile(times, taus)
    traces = [
        {"type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": palette[o], "width": 2},
         "name": escape(labels[o]), "x": taus, "y": prof.get(o, [0.0] * len(taus))}
        for o in optimizers
    ]
    chart_layout = layout(f"Performance profile of time-to-target ({what})",
                          "tau: within this factor of the best optimizer (log)", "fraction of tasks",
                          log_x=True)
    chart_layout["yaxis"]["range"] = [-0.02, 1.02]
    return Chart(f"profile-{what.replace(' ', '-')}", traces, chart_layout)


_HEAD = (("rank", ""), ("optimizer", "text"), ("searched", "text"), ("trials: complete + pruned / budget", ""),
         ("best hyperparameters", "text"), ("best validation accuracy (%)", ""),
         ("test accuracy (%)", ""), ("± 95% CI (pp)", ""), ("seeds finished / total", ""),
         ("time to target (s)", ""), ("steps to target", ""))


def _task_table(summary: TaskSummary, cfg: TuneConfig, labels: dict[str, str],
                palette: dict[str, str]) -> str:
    rows = []
    total = len(cfg.evaluation_seeds())
    for rank, r in enumerate(ranking(summary), start=1):
        used = r.trials_complete + r.trials_pruned
        budget = f"{r.trials_complete} + {r.trials_pruned} / {r.budget}"
        if r.trials_failed:
            budget += f" ({r.trials_failed} failed, retried)"
        budget_html = (f'<span class="warn">{escape(budget)}: unequal budget</span>' if used != r.budget
                       else escape(budget))
        name = pages.name_html(labels[r.optimizer], r.optimizer, palette[r.optimizer])
        finished = len(r.test_accuracies)
        seeds = f'<span class="{"bad" if finished == 0 else ""}">{finished}/{total}</span>'
        if r.seeds_diverged:
            seeds += f' <span class="bad">({r.seeds_diverged} diverged)</span>'
        rows.append([
            Cell(str(rank), rank), Cell(name, labels[r.optimizer].lower(), "text wrap narrow"),
            Cell(escape(search_space(cfg, r.optimizer)), None, "text wrap narrow"),
            Cell(budget_html, used),
            Cell(escape(hyperparameters_text(r.best_hyperparameters)), None, "text wrap narrow"),
            Cell(fmt(100 * r.best_validation_accuracy, ".2f"), 100 * r.best_validation_accuracy),
            Cell(fmt(100 * r.test_accuracy_mean, ".2f"), 100 * r.test_accuracy_mean),
            Cell(fmt(100 * r.test_accuracy_ci95, ".2f"), 100 * r.test_accuracy_ci95),
            Cell(seeds, finished),
            Cell(fmt(r.time_to_target.wall_time_s, ".3g"), r.time_to_target.wall_time_s),
            Cell(fmt(r.time_to_target.steps, ".0f"), r.time_to_target.steps),
        ])
    return pages.table(_HEAD, rows, table_id=f"summary-{summary.task}")


def render_html(results: TuneResults, summaries: list[TaskSummary]) -> str:
    """The self-contained report page."""
    cfg = results.config
    labels = dict(zip(cfg.optimizers, pages.short_labels(list(cfg.optimizers))))
    palette = dict(zip(cfg.optimizers, colors(list(cfg.optimizers))))
    charts: list[Chart] = []
    sections = []
    for k, s in enumerate(summaries):
        target_text = (f"declared by the task: {fmt(100 * s.target, '.2f')}%" if s.target_declared else
                       f"0.99 × the best validation accuracy reached by any optimizer's best "
                       f"trial = {fmt(100 * s.target, '.2f')}%")
        small, without = _sensitivity_charts(results, s.task, labels, palette)
        charts += small
        curves = _curves_chart(results, s, labels, palette, f"curves-{k}")
        sens_note = ("Each trial's validation accuracy after its last epoch against its learning rate, "
                     "over the range searched: ● complete, ○ pruned (its last reported value), "
                     "× diverged (at the bottom edge). One y-range for every panel.")
        if without:
            sens_note += f" Not shown: {', '.join(without)}, whose learning rate was fixed, not tuned."
        sens = ('<div class="grid small">' + "".join(c.card() for c in small) + "</div>" if small else
                pages.skipped("Learning-rate sensitivity", "No optimizer tuned its learning rate."))
        if curves is not None:
            charts.append(curves)
        curves_html = curves.card() if curves is not None else pages.skipped(
            "Validation accuracy of the best trials", "No optimizer has a finished trial yet.")
        sections.append(
            f'<section class="card"><h2>Task {escape(s.task)}</h2>'
            f'<p class="verdict">{escape(s.verdict.line())}</p>'
            f"{_task_table(s, cfg, labels, palette)}"
            f'<p class="note">Accuracies in %; ± is the 95% confidence interval over the final seeds '
            f"(Student's t), in percentage points (pp). Validation target: {escape(target_text)}. "
            "Time and steps to target are those of the best trial (one seed, on the validation "
            "split), at the end of the first epoch at or above the target.</p></section>"
            f'<section class="card"><h2>Learning-rate sensitivity: {escape(s.task)}</h2>'
            f'<p class="note">{escape(sens_note)}</p>{sens}</section>'
            + curves_html
        )
    if len(summaries) > 1:
        times = profiles(summaries)
        prof = [_profile_chart(times["steps"], "steps", cfg.optimizers, labels, palette),
                _profile_chart(times["wall_time_s"], "wall-clock seconds", cfg.optimizers, labels, palette)]
        charts += prof
        sections.append(
            '<section class="card"><h2>Across tasks: performance profiles</h2><p class="note">Dolan '
            "&amp; Moré: for each optimizer, the fraction of tasks on which its time-to-target is "
            "within a factor tau of the fastest optimizer's on that task; an optimizer that never "
            "reached the target never counts.</p></section>"
            '<div class="grid">' + "".join(c.card() for c in prof) + "</div>")
    else:
        sections.append(pages.skipped(
            "Performance profiles", "Left out: they compare optimizers across tasks, and with one "
            "task every curve is a step from 0 to 1 that the table above already says."))
    space = SPACES[cfg.space]
    facts = pages.facts([
        ("tasks", ", ".join(cfg.tasks)), ("budget", f"{cfg.budget} trials per optimizer"),
        ("search space", cfg.space), ("final seeds", str(cfg.seeds)),
        ("epochs per run", "task default" if cfg.epochs is None else str(cfg.epochs)),
    ])
    protocol = [
        ("study", f"{results.name} in {results.storage}"),
        ("budget", f"{cfg.budget} trials per optimizer (complete or pruned), the same for each"),
        ("search space", f"{space.name}: {space.source}"
                         + (f"; lr range {cfg.lr_range[0]:g} to {cfg.lr_range[1]:g}" if cfg.lr_range else "")
                         + (f"; given: {', '.join(cfg.dimensions)}" if cfg.dimensions else "")),
        ("selection", (f"last-epoch accuracy on a validation split of {cfg.validation_fraction:g} "
                       "of the training data; the test split is never used for selection")),
        ("pruning", "Optuna's MedianPruner on each epoch's validation accuracy; diverged runs are pruned"),
        *((k.replace("_", " "), str(v)) for k, v in cfg.run_options().items()
          if v is not None and v is not False),
        ("final evaluation", (f"the best configuration re-trained on the full training split for seeds "
                              f"{', '.join(map(str, cfg.evaluation_seeds()))}, tested on the test split")),
    ]
    protocol_html = ('<section class="card"><h2>Protocol</h2><dl class="protocol">'
                     + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in protocol)
                     + "</dl></section>")
    body = protocol_html + "".join(sections) + provenance_section(results.provenance)
    return pages.page(f"optimlab tune: {results.name}", header=facts, body=body, charts=charts)


def write_report(results: TuneResults, out: Path,
                 summaries: list[TaskSummary] | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``tune_summary.csv`` into ``out`` (atomically); their paths."""
    out = Path(out)
    summaries = summaries if summaries is not None else summarize(results)
    html_path, csv_path = out / REPORT_NAME, out / CSV_NAME
    atomic_write_text(csv_path, summary_csv(summaries))
    atomic_write_text(html_path, render_html(results, summaries))
    return html_path, csv_path
