"""The report of a tuning study: ``report.html`` (self-contained) and ``tune_summary.csv``.

Read from the study's storage only (:func:`optimlab.lab.tune.load_results`). Per task and
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

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from .checkpoint import atomic_write_text
from .profiles import (
    CurvePoint,
    TimeToTarget,
    Verdict,
    performance_profile,
    profile_taus,
    time_to_target,
    validation_target,
    verdict,
)
from .stats import ci95, mean
from .tune import SPACES, OptimizerResult, TuneResults

REPORT_NAME = "report.html"
CSV_NAME = "tune_summary.csv"

CSV_COLUMNS = (
    "task", "optimizer", "budget", "trials_complete", "trials_pruned", "trials_failed",
    "best_hyperparameters", "best_spec", "best_validation_accuracy", "test_accuracy_mean",
    "test_accuracy_ci95", "seeds_finished", "seeds_diverged", "validation_target",
    "time_to_target_s", "steps_to_target", "epochs_to_target",
)

_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
)


@dataclass(frozen=True)
class SummaryRow:
    """One (task, optimizer) line of the summary."""

    task: str
    optimizer: str
    budget: int
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    best_hyperparameters: dict[str, Any]
    best_spec: str
    best_validation_accuracy: float
    test_accuracies: tuple[float, ...]
    seeds_diverged: int
    validation_target: float
    time_to_target: TimeToTarget

    @property
    def test_accuracy_mean(self) -> float:
        return mean(self.test_accuracies)

    @property
    def test_accuracy_ci95(self) -> float:
        return ci95(self.test_accuracies)

    def csv_values(self) -> list[str]:
        return [
            self.task, self.optimizer, str(self.budget), str(self.trials_complete),
            str(self.trials_pruned), str(self.trials_failed),
            json.dumps({k: _jsonable(v) for k, v in self.best_hyperparameters.items()}),
            self.best_spec, _num(self.best_validation_accuracy), _num(self.test_accuracy_mean),
            _num(self.test_accuracy_ci95), str(len(self.test_accuracies)), str(self.seeds_diverged),
            _num(self.validation_target), _num(self.time_to_target.wall_time_s),
            _num(self.time_to_target.steps), _num(self.time_to_target.epoch),
        ]


@dataclass(frozen=True)
class TaskSummary:
    task: str
    target: float
    target_declared: bool
    rows: list[SummaryRow]
    verdict: Verdict


def curve(points: list[list[Any]] | None) -> list[CurvePoint]:
    """A stored curve (``[epoch, accuracy, loss, wall_time_s, step]`` rows) as points."""
    out = []
    for e, acc, loss, wall, step in points or []:
        out.append(CurvePoint(int(e), _float(acc), _float(loss), float(wall), int(step)))
    return out


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _best_accuracy(result: OptimizerResult) -> float:
    if result.best is None:
        return math.nan
    accs = [p.accuracy for p in curve(result.best.user_attrs.get("curve"))
            if math.isfinite(p.accuracy)]
    return max(accs) if accs else math.nan


def summarize(results: TuneResults) -> list[TaskSummary]:
    """Rows, target and verdict of every task, in the study's order."""
    from .tasks import get_task

    out = []
    for task in results.config.tasks:
        per_opt = {o: results.results[(task, o)] for o in results.config.optimizers}
        try:
            declared = get_task(task).extra.get("validation_target")
        except ValueError:  # a task no longer registered: fall back to the relative target
            declared = None
        target = validation_target({o: _best_accuracy(r) for o, r in per_opt.items()},
                                   declared=declared)
        rows = []
        for o, r in per_opt.items():
            best_curve = curve(r.best.user_attrs.get("curve")) if r.best is not None else []
            rows.append(SummaryRow(
                task=task, optimizer=o, budget=r.budget, trials_complete=r.n_complete,
                trials_pruned=r.n_pruned, trials_failed=r.n_failed,
                best_hyperparameters=r.best_params(),
                best_spec=r.best.user_attrs.get("spec", "") if r.best is not None else "",
                best_validation_accuracy=float(r.best.value) if r.best is not None else math.nan,
                test_accuracies=tuple(r.test_accuracies()),
                seeds_diverged=sum(1 for f in r.finals if f["status"] == "diverged"),
                validation_target=target,
                time_to_target=time_to_target(best_curve, target),
            ))
        samples = {row.optimizer: list(row.test_accuracies) for row in rows}
        out.append(TaskSummary(task, target, declared is not None, rows, verdict(task, samples)))
    return out


