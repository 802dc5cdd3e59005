"""Reports of a comparison, rebuilt from the results store alone.

:func:`render_report` reads ``<out>/results.db`` and writes, atomically, into ``<out>/``:

* ``summary.csv``: one row per optimizer with exactly the columns of :data:`SUMMARY_COLUMNS`;
  means are over the runs that finished (diverged and unfinished runs are counted, never averaged);
  an undefined value (no finished run; a 95% interval from one seed) is an empty cell.
* ``report.html``: one self-contained page (plotly.js inline, no network) with interactive charts
  (training loss against step and against seconds on a log axis, test accuracy per epoch, share of
  time in ``optimizer.step()``), the summary table with 95% confidence intervals over seeds, and
  every diverged run flagged with its step.
* ``loss.png``, ``loss_time.png``, ``accuracy.png``, ``step_share.png``: the same charts as PNGs.

Curves are the mean over the finished seeds of an optimizer with a band from the lowest to the
highest seed (:mod:`.summary`); diverged runs are drawn on their own, dotted, up to the step where
they diverged. The output depends only on the store, so two reports of one store are
byte-identical.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..outdir import open_existing, verify
from ..pages import fmt, layout, plotly_js, rgba, script_json
from ..provenance import provenance_section
from ..store import Store
from .figures import FIGURE_NAMES, write_figures
from .summary import Curve, OptimizerGroup, ReportData, SummaryRow, collect, write_summary_csv


def report_files(out: Path, *, figures: bool = True) -> list[Path]:
    """The files :func:`render_report` writes into ``out``."""
    names = ("summary.csv", "report.html", *(FIGURE_NAMES if figures else ()))
    return [Path(out) / name for name in names]


def render_report(out: Path, *, figures: bool = True) -> list[SummaryRow]:
    """Rebuild ``summary.csv``, ``report.html`` and the PNG figures of ``out`` from its store.

    Args:
        out: the comparison's output folder (holding ``results.db``).
        figures: also write the PNG figures (matplotlib).

    Returns:
        The summary rows, one per optimizer.

    Raises:
        UserError: no store in ``out``, or a store of another schema version.
    """
    out = Path(out)
    with Store.open(out, create=False) as store:
        data = collect(store)
    rows = data.summary()
    write_summary_csv(out / "summary.csv", rows)
    atomic_write_text(out / "report.html", render_html(data, rows))
    if figures:
        write_figures(data, rows, out)
    return rows


def rebuild_report(out: Path, *, figures: bool = True) -> list[SummaryRow]:
    """``optimlab report OUT``: :func:`render_report` into a comparison's folder, writing only
    files optimlab recorded there as its own.

    A comparison records its report's names when it starts, so a report of a live comparison
    needs no lock (its runs show as unfinished); only a folder without those names recorded is
    locked to record them (:func:`optimlab.lab.outdir.open_existing`).

    Raises:
        UserError: ``out`` is not an optimlab comparison folder, or holds a file of a report's
            name that optimlab did not write, or is in use while names must be recorded.
    """
    out = Path(out)
    names = [p.name for p in report_files(out, figures=figures)]
    if not set(names) <= set(verify(out, "compare")["files"]):
        with open_existing(out, "compare") as folder:
            for name in names:
                folder.file(name)
    return render_report(out, figures=figures)


# ---- HTML ---------------------------------------------------------------------------------------
def _round(values: list[float]) -> list[float | None]:
    """Six significant digits (the charts cannot show more); non-finite -> null (a gap)."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in values]


def _band_traces(name: str, color: str, curve: Curve, hover_x: str) -> list[dict[str, Any]]:
    group = name
    traces: list[dict[str, Any]] = []
    if curve.low != curve.high:
        traces.append({"x": _round(curve.x), "y": _round(curve.high), "mode": "lines", "line": {"width": 0},
                       "legendgroup": group, "showlegend": False, "hoverinfo": "skip", "type": "scatter"})
        traces.append({"x": _round(curve.x), "y": _round(curve.low), "mode": "lines", "line": {"width": 0},
                       "fill": "tonexty", "fillcolor": rgba(color, 0.18), "legendgroup": group,
                       "showlegend": False, "hoverinfo": "skip", "type": "scatter"})
    traces.append({"x": _round(curve.x), "y": _round(curve.mean), "mode": "lines", "name": name,
                   "legendgroup": group, "line": {"color": color, "width": 1.8}, "type": "scatter",
                   "hovertemplate": f"{hover_x}=%{{x}}<br>%{{y:.4g}}<extra>%{{fullData.name}}</extra>"})
    return traces


