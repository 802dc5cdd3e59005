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

from .. import pages
from ..files import atomic_write_text
from ..outdir import OutputFolder, open_for_write
from ..pages import Cell, Chart, color, escape
from ..provenance import collect, command_line, provenance_section
from .experiments import SurfaceResult, TrainingResult
from .run import CSV_NAME, HTML_NAME, LEVEL, CheckResult, ClaimsReport, claims_csv
from .verdicts import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE

_VERDICT_CLASS = {HOLDS: "holds", DOES_NOT_HOLD: "fails", INCONCLUSIVE: "open"}
_VERDICT_COLOR = {HOLDS: "#2a7d2a", DOES_NOT_HOLD: "#b22222", INCONCLUSIVE: "#777"}

_e = escape


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
    layout = pages.layout("", unit, "", legend=False, plot_height=30 + 30 * len(shown))
    layout["margin"].update(l=20, r=20, t=30, b=45)  # t: room for plotly's tool bar above the marks
    layout["height"] = 130 + 30 * len(shown)
    layout["xaxis"].update(type="log" if scale == "ratio" else "linear", zeroline=scale != "ratio",
                           range=[low - pad, high + pad])
    layout["yaxis"].update(visible=len(shown) > 1, automargin=True, type="category")
    layout["shapes"] = shapes
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
    layout = pages.layout("Training loss (replicate 1's choices, mean over seeds)", "step",
                          "training loss (log scale)", log_y=True, hover="x unified")
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
    layout = pages.layout("Tuning: validation accuracy against lr (dotted: replicate 2)",
                          "learning rate (log)", "validation accuracy", log_x=True)
    return traces, layout


# ---- the page -----------------------------------------------------------------------------------
def _chart(ident: str, data: list[dict], layout: dict, note: str = "") -> Chart:
    return Chart(ident, _finite(data), _finite(layout), note)


def _experiment_html(name: str, report: ClaimsReport, charts: list[Chart]) -> str:
    res = report.experiments[name]
    exp = report.definitions[name]
    chosen = res.chosen if isinstance(res, TrainingResult) else [res.chosen]
    head = [("optimizer", "text"), *((f"lr, replicate {r + 1}" if len(chosen) > 1 else "chosen lr", "")
                                     for r in range(len(chosen)))]
    rows = [[Cell(pages.name_html(o, o, color(o)), o, "text"),
             *(Cell(f"{c[o]:.3g}", c[o]) for c in chosen)] for o in chosen[0]]
    body = f'<p class="note">{_e(exp.description)}</p>' + pages.table(head, rows, table_id=f"lr-{name}")
    cards = ""
    if isinstance(res, TrainingResult):
        extra = [(label, spec) for label, spec in res.specs[0].items() if label not in chosen[0]]
        if extra:
            body += "<p>Also run: " + "; ".join(f"{_e(k)} = <code>{_e(v)}</code>"
                                                for k, v in extra) + "</p>"
        body += (f'<p class="note">{res.epochs} epochs per run; {report.scale.seeds} final seeds; '
                 f"{len(next(iter(res.grids[0].values())))} learning rates per optimizer, "
                 f"{report.scale.tune_seeds} tuning seed(s) each, in {len(res.grids)} "
                 "replicate(s) of the tuning study.</p>")
        made = [_chart(f"exp-{name}-{kind}", *fn(res)) for kind, fn in
                (("loss", _training_chart), ("grid", _grid_chart))]
        charts += made
        cards = '<div class="grid">' + "".join(c.card() for c in made) + "</div>"
    elif isinstance(res, SurfaceResult):
        body += (f'<p class="note">{res.steps} steps; {len(res.starts)} start points; learning rates '
                 f"from the same grid {exp.lr_low:g}..{exp.lr_high:g}, chosen from the surface's own "
                 "start.</p>")
    return f'<section class="card"><h2>Experiment {_e(name)}</h2>{body}</section>{cards}'


def _protocol(report: ClaimsReport) -> str:
    s = report.scale
    return (
        "Each claim is tested on an experiment run once for all the claims that use it. "
        "Training experiments: every optimizer of an experiment gets the same tuning budget "
        "(the same number of learning rates, log-spaced over the range optimlab tune "
        f"searches, each trained for {s.tune_seeds} seed(s) and scored by its validation "
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


def render_html(report: ClaimsReport, command: str | None = None) -> str:
    """The page, as text; ``command`` is the command line it records (default: this process's)."""
    charts: list[Chart] = []
    counts = {v: sum(r.verdict == v for r in report.claims) for v in _VERDICT_CLASS}
    rank = {HOLDS: 0, INCONCLUSIVE: 1, DOES_NOT_HOLD: 2}
    summary = pages.table(
        [("claim", "text"), ("verdict", "text"), ("seed", "text"), ("experiment", "text")],
        [[Cell(f'<a href="#{_e(r.claim.id)}">{_e(r.claim.id)}</a>', r.claim.id, "text"),
          Cell(_badge(r.verdict), rank[r.verdict], "text"), Cell(_e(r.claim.seed), r.claim.seed, "text"),
          Cell(_e(r.claim.experiment), r.claim.experiment, "text")] for r in report.claims],
        table_id="claims")
    cards = []
    for r in report.claims:
        checks = []
        for c in r.checks:
            chart = _chart(f"check-{len(charts)}", *_check_chart(c))
            charts.append(chart)
            m = c.measurement
            checks.append(
                f'<div class="check"><div>{_badge(c.verdict)} {_e(c.check.label)}</div>'
                f'<div class="evidence"><b>{_e(m.what)}</b>: '
                f"{_e(c.numbers_text())} "
                f"({_e(m.summary(LEVEL))}). {_e(m.context)}."
                f"<br><span class=\"note\">Test: {_e(c.test_text())}.</span></div>"
                f'<div id="{_e(chart.id)}" class="chart"></div></div>'
            )
        note = f'<p class="note">{_e(r.claim.note)}</p>' if r.claim.note else ""
        cards.append(
            f'<section class="card claim" id="{_e(r.claim.id)}"><h3>{_badge(r.verdict)} '
            f"{_e(r.claim.text)}</h3><div class=\"meta\">{_e(r.claim.id)} · seed "
            f"{_e(r.claim.seed)} · experiment {_e(r.claim.experiment)}</div>{note}"
            + "".join(checks) + "</section>"
        )
    experiments = "".join(_experiment_html(n, report, charts) for n in report.experiments)
    s = report.scale
    header = pages.facts([
        ("claims", str(len(report.claims))), ("hold", str(counts[HOLDS])),
        ("do not hold", str(counts[DOES_NOT_HOLD])), ("inconclusive", str(counts[INCONCLUSIVE])),
        ("seed", str(s.seed)), ("final seeds", str(s.seeds)),
        ("tuning replicates", str(s.replicates)),
    ])
    record = collect(command if command is not None else command_line())
    body = (
        f'<section class="card"><h2>Verdicts</h2>{summary}<p class="note">{_e(_protocol(report))}</p>'
        "</section>" + "".join(cards) + experiments + provenance_section([record])
    )
    return pages.page("The seeds' claims, checked", header=header, body=body, charts=charts)


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
