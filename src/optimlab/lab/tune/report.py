"""The report of a tuning study: ``report.html`` (self-contained) and ``tune_summary.csv``.

Read from the study's storage only (:func:`.results.load_results`, :func:`.results.summarize`), in
the look of :mod:`optimlab.lab.pages`. Per task and optimizer: the ranges it searched, the trials
used against the equal budget, the best hyperparameters, the test accuracy of the best
configuration over seeds (mean and 95% CI, in %) and the steps and seconds its final seeds took to
first reach the task's validation target (median and interval over seeds, AlgoPerf's measure). Per
task: a one-line verdict (Welch's test against the best optimizer, Holm-corrected, checked against
tuning noise), the learning-rate sensitivity of every trial as one small panel per optimizer (small
multiples on one y-range), the expected best validation accuracy as a function of the number of
trials (Dodge et al. 2019) and the validation curves of the final runs. Across tasks: performance
profiles of time-to-target (Dolan & Moré), in steps and in wall-clock seconds, ties drawn apart;
with a single task they would say nothing, so they are left out with a sentence why.

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
from ..stats import median_interval
from .config import EVALS_PER_EPOCH, TuneConfig
from .profiles import performance_profile, profile_taus
from .results import (
    TaskSummary,
    TuneResults,
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
    parts = [_range_text(d) for d in dimensions(cfg.space, phase, cfg.lr_range, cfg.custom)]
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
        lr_dims = [d for d in dimensions(cfg.space, cfg.specs[o].phases[0], cfg.lr_range, cfg.custom)
                   if d.key == "lr"]
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
    """The final runs' validation curves (median over seeds at each evaluation) and the target."""
    traces: list[dict[str, Any]] = []
    for o in results.config.optimizers:
        by_step: dict[int, list[float]] = {}
        for f in results.results[(summary.task, o)].finals:
            for step, acc, *_ in f.get("evaluations") or []:
                if acc is not None and math.isfinite(acc):
                    by_step.setdefault(int(step), []).append(float(acc))
        if not by_step:
            continue
        steps = sorted(by_step)
        traces.append({
            "type": "scatter", "mode": "lines+markers" if len(steps) <= 30 else "lines",
            "name": escape(labels[o]), "x": steps,
            "y": [100 * median_interval(by_step[k]).estimate for k in steps],
            "line": {"color": palette[o], "width": 2}, "marker": {"size": 4},
            "hovertemplate": "%{y:.2f}%",
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
    chart_layout = layout("Validation accuracy of the final runs (median over seeds)", "step",
                          "validation accuracy (%)", hover="x unified")
    note = (f"Evaluated on the validation split every {EVALS_PER_EPOCH}th of an epoch; the dashed "
            "line is the validation target.")
    return Chart(ident, traces, chart_layout, note)


def _expected_best_chart(summary: TaskSummary, optimizers: tuple[str, ...], labels: dict[str, str],
                         palette: dict[str, str], ident: str) -> Chart | None:
    """Dodge et al. 2019: the expected best validation accuracy of n trials, per optimizer."""
    traces = []
    for o in optimizers:
        row = next(r for r in summary.rows if r.optimizer == o)
        if not row.expected_best:
            continue
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": escape(labels[o]),
            "x": list(range(1, len(row.expected_best) + 1)),
            "y": [100 * v for v in row.expected_best],
            "line": {"color": palette[o], "width": 2}, "marker": {"size": 5},
            "hovertemplate": "%{y:.2f}%",
        })
    if not traces:
        return None
    chart_layout = layout("Expected best validation accuracy of n trials", "trials (n)",
                          "expected best (%)", hover="x unified")
    note = ("How easy each optimizer is to tune (Dodge et al. 2019): the expected best validation "
            "accuracy of a study that had run only n of its complete trials (the mean best over "
            "every n-subset; diverged trials score 0).")
    return Chart(ident, traces, chart_layout, note)


def _profile_chart(times: dict[str, dict[str, float]], what: str, optimizers: tuple[str, ...],
                   labels: dict[str, str], palette: dict[str, str]) -> Chart:
    """Dolan-Moré profiles; optimizers with identical profiles (ties) are drawn with their own
    dash and width, and named together in the legend, so that no curve hides another."""
    taus = profile_taus(times)
    prof = performance_profile(times, taus)
    same: dict[tuple[float, ...], list[str]] = {}
    for o in optimizers:
        same.setdefault(tuple(prof.get(o, [0.0] * len(taus))), []).append(o)
    dashes = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
    traces = []
    for o in optimizers:
        tied = same[tuple(prof.get(o, [0.0] * len(taus)))]
        k = tied.index(o)
        name = labels[o] if len(tied) == 1 else (
            f"{labels[o]} (tied with {', '.join(labels[t] for t in tied if t != o)})")
        traces.append({
            "type": "scatter", "mode": "lines",
            "line": {"shape": "hv", "color": palette[o], "dash": dashes[k % len(dashes)],
                     "width": 2 + 1.5 * (len(tied) - 1 - k)},
            "name": escape(name), "x": taus, "y": prof.get(o, [0.0] * len(taus)),
        })
    chart_layout = layout(f"Performance profile of time-to-target ({what})",
                          "tau: within this factor of the best optimizer (log)", "fraction of tasks",
                          log_x=True)
    chart_layout["yaxis"]["range"] = [-0.02, 1.02]
    return Chart(f"profile-{what.replace(' ', '-')}", traces, chart_layout)


