"""``claims.html``: the claims, their verdicts and evidence, on one self-contained page.

plotly.js is inlined (the page opens offline). Every string that reaches the page is escaped:
text through :func:`html.escape`, chart data through JSON with ``<``, ``>`` and ``&`` escaped, so
no string can close the ``<script>`` it sits in. The layout is one column of cards that reads
on a 390 px phone as well as on a desktop.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..outdir import OutputFolder, open_for_write
from ..pages import color, escape, plotly_js, script_json
from .experiments import SurfaceResult, TrainingResult
from .run import CSV_NAME, HTML_NAME, LEVEL, CheckResult, ClaimsReport, claims_csv
from .verdicts import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE

_VERDICT_CLASS = {HOLDS: "holds", DOES_NOT_HOLD: "fails", INCONCLUSIVE: "open"}
_VERDICT_COLOR = {HOLDS: "#2a7d2a", DOES_NOT_HOLD: "#b22222", INCONCLUSIVE: "#777"}

_e = escape


def _json(value: Any) -> str:
    return script_json(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _badge(verdict: str) -> str:
    return f'<span class="badge {_VERDICT_CLASS[verdict]}">{_e(verdict)}</span>'


# ---- charts -------------------------------------------------------------------------------------
def _display(scale: str, x: float) -> float:
    """A value on the chart's axis: ratios as ratios (log axis), points in points."""
    if scale == "ratio":
        return math.exp(x) if math.isfinite(x) else (math.inf if x > 0 else 0.0)
    if scale == "points":
        return 100 * x
    return x


def _check_chart(c: CheckResult) -> tuple[list[dict], dict]:
    """Each replicate's estimate and interval against the test's thresholds."""
    scale, t = c.measurement.scale, c.check.test
    marks = [t.hold, t.fail] if t.kind == "above" else [-t.margin, t.margin]
    marks = sorted({_display(scale, v) for v in marks})
    shown = [[_display(scale, v) for v in (r.interval.estimate, r.interval.low, r.interval.high)]
             for r in c.replicates]
    span = [v for row in shown for v in row if math.isfinite(v) and (scale != "ratio" or v > 0)]
    span += marks
    lo_edge, hi_edge = min(span), max(span)
    # a bound at infinity (or a ratio of 0) is drawn to the chart's edge
    pad = (hi_edge - lo_edge) * 0.5 + 1
    edge_lo, edge_hi = (lo_edge / 2, hi_edge * 2) if scale == "ratio" else (lo_edge - pad,
                                                                           hi_edge + pad)

    def clip(v: float) -> float:
        if not math.isfinite(v) or (scale == "ratio" and v <= 0):
            return edge_hi if v > 0 and math.isinf(v) else edge_lo
        return v

    names = [f"replicate {i + 1}" if len(c.replicates) > 1 else "" for i in range(len(shown))]
    traces = []
    for name, r, (est, low, high) in zip(names, c.replicates, shown):
        est, low, high = clip(est), clip(low), clip(high)
        traces.append({
            "type": "scatter", "mode": "markers", "x": [est], "y": [name],
            "marker": {"size": 11, "color": _VERDICT_COLOR[r.verdict]},
            "error_x": {"type": "data", "symmetric": False, "array": [high - est],
                        "arrayminus": [est - low], "thickness": 2, "width": 8,
                        "color": _VERDICT_COLOR[r.verdict]},
            "hovertext": [_e(f"{r.numbers()}: {r.verdict}")], "hoverinfo": "text",
            "showlegend": False,
        })
    shapes = [{"type": "line", "x0": v, "x1": v, "yref": "paper", "y0": 0, "y1": 1,
               "line": {"color": "#555", "dash": "dash", "width": 1}} for v in marks]
    unit = {"ratio": "ratio (log axis)", "points": "percentage points"}.get(scale, "value")
    # the thresholds stay in view (plotly's autorange sees the data only)
    drawn = [clip(v) for row in shown for v in row] + marks
    if scale == "ratio":
        low, high = math.log10(min(drawn)), math.log10(max(drawn))
        pad = 0.05 * (high - low) + 0.01
    else:
        low, high = min(drawn), max(drawn)
        pad = 0.05 * (high - low) + 0.01
    layout = {
        "height": 110 + 30 * len(shown), "margin": {"l": 20, "r": 20, "t": 10, "b": 45},
        "xaxis": {"type": "log" if scale == "ratio" else "linear", "title": {"text": unit},
                  "zeroline": scale != "ratio", "range": [low - pad, high + pad]},
        "yaxis": {"visible": len(shown) > 1, "automargin": True}, "shapes": shapes,
    }
    return traces, layout