def _diverged_traces(group: OptimizerGroup, use_time: bool) -> list[dict[str, Any]]:
    traces = []
    for r in group.diverged:
        finite = [(s, t, v) for s, t, v in zip(r.steps, r.times, r.losses) if math.isfinite(v)]
        label = f"{group.optimizer} seed {r.run.seed}: diverged at step {r.run.diverged_step}"
        xs = [t if use_time else s for s, t, _ in finite]
        ys = [v for _, _, v in finite]
        traces.append({
            "x": _round([float(x) for x in xs]), "y": _round(ys), "type": "scatter", "mode": "lines+markers",
            "name": label, "legendgroup": group.optimizer,
            "line": {"color": group.color, "width": 1, "dash": "dot"},
            "marker": {"size": [0] * (len(ys) - 1) + [10], "symbol": "x", "color": group.color},
        })
    return traces


def _charts(data: ReportData, rows: list[SummaryRow]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    loss, loss_time, accuracy = [], [], []
    for g in data.groups:
        c = g.loss_curve()
        if c is not None:
            loss += _band_traces(g.optimizer, g.color, c, "step")
        loss += _diverged_traces(g, use_time=False)
        c = g.loss_time_curve()
        if c is not None:
            loss_time += _band_traces(g.optimizer, g.color, c, "seconds")
        loss_time += _diverged_traces(g, use_time=True)
        c = g.accuracy_curve()
        if c is not None:
            traces = _band_traces(g.optimizer, g.color, c, "epoch")
            traces[-1]["mode"] = "lines+markers"
            accuracy += traces
    share_rows = [(r, g) for r, g in zip(rows, data.groups) if math.isfinite(r.step_time_share_mean)]
    share = [{
        "type": "bar",
        "x": [r.optimizer for r, _ in share_rows],
        "y": _round([100 * r.step_time_share_mean for r, _ in share_rows]),
        "marker": {"color": [g.color for _, g in share_rows]},
        "hovertemplate": "%{x}: %{y:.1f}%<extra></extra>",
    }]
    share_layout = layout("Share of training time in optimizer.step()", "optimizer", "% of training time")
    share_layout["showlegend"] = False
    return [
        ("loss", loss, layout("Training loss per step", "step", "training loss (log)", log_y=True)),
        ("loss-time", loss_time,
         layout("Training loss against training time", "training seconds", "training loss (log)", log_y=True)),
        ("accuracy", accuracy, layout("Test accuracy per epoch", "epoch", "accuracy")),
        ("step-share", share, share_layout),
    ]


def _summary_table(rows: list[SummaryRow]) -> str:
    head = ("<tr><th>optimizer</th><th>lr</th><th>effective step</th><th>seeds</th>"
            "<th>final train loss</th><th>test accuracy</th>"
            "<th>± 95% CI</th><th>train time (s)</th><th>step() share</th><th>diverged</th>"
            "<th>skipped steps</th></tr>")
    body = []
    for r in rows:
        diverged = "0"
        if r.diverged_at:
            details = ", ".join(f"seed {s} at step {st}" for s, st in r.diverged_at)
            diverged = f'<span class="bad">{r.diverged_runs} diverged ({html.escape(details)})</span>'
        if r.unfinished_runs:
            diverged += f' <span class="warn">{r.unfinished_runs} unfinished</span>'
        acc = f"{100 * r.test_accuracy_mean:.2f}%" if math.isfinite(r.test_accuracy_mean) else "–"
        ci = f"{100 * r.test_accuracy_ci95:.2f}" if math.isfinite(r.test_accuracy_ci95) else "–"
        share = f"{100 * r.step_time_share_mean:.1f}%" if math.isfinite(r.step_time_share_mean) else "–"
        body.append(
            f"<tr><td class='name'>{html.escape(r.optimizer)}</td><td>{fmt(r.lr, '.3g')}</td>"
            f"<td>{fmt(r.effective_lr, '.3g')}</td><td>{r.seeds}</td>"
            f"<td>{fmt(r.final_train_loss_mean)}</td><td>{acc}</td><td>{ci}</td>"
            f"<td>{fmt(r.wall_time_s_mean, '.3g')}</td><td>{share}</td><td>{diverged}</td>"
            f"<td>{r.skipped_steps}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _config_list(data: ReportData) -> str:
    exp = data.experiment
    items = [("task", data.task), ("data", data.source),
             ("hyperparameters", exp.get("hyperparameters") or "not recorded")]
    for key in ("epochs", "batch_size", "seeds", "schedule", "validation_fraction", "clip_grad_norm",
                "accumulate", "skip_nonfinite"):
        if key in exp and exp[key] is not None:
            items.append((key.replace("_", " "), str(exp[key])))
    if data.provenance:
        last = data.provenance[-1]
        items.append(("device", f"{last.get('device', '?')} ({last.get('device_name', '')})"))
    return "".join(f"<div><dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd></div>" for k, v in items if v)


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;background:#f6f7f9;color:#1f2933;line-height:1.45}
header{background:#fff;border-bottom:1px solid #e4e7eb;padding:20px 32px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:0 0 12px}
main{max-width:1200px;margin:0 auto;padding:20px 32px 40px}
dl{display:flex;flex-wrap:wrap;gap:6px 28px;margin:8px 0 0}
dl div{display:flex;gap:6px}
dt{color:#616e7c}dd{margin:0;font-weight:600}
section{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:16px 20px;margin:0 0 18px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:18px}
.grid section{margin:0}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:right;padding:6px 10px;border-bottom:1px solid #eef0f3}
th{color:#52606d;font-weight:600;background:#fafbfc}
td.name,th:first-child{text-align:left;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.bad{color:#b42318;font-weight:600}.warn{color:#b54708}
p.note{color:#616e7c;font-size:13px;margin:10px 0 0}
"""


def render_html(data: ReportData, rows: list[SummaryRow]) -> str:
    """The self-contained HTML report (plotly.js inline; every user string escaped)."""
    charts = _charts(data, rows)
    divs = "".join(
        f'<section><div id="chart-{cid}" class="chart"></div></section>' for cid, _, _ in charts
    )
    specs = script_json([{"id": f"chart-{cid}", "data": traces, "layout": chart_layout}
                         for cid, traces, chart_layout in charts], compact=True)
    n_diverged = sum(r.diverged_runs for r in rows)
    title = f"optimlab compare: {data.task}" if data.task else "optimlab compare"
    note = (
        "Lines: mean over finished seeds; shaded: lowest to highest seed. Dotted lines with a cross: "
        "runs that diverged (non-finite loss), drawn up to their last finite step and left out of "
        "every mean. Accuracy is the final epoch's; ± is the 95% confidence interval over seeds "
        "(Student's t). Effective step: what a constant gradient moves per step, lr/(1−momentum) "
        "for momentum methods (momentum 0.9 at lr 0.01 steps like SGD at 0.1), lr otherwise. "
        "Hyperparameters: " + (data.experiment.get("hyperparameters") or "not recorded") + "."
    )
    flag = (f'<p class="bad">{n_diverged} run(s) diverged; see the last column.</p>'
            if n_diverged else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><dl>{_config_list(data)}</dl></header><main>"
        f"<section><h2>Summary</h2>{flag}{_summary_table(rows)}<p class=\"note\">{html.escape(note)}</p>"
        f"</section><div class=\"grid\">{divs}</div>{provenance_section(data.provenance)}</main>"
        f"<script>(function(){{var charts={specs};"
        "charts.forEach(function(c){Plotly.newPlot(c.id,c.data,c.layout,"
        "{responsive:true,displaylogo:false});});})();</script>"
        "</body></html>\n"
    )