def _ties(times: dict[str, dict[str, float]]) -> list[str]:
    """Per task, the optimizers whose median time-to-target is the same number."""
    out = []
    for task, by in times.items():
        groups: dict[float, list[str]] = {}
        for o, t in by.items():
            if math.isfinite(t):
                groups.setdefault(t, []).append(o)
        out += [f"{task}: {' = '.join(g)} ({t:g})" for t, g in groups.items() if len(g) > 1]
    return out


_HEAD = (("rank", ""), ("optimizer", "text"), ("searched", "text"),
         ("complete trials / budget (pruned)", ""), ("best hyperparameters", "text"),
         ("best validation accuracy (%)", ""), ("test accuracy (%)", ""), ("± 95% CI (pp)", ""),
         ("seeds finished / total", ""), ("steps to target: median [CI]", ""),
         ("seeds reaching the target", ""), ("seconds to target (median)", ""))



def _coverage(summary: TaskSummary) -> str:
    """The coverage the intervals of steps to target achieve (it depends on the number of seeds)."""
    levels = sorted({(r.to_target.runs, r.to_target.steps.level) for r in summary.rows
                     if r.to_target.runs and math.isfinite(r.to_target.steps.level)})
    return (" (" + ", ".join(f"{lv:.0%} for {n} seeds" for n, lv in levels) + ")") if levels else ""


