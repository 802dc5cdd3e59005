"""The report of a tuning study: ``report.html`` (self-contained) and ``tune_summary.csv``.

Read from the study's storage only (:func:`.results.load_results`, :func:`.results.summarize`). Per task and
optimizer: the trials used against the equal budget, the best hyperparameters, the test accuracy
of the best configuration over seeds (mean and 95% CI), and the time and steps it took to first
reach the task's validation target. Per task: a one-line verdict (Welch's test against the best
optimizer, Holm-corrected), the learning-rate sensitivity of every trial (validation accuracy
against lr, log axis) and the validation curves of the best trials. Across tasks: performance
profiles of time-to-target (Dolan & Moré), in steps and in wall-clock seconds.

The page embeds plotly.js, so it opens offline; every string that comes from the user (task and
optimizer names, specs, the study name) is HTML-escaped, and chart data goes through JSON with
``<``, ``>`` and ``&`` escaped so that no string can close the ``<script>`` it sits in.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ..files import atomic_write_text
from ..pages import colors, escape, fmt, layout, plotly_js, script_json
from ..provenance import provenance_section
from ..stats import median_interval
from .config import EVALS_PER_EPOCH
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
from .space import SPACES

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


def _sensitivity_chart(results: TuneResults, task: str) -> tuple[list[dict], dict]:
    traces: list[dict[str, Any]] = []
    palette = colors(results.config.optimizers)
    for i, o in enumerate(results.config.optimizers):
        color = palette[i]
        r = results.results[(task, o)]
        groups: dict[str, tuple[list[float], list[float], list[str]]] = {
            "complete": ([], [], []), "pruned": ([], [], []), "diverged": ([], [], [])}
        for t in r.trials:
            lr = _trial_lr(t)
            if lr is None:
                continue
            spec = html.escape(str(t.user_attrs.get("spec", "")))
            if t.user_attrs.get("status") == "diverged":
                g = groups["diverged"]
                g[0].append(lr)
                g[1].append(0.0)
                g[2].append(f"{spec}<br>diverged at step {t.user_attrs.get('diverged_step')}")
                continue
            acc = _trial_accuracy(t)
            if acc is None:
                continue
            key = "complete" if t.state == TrialState.COMPLETE else "pruned"
            g = groups[key]
            g[0].append(lr)
            g[1].append(acc)
            g[2].append(spec + ("" if key == "complete" else "<br>pruned (last reported value)"))
        for key, symbol in (("complete", "circle"), ("pruned", "circle-open"),
                            ("diverged", "x")):
            xs, ys, texts = groups[key]
            if not xs:
                continue
            traces.append({
                "type": "scatter", "mode": "markers", "x": xs, "y": ys,
                "name": html.escape(o if key == "complete" else f"{o} ({key})"),
                "legendgroup": html.escape(o),
                "text": texts, "hoverinfo": "x+y+text",
                "marker": {"color": color, "symbol": symbol, "size": 9},
            })
    chart_layout = layout(f"Learning-rate sensitivity: {task}", "learning rate (log)",
                     "final validation accuracy (diverged trials shown at 0)", log_x=True)
    return traces, chart_layout


def _curves_chart(results: TuneResults, summary: TaskSummary) -> tuple[list[dict], dict]:
    """The final runs' validation curves (median over seeds at each evaluation) and the target."""
    traces: list[dict[str, Any]] = []
    palette = colors(results.config.optimizers)
    for i, o in enumerate(results.config.optimizers):
        by_step: dict[int, list[float]] = {}
        for f in results.results[(summary.task, o)].finals:
            for step, acc, *_ in f.get("evaluations") or []:
                if acc is not None:
                    by_step.setdefault(int(step), []).append(float(acc))
        if not by_step:
            continue
        steps = sorted(by_step)
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": html.escape(o),
            "x": steps, "y": [median_interval(by_step[k]).estimate for k in steps],
            "line": {"color": palette[i]}, "marker": {"size": 4},
        })
    if math.isfinite(summary.target) and traces:
        xs = [x for tr in traces for x in tr["x"]]
        traces.append({
            "type": "scatter", "mode": "lines", "name": "target",
            "x": [0, max(xs) if xs else 1], "y": [summary.target, summary.target],
            "line": {"color": "#000", "dash": "dash", "width": 1},
        })
    chart_layout = layout(f"Validation accuracy of the final runs (median over seeds): "
                          f"{summary.task}", "steps", "validation accuracy")
    return traces, chart_layout