def ranking(summary: TaskSummary) -> list[SummaryRow]:
    """Rows by mean test accuracy, best first (optimizers without finished seeds last)."""
    return sorted(summary.rows, key=lambda r: (-r.test_accuracy_mean
                                               if math.isfinite(r.test_accuracy_mean) else math.inf))


def profiles(summaries: list[TaskSummary]) -> dict[str, dict[str, dict[str, float]]]:
    """Time-to-target per task and optimizer, by ``"steps"`` and by ``"wall_time_s"``."""
    return {
        "steps": {s.task: {r.optimizer: r.time_to_target.steps for r in s.rows} for s in summaries},
        "wall_time_s": {s.task: {r.optimizer: r.time_to_target.wall_time_s for r in s.rows}
                        for s in summaries},
    }


# ---- CSV ------------------------------------------------------------------------------------------
def _num(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return repr(float(x))


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def summary_csv(summaries: list[TaskSummary]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in summaries:
        for row in s.rows:
            writer.writerow(row.csv_values())
    return buf.getvalue()


# ---- HTML -----------------------------------------------------------------------------------------
def _plotly_js() -> str:
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_text(
        encoding="utf-8")


def _script_json(value: Any) -> str:
    text = json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: float, spec: str = ".4f") -> str:
    if isinstance(x, float) and math.isnan(x):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    return format(x, spec)


def _hp_text(hps: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, tuple):
            return "/".join(one(x) for x in v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    return ", ".join(f"{k}={one(v)}" for k, v in hps.items()) or "defaults"


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
    for i, o in enumerate(results.config.optimizers):
        color = _COLORS[i % len(_COLORS)]
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
    layout = _layout(f"Learning-rate sensitivity: {task}", "learning rate (log)",
                     "final validation accuracy (diverged trials shown at 0)", log_x=True)
    return traces, layout


def _curves_chart(results: TuneResults, summary: TaskSummary) -> tuple[list[dict], dict]:
    traces: list[dict[str, Any]] = []
    for i, o in enumerate(results.config.optimizers):
        r = results.results[(summary.task, o)]
        if r.best is None:
            continue
        pts = curve(r.best.user_attrs.get("curve"))
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": html.escape(o),
            "x": [p.step for p in pts],
            "y": [p.accuracy if math.isfinite(p.accuracy) else None for p in pts],
            "line": {"color": _COLORS[i % len(_COLORS)]},
        })
    if math.isfinite(summary.target) and traces:
        xs = [x for tr in traces for x in tr["x"]]
        traces.append({
            "type": "scatter", "mode": "lines", "name": "validation target",
            "x": [0, max(xs) if xs else 1], "y": [summary.target, summary.target],
            "line": {"color": "#000", "dash": "dash", "width": 1},
        })
    layout = _layout(f"Validation accuracy of the best trials: {summary.task}", "steps",
                     "validation accuracy")
    return traces, layout


def _profile_chart(times: dict[str, dict[str, float]], what: str, optimizers: tuple[str, ...]
                   ) -> tuple[list[dict], dict]:
    taus = profile_taus(times)
    prof = performance_profile(times, taus)
    traces = [
        {"type": "scatter", "mode": "lines", "line": {"shape": "hv",
                                                     "color": _COLORS[i % len(_COLORS)]},
         "name": html.escape(o), "x": taus, "y": prof.get(o, [0.0] * len(taus))}
        for i, o in enumerate(optimizers)
    ]
    layout = _layout(f"Performance profile of time-to-target ({what})",
                     "tau: within this factor of the best optimizer (log)",
                     "fraction of tasks", log_x=True)
    layout["yaxis"]["range"] = [-0.02, 1.02]
    return traces, layout


def _layout(title: str, x_title: str, y_title: str, *, log_x: bool = False) -> dict[str, Any]:
    return {
        "title": {"text": html.escape(title)},
        "xaxis": {"title": {"text": x_title}, "type": "log" if log_x else "linear"},
        "yaxis": {"title": {"text": y_title}},
        "height": 420, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "v"},
    }