def _task_table(summary: TaskSummary, cfg: TuneConfig, labels: dict[str, str],
                palette: dict[str, str]) -> str:
    rows = []
    total = len(cfg.evaluation_seeds())
    for rank, r in enumerate(ranking(summary), start=1):
        budget = f"{r.trials_complete} / {r.budget} ({r.trials_pruned} pruned)"
        if r.trials_failed:
            budget += f" ({r.trials_failed} failed, retried)"
        budget_html = (f'<span class="warn">{escape(budget)}: unequal budget</span>'
                       if r.trials_complete != r.budget else escape(budget))
        name = pages.name_html(labels[r.optimizer], r.optimizer, palette[r.optimizer])
        finished = len(r.test_accuracies)
        seeds = f'<span class="{"bad" if finished == 0 else ""}">{finished}/{total}</span>'
        if r.seeds_diverged:
            seeds += f' <span class="bad">({r.seeds_diverged} diverged)</span>'
        seconds = r.to_target.seconds.estimate
        rows.append([
            Cell(str(rank), rank), Cell(name, labels[r.optimizer].lower(), "text wrap narrow"),
            Cell(escape(search_space(cfg, r.optimizer)), None, "text wrap narrow"),
            Cell(budget_html, r.trials_complete),
            Cell(escape(hyperparameters_text(r.best_hyperparameters)), None, "text wrap narrow"),
            Cell(fmt(100 * r.best_validation_accuracy, ".2f"), 100 * r.best_validation_accuracy),
            Cell(fmt(100 * r.test_accuracy_mean, ".2f"), 100 * r.test_accuracy_mean),
            Cell(fmt(100 * r.test_accuracy_ci95, ".2f"), 100 * r.test_accuracy_ci95),
            Cell(seeds, finished),
            Cell(escape(r.to_target.steps_text()), r.to_target.steps.estimate),
            Cell(f"{r.to_target.reached}/{r.to_target.runs}", r.to_target.reached),
            Cell(escape(fmt(seconds, ".3g", infinite=f"not reached in {r.to_target.steps_run} steps")),
                 seconds),
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
        target_text = (f"{s.target_source}: {fmt(100 * s.target, '.2f')}%"
                       if s.target_source != "relative" else
                       "0.99 × the best validation accuracy any final run reached = "
                       f"{fmt(100 * s.target, '.2f')}%")
        small, without = _sensitivity_charts(results, s.task, labels, palette)
        charts += small
        sens_note = ("Each trial's validation accuracy after its last epoch against its learning rate, "
                     "over the range searched: ● complete, ○ pruned (its last reported value), "
                     "× diverged (at the bottom edge). One y-range for every panel.")
        if without:
            sens_note += f" Not shown: {', '.join(without)}, whose learning rate was fixed, not tuned."
        sens = ('<div class="grid small">' + "".join(c.card() for c in small) + "</div>" if small else
                pages.skipped("Learning-rate sensitivity", "No optimizer tuned its learning rate."))
        more = []
        best = _expected_best_chart(s, cfg.optimizers, labels, palette, f"expected-{k}")
        curves = _curves_chart(results, s, labels, palette, f"curves-{k}")
        for chart, title, why in ((best, "Expected best validation accuracy of n trials",
                                   "No optimizer has a complete trial yet."),
                                  (curves, "Validation accuracy of the final runs",
                                   "No final run has been evaluated yet.")):
            if chart is not None:
                charts.append(chart)
                more.append(chart.card())
            else:
                more.append(pages.skipped(title, why))
        sections.append(
            f'<section class="card"><h2>Task {escape(s.task)}</h2>'
            f'<p class="verdict">{escape(s.verdict.line())}</p>'
            f"{_task_table(s, cfg, labels, palette)}"
            f'<p class="note">Accuracies in %; ± is the 95% confidence interval over the final seeds '
            f"(Student's t), in percentage points (pp). Validation target: {escape(target_text)}. "
            "Time-to-target (AlgoPerf): each final seed trains on the training split minus the "
            f"validation split and is evaluated on it every {EVALS_PER_EPOCH}th of an epoch; its "
            "steps and seconds are those of the first evaluation at or above the target. Shown: the "
            f"median over seeds with its order-statistic interval{_coverage(s)}; a median of \"not "
            "reached\" means most seeds never reached it.</p></section>"
            f'<section class="card"><h2>Learning-rate sensitivity: {escape(s.task)}</h2>'
            f'<p class="note">{escape(sens_note)}</p>{sens}</section>'
            '<div class="grid">' + "".join(more) + "</div>"
        )
    if len(summaries) > 1:
        times = profiles(summaries)
        prof = [_profile_chart(times["steps"], "steps", cfg.optimizers, labels, palette),
                _profile_chart(times["wall_time_s"], "wall-clock seconds", cfg.optimizers, labels, palette)]
        charts += prof
        ties = _ties(times["steps"])
        sections.append(
            '<section class="card"><h2>Across tasks: performance profiles</h2><p class="note">Dolan '
            "&amp; Moré: for each optimizer, the fraction of tasks on which its median time-to-target "
            "is within a factor tau of the fastest optimizer's on that task; an optimizer whose median "
            "seed never reached the target never counts. "
            + (f"Ties in steps: {escape('; '.join(ties))}. " if ties else "No ties in steps. ")
            + "Tied optimizers have the same curve; each is drawn with its own dash.</p></section>"
            '<div class="grid">' + "".join(c.card() for c in prof) + "</div>")
    else:
        sections.append(pages.skipped(
            "Performance profiles", "Left out: they compare optimizers across tasks, and with one "
            "task every curve is a step from 0 to 1 that the table above already says."))
    space = SPACES[cfg.space]
    facts = pages.facts([
        ("tasks", ", ".join(cfg.tasks)), ("budget", f"{cfg.budget} complete trials per optimizer"),
        ("search space", cfg.space), ("final seeds", str(cfg.seeds)),
        ("epochs per run", "task default" if cfg.epochs is None else str(cfg.epochs)),
    ])
    protocol = [
        ("study", f"{results.name} in {results.storage}"),
        ("budget", (f"{cfg.budget} complete trials per optimizer, the same for each (a pruned "
                    "trial is no evaluation: its slot gets a new trial)")),
        ("search space", f"{space.name}: {space.source}"
                         + (f"; lr range {cfg.lr_range[0]:g} to {cfg.lr_range[1]:g}" if cfg.lr_range else "")
                         + (f"; given: {', '.join(cfg.dimensions)}" if cfg.dimensions else "")),
        ("selection", (f"last-epoch accuracy on a validation split of {cfg.validation_fraction:g} "
                       "of the training data; the test split is never used for selection")),
        ("pruning", ("Optuna's MedianPruner on each epoch's validation accuracy, never before a "
                     "trial has run half its epochs, off below 3 epochs; a diverged run is a "
                     "complete trial of score 0")),
        ("verdict", ("Welch's test over the final seeds, Holm-corrected; a difference counts only "
                     "when the best optimizer's best trial also beats the other's when each "
                     "study's trials are redrawn (bootstrap), else it is within tuning noise")),
        *((k.replace("_", " "), str(v)) for k, v in cfg.run_options().items()
          if v is not None and v is not False),
        ("final evaluation", (f"the best configuration re-trained for seeds "
                              f"{', '.join(map(str, cfg.evaluation_seeds()))} (not the trials' "
                              "seed) on the training split minus the validation split, evaluated "
                              "on it at a fixed interval of steps, then tested on the test split")),
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