def _expected_best_chart(results: TuneResults, summary: TaskSummary) -> tuple[list[dict], dict]:
    """Dodge et al. 2019: the expected best validation accuracy of n trials, per optimizer."""
    palette = colors(results.config.optimizers)
    traces = []
    for i, o in enumerate(results.config.optimizers):
        row = next(r for r in summary.rows if r.optimizer == o)
        if not row.expected_best:
            continue
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": html.escape(o),
            "x": list(range(1, len(row.expected_best) + 1)), "y": list(row.expected_best),
            "line": {"color": palette[i]},
        })
    chart_layout = layout(f"Expected best validation accuracy by number of trials: {summary.task}",
                          "trials (n)", "expected best of n trials")
    return traces, chart_layout


def _space_text(space: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {lo:.3g}..{hi:.3g}" for k, (lo, hi) in space.items()) or "fixed"


def _profile_chart(times: dict[str, dict[str, float]], what: str, optimizers: tuple[str, ...]
                   ) -> tuple[list[dict], dict]:
    """Dolan-Moré profiles; optimizers with identical profiles (ties) are drawn with their own
    dash and marker, and named together in the legend, so that no curve hides another."""
    taus = profile_taus(times)
    palette = colors(optimizers)
    prof = performance_profile(times, taus)
    same: dict[tuple[float, ...], list[str]] = {}
    for o in optimizers:
        same.setdefault(tuple(prof.get(o, [0.0] * len(taus))), []).append(o)
    dashes = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
    traces = []
    for i, o in enumerate(optimizers):
        tied = same[tuple(prof.get(o, [0.0] * len(taus)))]
        k = tied.index(o)
        name = o if len(tied) == 1 else f"{o} (tied with {', '.join(t for t in tied if t != o)})"
        traces.append({
            "type": "scatter", "mode": "lines+markers",
            "line": {"shape": "hv", "color": palette[i], "dash": dashes[k % len(dashes)],
                     "width": 2 + 1.5 * (len(tied) - 1 - k)},
            "marker": {"size": 5}, "name": html.escape(name), "x": taus,
            "y": prof.get(o, [0.0] * len(taus)),
        })
    chart_layout = layout(f"Performance profile of time-to-target ({what})",
                          "tau: within this factor of the best optimizer (log)",
                          "fraction of tasks", log_x=True)
    chart_layout["yaxis"]["range"] = [-0.02, 1.02]
    return traces, chart_layout


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


def _task_table(summary: TaskSummary) -> str:
    head = ("rank", "optimizer", "search space", "complete trials / budget (pruned)",
            "best hyperparameters", "best validation accuracy", "test accuracy (mean ± 95% CI)",
            "seeds", "diverged seeds", "steps to target (median [CI], seeds reached)",
            "seconds to target (median)")
    rows = []
    for rank, r in enumerate(ranking(summary), start=1):
        budget_cell = f"{r.trials_complete} / {r.budget} ({r.trials_pruned} pruned)"
        if r.trials_failed:
            budget_cell += f" ({r.trials_failed} failed, retried)"
        if r.trials_complete != r.budget:
            budget_cell = f'<span class="warn">{escape(budget_cell)} unequal budget</span>'
        else:
            budget_cell = escape(budget_cell)
        test = (f"{fmt(r.test_accuracy_mean, '.4f')} ± {fmt(r.test_accuracy_ci95, '.4f')}"
                if r.test_accuracies else "–")
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                rank, escape(r.optimizer), escape(_space_text(r.space)), budget_cell,
                escape(hyperparameters_text(r.best_hyperparameters)),
                fmt(r.best_validation_accuracy, ".4f"), test, len(r.test_accuracies),
                r.seeds_diverged, escape(r.to_target.describe()),
                escape(fmt(r.to_target.seconds.estimate, ".3g",
                           infinite=f"not reached in {r.to_target.steps_run} steps")),
            )) + "</tr>"
        )
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render_html(results: TuneResults, summaries: list[TaskSummary]) -> str:
    """The self-contained report page."""
    cfg = results.config
    charts: list[tuple[str, list[dict], dict]] = []
    sections = []
    for k, s in enumerate(summaries):
        sens_id, curves_id, best_id = f"sensitivity-{k}", f"curves-{k}", f"expected-{k}"
        charts.append((sens_id, *_sensitivity_chart(results, s.task)))
        charts.append((best_id, *_expected_best_chart(results, s)))
        charts.append((curves_id, *_curves_chart(results, s)))
        target_text = (f"{s.target_source}: {fmt(s.target, '.4f')}" if s.target_source != "relative"
                       else "0.99 × the best validation accuracy any final run reached = "
                       f"{fmt(s.target, '.4f')}")
        sections.append(
            f'<section><h2>Task {escape(s.task)}</h2>'
            f'<p class="verdict">{escape(s.verdict.line())}</p>'
            f"{_task_table(s)}"
            f"<p class=\"note\">Validation target: {escape(target_text)}. Time-to-target "
            "(AlgoPerf): each final seed trains on the training split minus the validation "
            f"split and is evaluated on it every {EVALS_PER_EPOCH}th of an epoch; its steps and "
            "seconds are those of the first evaluation at or above the target. Shown: the median "
            "over seeds with its order-statistic interval; a median of \"not reached\" means "
            "most seeds never reached it.</p>"
            f'<div id="{sens_id}" class="chart"></div>'
            "<p class=\"note\">How easy each optimizer is to tune (Dodge et al. 2019): the "
            "expected best validation accuracy of a study that had run only n of its complete "
            "trials (the mean best over every n-subset; diverged trials score 0).</p>"
            f'<div id="{best_id}" class="chart"></div><div id="{curves_id}" class="chart"></div>'
            "</section>"
        )
    profile_html = ""
    if len(summaries) >= 2:  # one task makes every profile a step from 0 to 1: none is drawn
        times = profiles(summaries)
        charts.append(("profile-steps", *_profile_chart(times["steps"], "steps", cfg.optimizers)))
        charts.append(("profile-wall", *_profile_chart(times["wall_time_s"], "wall-clock",
                                                       cfg.optimizers)))
        ties = _ties(times["steps"])
        profile_html = (
            "<section><h2>Across tasks: performance profiles</h2>"
            "<p class=\"note\">Dolan &amp; Moré: for each optimizer, the fraction of tasks on which "
            "its median time-to-target is within a factor tau of the fastest optimizer's on that "
            "task; an optimizer whose median seed never reached the target never counts. "
            + (f"Ties in steps: {escape('; '.join(ties))}. " if ties else "No ties in steps. ")
            + "Tied optimizers have the same curve; each is drawn with its own dash.</p>"
            '<div id="profile-steps" class="chart"></div><div id="profile-wall" class="chart"></div>'
            "</section>"
        )
    space = SPACES[cfg.space]
    config_items = [
        ("study", results.name), ("storage", results.storage),
        ("tasks", ", ".join(cfg.tasks)), ("optimizers", ", ".join(cfg.optimizers)),
        ("budget", (f"{cfg.budget} complete trials per optimizer, the same for each (a pruned "
                   "trial is no evaluation: its slot gets a new trial)")),
        ("search space", f"{space.name}: {space.source}"
                         + (f"; lr range {cfg.lr_range[0]:g}..{cfg.lr_range[1]:g}"
                            if cfg.lr_range else "")
                         + (f"; given: {', '.join(cfg.dimensions)}" if cfg.dimensions else "")),
        ("selection", (f"last-epoch accuracy on a validation split of {cfg.validation_fraction:g} "
                      "of the training data; the test split is never used for selection")),
        ("pruning", ("Optuna MedianPruner on each epoch's validation accuracy, never before a "
                    "trial has run half its epochs, off below 3 epochs; a diverged run is a "
                    "complete trial of score 0")),
        ("verdict", ("Welch's test over the final seeds, Holm-corrected; a difference counts only "
                     "when the best optimizer's best trial also beats the other's when each "
                     "study's trials are redrawn (bootstrap), else it is within tuning noise")),
        ("epochs per run", "task default" if cfg.epochs is None else str(cfg.epochs)),
        *((k.replace("_", " "), str(v)) for k, v in cfg.run_options().items()
          if v is not None and v is not False),
        ("final evaluation", (f"best configuration re-trained for seeds "
                             f"{', '.join(map(str, cfg.evaluation_seeds()))} (not the trials' "
                             "seed) on the training split minus the validation split, evaluated "
                             "on it at a fixed interval of steps, then tested on the test "
                             "split")),
    ]
    config_html = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in config_items)
    scripts = "".join(
        f"Plotly.newPlot({script_json(div)}, {script_json(data)}, {script_json(chart_layout)}, "
        f'{{"responsive": true, "displaylogo": false}});'
        for div, data, chart_layout in charts
    )
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>optimlab tune: {escape(results.name)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;vertical-align:top}.verdict{font-weight:600}.note{color:#555}"
        ".warn{color:#b00}.chart{min-height:420px}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f"<h1>Tuning with equal budgets: {escape(results.name)}</h1>"
        f"<table>{config_html}</table>"
        + "".join(sections) + profile_html
        + provenance_section(results.provenance)
        + f"<script>{scripts}</script></body></html>"
    )


def write_report(results: TuneResults, out: Path,
                 summaries: list[TaskSummary] | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``tune_summary.csv`` into ``out`` (atomically); their paths."""
    out = Path(out)
    summaries = summaries if summaries is not None else summarize(results)
    html_path, csv_path = out / REPORT_NAME, out / CSV_NAME
    atomic_write_text(csv_path, summary_csv(summaries))
    atomic_write_text(html_path, render_html(results, summaries))
    return html_path, csv_path