def _task_table(summary: TaskSummary) -> str:
    head = ("rank", "optimizer", "trials (complete + pruned / budget)", "best hyperparameters",
            "best validation accuracy", "test accuracy (mean ± 95% CI)", "seeds", "diverged seeds",
            "time to target (s)", "steps to target")
    rows = []
    for rank, r in enumerate(ranking(summary), start=1):
        used = r.trials_complete + r.trials_pruned
        budget_cell = f"{r.trials_complete} + {r.trials_pruned} / {r.budget}"
        if r.trials_failed:
            budget_cell += f" ({r.trials_failed} failed, retried)"
        if used != r.budget:
            budget_cell = f'<span class="warn">{_e(budget_cell)} unequal budget</span>'
        else:
            budget_cell = _e(budget_cell)
        test = (f"{_fmt(r.test_accuracy_mean)} ± {_fmt(r.test_accuracy_ci95)}"
                if r.test_accuracies else "–")
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                rank, _e(r.optimizer), budget_cell, _e(_hp_text(r.best_hyperparameters)),
                _fmt(r.best_validation_accuracy), test, len(r.test_accuracies),
                r.seeds_diverged, _fmt(r.time_to_target.wall_time_s, ".3g"),
                _fmt(r.time_to_target.steps, ".0f"),
            )) + "</tr>"
        )
    return ("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render_html(results: TuneResults, summaries: list[TaskSummary]) -> str:
    """The self-contained report page."""
    cfg = results.config
    charts: list[tuple[str, list[dict], dict]] = []
    sections = []
    for k, s in enumerate(summaries):
        sens_id, curves_id = f"sensitivity-{k}", f"curves-{k}"
        charts.append((sens_id, *_sensitivity_chart(results, s.task)))
        charts.append((curves_id, *_curves_chart(results, s)))
        target_text = (f"declared by the task: {_fmt(s.target)}" if s.target_declared else
                       f"0.99 × the best validation accuracy reached by any optimizer's best "
                       f"trial = {_fmt(s.target)}")
        sections.append(
            f'<section><h2>Task {_e(s.task)}</h2>'
            f'<p class="verdict">{_e(s.verdict.line())}</p>'
            f"{_task_table(s)}"
            f"<p class=\"note\">Validation target: {_e(target_text)}. Time and steps to target are "
            "those of the best trial (one seed, on the validation split), at the end of the first "
            "epoch at or above the target.</p>"
            f'<div id="{sens_id}" class="chart"></div><div id="{curves_id}" class="chart"></div>'
            "</section>"
        )
    times = profiles(summaries)
    charts.append(("profile-steps", *_profile_chart(times["steps"], "steps", cfg.optimizers)))
    charts.append(("profile-wall", *_profile_chart(times["wall_time_s"], "wall-clock",
                                                   cfg.optimizers)))
    space = SPACES[cfg.space]
    config_items = [
        ("study", results.name), ("storage", results.storage),
        ("tasks", ", ".join(cfg.tasks)), ("optimizers", ", ".join(cfg.optimizers)),
        ("budget", f"{cfg.budget} trials per optimizer (complete or pruned), the same for each"),
        ("search space", f"{space.name}: {space.source}"
                         + (f"; lr range {cfg.lr_range[0]:g}..{cfg.lr_range[1]:g}"
                            if cfg.lr_range else "")),
        ("selection", (f"last-epoch accuracy on a validation split of {cfg.validation_fraction:g} "
                      "of the training data; the test split is never used for selection")),
        ("pruning", ("Optuna MedianPruner on each epoch's validation accuracy; diverged runs are "
                    "pruned")),
        ("epochs per run", "task default" if cfg.epochs is None else str(cfg.epochs)),
        ("final evaluation", (f"best configuration re-trained on the full training split for seeds "
                             f"{', '.join(map(str, cfg.evaluation_seeds()))}, tested on the test "
                             "split")),
    ]
    config_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in config_items)
    scripts = "".join(
        f"Plotly.newPlot({_script_json(div)}, {_script_json(data)}, {_script_json(layout)}, "
        f'{{"responsive": true, "displaylogo": false}});'
        for div, data, layout in charts
    )
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>optimlab tune: {_e(results.name)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;vertical-align:top}.verdict{font-weight:600}.note{color:#555}"
        ".warn{color:#b00}.chart{min-height:420px}</style>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<h1>Tuning with equal budgets: {_e(results.name)}</h1>"
        f"<table>{config_html}</table>"
        + "".join(sections)
        + "<section><h2>Across tasks: performance profiles</h2>"
        "<p class=\"note\">Dolan &amp; Moré: for each optimizer, the fraction of tasks on which "
        "its time-to-target is within a factor tau of the fastest optimizer's on that task; an "
        "optimizer that never reached the target never counts. With a single task every curve "
        "is a step from 0 to 1 (or stays at 0).</p>"
        '<div id="profile-steps" class="chart"></div><div id="profile-wall" class="chart"></div>'
        "</section>"
        f"<script>{scripts}</script></body></html>"
    )


def write_report(results: TuneResults, out: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``tune_summary.csv`` into ``out`` (atomically); their paths."""
    out = Path(out)
    summaries = summarize(results)
    html_path, csv_path = out / REPORT_NAME, out / CSV_NAME
    atomic_write_text(csv_path, summary_csv(summaries))
    atomic_write_text(html_path, render_html(results, summaries))
    return html_path, csv_path