def _training_chart(res: TrainingResult) -> tuple[list[dict], dict]:
    """Training loss of the first replicate's final runs (mean over seeds), log scale."""
    view = res.views()[0]
    traces = []
    for label, runs in view.finals.items():
        finished = [r.step_losses for r in runs if r.status == "finished"]
        if not finished:
            continue
        n = min(len(x) for x in finished)
        every = max(1, n // 120)
        xs = list(range(1, n + 1, every))
        ys = [sum(x[s - 1] for x in finished) / len(finished) for s in xs]
        traces.append({"type": "scatter", "mode": "lines", "name": _e(label), "x": xs, "y": ys,
                       "line": {"color": color(label), "width": 1.5}})
    layout = {
        "height": 380, "margin": {"l": 55, "r": 10, "t": 30, "b": 45},
        "title": {"text": "training loss (replicate 1's choices, mean over seeds)"},
        "xaxis": {"title": {"text": "step"}}, "yaxis": {"type": "log", "title": {"text": "loss"}},
        "legend": {"orientation": "h", "y": -0.25},
    }
    return traces, layout


def _grid_chart(res: TrainingResult) -> tuple[list[dict], dict]:
    """Validation score against lr per optimizer; one line style per replicate."""
    traces = []
    for r, grid in enumerate(res.grids):
        for o, points in grid.items():
            xs = [lr for lr, _ in points]
            ys = [None if any(math.isnan(v) for v in scores) else sum(scores) / len(scores)
                  for _, scores in points]
            traces.append({
                "type": "scatter", "mode": "lines+markers", "x": xs, "y": ys,
                "name": _e(o if len(res.grids) == 1 else f"{o} (replicate {r + 1})"),
                "legendgroup": _e(o), "showlegend": r == 0,
                "line": {"color": color(o), "width": 1.5,
                         "dash": "solid" if r == 0 else "dot"},
            })
    layout = {
        "height": 380, "margin": {"l": 55, "r": 10, "t": 30, "b": 45},
        "title": {"text": "tuning: validation accuracy against lr (dotted: replicate 2)"},
        "xaxis": {"type": "log", "title": {"text": "learning rate"}},
        "yaxis": {"title": {"text": "validation accuracy"}},
        "legend": {"orientation": "h", "y": -0.25},
    }
    return traces, layout


# ---- the page -----------------------------------------------------------------------------------
def _experiment_html(name: str, report: ClaimsReport, charts: list) -> str:
    res = report.experiments[name]
    exp = report.definitions[name]
    chosen = res.chosen if isinstance(res, TrainingResult) else [res.chosen]
    head = "".join(f"<th>lr, replicate {r + 1}</th>" if len(chosen) > 1 else "<th>chosen lr</th>"
                   for r in range(len(chosen)))
    rows = "".join(f"<tr><td>{_e(o)}</td>" + "".join(f"<td>{c[o]:.3g}</td>" for c in chosen)
                   + "</tr>" for o in chosen[0])
    body = (f"<p>{_e(exp.description)}</p><table><thead><tr><th>optimizer</th>{head}</tr>"
            f"</thead><tbody>{rows}</tbody></table>")
    if isinstance(res, TrainingResult):
        extra = [(label, spec) for label, spec in res.specs[0].items() if label not in chosen[0]]
        if extra:
            body += "<p>Also run: " + "; ".join(f"{_e(k)} = <code>{_e(v)}</code>"
                                                for k, v in extra) + "</p>"
        body += (f"<p>{res.epochs} epochs per run; {report.scale.seeds} final seeds; "
                 f"{len(next(iter(res.grids[0].values())))} learning rates per optimizer, "
                 f"{report.scale.tune_seeds} tuning seed(s) each, in {len(res.grids)} "
                 "replicate(s) of the tuning study.</p>")
        for kind, (data, layout) in (("loss", _training_chart(res)), ("grid", _grid_chart(res))):
            div = f"exp-{len(charts)}-{kind}"
            charts.append((div, data, layout))
            body += f'<div id="{div}" class="chart"></div>'
    elif isinstance(res, SurfaceResult):
        body += (f"<p>{res.steps} steps; {len(res.starts)} start points; learning rates from the "
                 f"same grid {exp.lr_low:g}..{exp.lr_high:g}, chosen from the surface's own "
                 "start.</p>")
    return f'<section class="card"><h3>{_e(name)}</h3>{body}</section>'


_CSS = """
*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0 auto;padding:12px;
max-width:1100px;line-height:1.45;color:#222}h1{font-size:1.5em}h2{margin-top:1.6em}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;margin:12px 0}
.card h3{margin:.2em 0 .4em;font-size:1.1em}.meta{color:#555;font-size:.9em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;font-weight:600;
white-space:nowrap}.holds{background:#d8f0d8;color:#185c18}.fails{background:#f6d5d5;color:#8a1b1b}
.open{background:#eee;color:#444}.check{margin:.8em 0;padding-top:.5em;border-top:1px dashed #ddd}
.evidence{font-size:.9em;overflow-wrap:anywhere}.note{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}td,th{border:1px solid #ddd;
padding:3px 7px;text-align:left;vertical-align:top}code{overflow-wrap:anywhere}
.chart{width:100%;min-height:150px}
"""


def render_html(report: ClaimsReport) -> str:
    """The page, as text."""
    charts: list[tuple[str, list[dict], dict]] = []
    counts = {v: sum(r.verdict == v for r in report.claims) for v in _VERDICT_CLASS}
    summary_rows = "".join(
        f'<tr><td><a href="#{_e(r.claim.id)}">{_e(r.claim.id)}</a></td>'
        f"<td>{_badge(r.verdict)}</td></tr>" for r in report.claims)
    cards = []
    for r in report.claims:
        checks = []
        for c in r.checks:
            div = f"check-{len(charts)}"
            charts.append((div, *_check_chart(c)))
            m = c.measurement
            checks.append(
                f'<div class="check"><div>{_badge(c.verdict)} {_e(c.check.label)}</div>'
                f'<div class="evidence"><b>{_e(m.what)}</b>: '
                f"{_e(c.replicate_text() or c.replicates[0].numbers())} "
                f"({_e(m.summary(LEVEL))}). {_e(m.context)}."
                f"<br><span class=\"note\">Test: {_e(c.test_text())}.</span></div>"
                f'<div id="{div}" class="chart"></div></div>'
            )
        note = f'<p class="note">{_e(r.claim.note)}</p>' if r.claim.note else ""
        cards.append(
            f'<section class="card" id="{_e(r.claim.id)}"><h3>{_badge(r.verdict)} '
            f"{_e(r.claim.text)}</h3><div class=\"meta\">{_e(r.claim.id)} · seed "
            f"{_e(r.claim.seed)} · experiment {_e(r.claim.experiment)}</div>{note}"
            + "".join(checks) + "</section>"
        )
    experiments = "".join(_experiment_html(n, report, charts) for n in report.experiments)
    s = report.scale
    protocol = (
        "Each claim is tested on an experiment run once for all the claims that use it. "
        "Training experiments: every optimizer of an experiment gets the same tuning budget "
        "(the same number of learning rates, log-spaced over the range <code>optimlab tune</code>"
        f" searches, each trained for {s.tune_seeds} seed(s) and scored by its validation "
        "accuracy over the last two epochs, on a validation split of the training data); the "
        f"chosen rate is then trained for {s.seeds} seeds and tested on the test "
        "split. Seed s gives every optimizer the same initial weights and data order, so "
        "comparisons are paired by seed. Surface experiments: every optimizer's learning rate is "
        f"the best of the same grid, and paths are measured from {s.starts} start points. "
        f"The tuning study is run {s.replicates} times with other seeds; a check whose verdict "
        "differs between these replicates is inconclusive: within tuning noise. "
        f"Intervals are {LEVEL:.0%} (Student t for means; order statistics for medians, whose "
        "achieved level is shown). A claim holds when every check's interval clears its "
        "threshold, does not hold when one lies on the other side, and is inconclusive "
        "otherwise."
    )
    scripts = "".join(
        f"Plotly.newPlot({_json(div)}, {_json(data)}, {_json(layout)}, "
        '{"responsive": true, "displaylogo": false, "displayModeBar": false});'
        for div, data, layout in charts
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>optimlab claims</title><style>{_CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        "<h1>The seeds' claims, checked</h1>"
        f"<p>{len(report.claims)} claims: {counts[HOLDS]} hold, {counts[DOES_NOT_HOLD]} do not "
        f"hold, {counts[INCONCLUSIVE]} inconclusive (seed {s.seed}).</p>"
        f"<table><thead><tr><th>claim</th><th>verdict</th></tr></thead><tbody>{summary_rows}"
        f"</tbody></table><p class=\"note\">{protocol}</p>"
        "<h2>Claims</h2>" + "".join(cards)
        + "<h2>Experiments</h2>" + experiments
        + f"<script>{scripts}</script></body></html>"
    )


def write_outputs(report: ClaimsReport, out: str | os.PathLike,
                  folder: OutputFolder | None = None) -> tuple[Path, Path]:
    """Write ``claims.csv`` and ``claims.html`` into ``out`` (atomically); their paths.

    ``out`` must be optimlab's own folder (:mod:`optimlab.lab.outdir`): created for it, empty, or
    carrying its manifest; ``folder`` is that folder when the caller holds it open already.
    """
    if folder is None:
        with open_for_write(out, "claims", claims_config(report.scale, report.claims), {}) as held:
            return write_outputs(report, out, held)
    csv_path, html_path = folder.file(CSV_NAME), folder.file(HTML_NAME)
    atomic_write_text(csv_path, claims_csv(report))
    atomic_write_text(html_path, render_html(report))
    return csv_path, html_path


def claims_config(scale: Any, claims: Any) -> dict[str, Any]:
    """What a claims folder's manifest records: the scale and the claims checked."""
    from dataclasses import asdict

    return {**asdict(scale), "claims": [getattr(c, "claim", c).id for c in claims]}
