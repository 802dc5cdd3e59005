"""Reports of a comparison, rebuilt from the results store alone.

:func:`render_report` reads ``<out>/results.db`` and writes, atomically, into ``<out>/``:

* ``summary.csv``: one row per optimizer with exactly the columns of :data:`SUMMARY_COLUMNS`;
  means are over the runs that finished (diverged and unfinished runs are counted, never averaged);
  an undefined value (no finished run; a 95% interval from one seed) is an empty cell.
* ``report.html``: one self-contained page (plotly.js inline, no network) in the look of
  :mod:`optimlab.lab.pages`: the summary table (sortable, units in its headers, seeds as
  finished/total, diverged runs flagged with their step), the training loss per step (smoothed,
  with a slider for the smoothing) and per epoch, the test loss and test accuracy per epoch, the
  loss against training seconds, the share of time in ``optimizer.step()`` with the range over
  seeds, and how the comparison was made (command, versions, date).
* ``loss.png``, ``loss_time.png``, ``loss_epoch.png``, ``test_loss.png``, ``accuracy.png``,
  ``step_share.png``: the same charts as PNGs (:mod:`.figures`).

What the charts draw is computed once (:mod:`.views`); the output depends only on the store, so
two reports of one store are byte-identical. :func:`render_overlay` draws several output folders'
comparisons of one task as one report (``optimlab report A B --out C``).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

from .. import pages
from ..errors import UserError
from ..files import atomic_write_text
from ..outdir import open_existing, open_for_write, verify
from ..pages import Cell, Chart, escape, fmt, log_axis, round6
from ..provenance import provenance_section
from ..store import Store
from . import views
from .figures import FIGURE_NAMES, write_figures
from .summary import ReportData, SummaryRow, collect, write_summary_csv


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
    return _write(data, out, figures)


def render_overlay(folders: list[Path], out: Path, *, figures: bool = True) -> list[SummaryRow]:
    """One report of several comparisons' folders, into ``out``: a folder of its own (kind
    ``report`` in its manifest, :mod:`optimlab.lab.outdir`), never a comparison's.

    The folders must hold comparisons of one task; an optimizer label found in several folders
    is told apart by its folder's name (``adam (a)``). Everything is read and checked before
    ``out`` is created or written.

    Raises:
        UserError: a folder without a store or given twice, folders of different tasks, an
            ``out`` optimlab may not write (a comparison's folder, a foreign one, one in use).
    """
    from .overlay import merge

    out = Path(out)
    seen: dict[Path, Path] = {}
    for folder in folders:  # the same comparison twice (also through another path) is a mistake
        real = Path(folder).resolve()
        if real in seen:
            raise UserError(f"{folder} is given twice (as {seen[real]} too): give each comparison once")
        seen[real] = Path(folder)
    datasets = []
    for folder in folders:
        with Store.open(Path(folder), create=False) as store:
            datasets.append(collect(store))
    data = merge(datasets, [str(f) for f in folders], str(out))
    with open_for_write(out, "report", {"folders": [str(f) for f in folders]}, {}) as folder:
        for path in report_files(out, figures=figures):
            folder.file(path.name)
        return _write(data, out, figures)


def _write(data: ReportData, out: Path, figures: bool) -> list[SummaryRow]:
    rows = data.summary()
    write_summary_csv(out / "summary.csv", rows)
    weight = views.default_smoothing(views.total_steps(data))
    line_panels = views.panels(data, weight)
    atomic_write_text(out / "report.html", render_html(data, rows, line_panels, weight))
    if figures:
        write_figures(data, rows, line_panels, out)
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


# ---- charts ---------------------------------------------------------------------------------------
def _line_traces(line: views.Line, panel: views.Panel) -> list[dict[str, Any]]:
    group = f"g{line.group}"
    unit = "%" if not panel.log_y else ""
    hover = f"%{{y:.4g}}{unit}" if panel.log_y else f"%{{y:.2f}}{unit}"
    traces: list[dict[str, Any]] = []
    x = round6(line.x)
    if line.low is not None and line.high is not None:
        for role, values, fill in (("high", line.high, None), ("low", line.low, "tonexty")):
            trace = {"type": "scatter", "x": x, "y": round6(values), "mode": "lines",
                     "line": {"width": 0, "color": line.color}, "legendgroup": group,
                     "showlegend": False, "hoverinfo": "skip", "meta": {"g": line.group, "r": role}}
            if fill:
                trace.update(fill=fill, fillcolor=pages.rgba(line.color, 0.16))
            traces.append(trace)
    traces.append({
        "type": "scatter", "x": x, "y": round6(line.y), "name": escape(line.label),
        "mode": "lines+markers" if panel.markers else "lines", "legendgroup": group,
        "line": {"color": line.color, "width": 2}, "marker": {"size": 5},
        "hovertemplate": hover, "meta": {"g": line.group, "r": "mean", "spec": escape(line.spec)},
    })
    return traces


def _diverged_traces(d: views.Diverged, panel: views.Panel, legend: str | None) -> list[dict[str, Any]]:
    name = escape(f"{d.label}, seed {d.seed}: diverged at step {d.step}")
    traces: list[dict[str, Any]] = []
    if d.x:
        traces.append({
            "type": "scatter", "x": round6(d.x), "y": round6(views.clip_top(d.y, panel.y_range)),
            "mode": "lines", "name": escape(legend) if legend else name, "showlegend": legend is not None,
            "legendgroup": f"div{d.group}",
            "line": {"color": d.color, "width": 1.4, "dash": "dot"}, "hovertemplate": "%{y:.3g}",
            "meta": {"r": "diverged", "raw": round6(d.y)},
        })
    if panel.y_range is not None:
        top = views.clip_top([math.inf], panel.y_range)[0]
        x = d.x[-1] if d.x else 0.0
        traces.append({
            "type": "scatter", "x": [round6([x])[0]], "y": [round6([top])[0]], "mode": "markers",
            "legendgroup": f"div{d.group}", "showlegend": bool(legend) and not d.x,
            "name": escape(legend) if legend and not d.x else name,
            "marker": {"symbol": "triangle-up", "size": 12, "color": d.color,
                       "line": {"color": "#ffffff", "width": 1}},
            "hovertemplate": f"{name}<extra></extra>", "meta": {"r": "edge"},
        })
    return traces


def _panel_chart(panel: views.Panel) -> Chart:
    hover = "x unified"
    chart_layout = pages.layout(panel.title, panel.x_title, panel.y_title, log_y=panel.log_y,
                                hover=hover)
    if panel.y_range is not None:
        lo, hi = panel.y_range
        if panel.log_y:
            chart_layout["yaxis"].update(log_axis(lo, hi))
        else:
            chart_layout["yaxis"].update(range=[lo, hi], autorange=False, ticksuffix="")
    epochs = max((max(line.x) for line in panel.lines if line.x), default=0)
    if panel.x_title == "epoch" and epochs <= 12:
        chart_layout["xaxis"].update(dtick=1)  # whole epochs
    data: list[dict[str, Any]] = []
    for line in panel.lines:
        data += _line_traces(line, panel)
    legends = views.diverged_legend(panel)
    for d in panel.diverged:
        data += _diverged_traces(d, panel, legends.get(id(d)))
    notes = {
        "loss": "Each seed's batch losses smoothed (slider above), then the mean over the finished "
                "seeds; shaded: lowest to highest smoothed seed.",
        "loss-epoch": "The mean of each epoch's batch losses, smoothed over the same span of training "
                      "as the per-step curves; shaded: lowest to highest seed.",
        "test-loss": "Loss on the test split after each epoch, smoothed likewise; shaded: lowest to "
                     "highest seed.",
        "accuracy": "Accuracy on the test split after each epoch, smoothed likewise; shaded: lowest "
                    "to highest seed.",
        "loss-time": "As the loss per step, against the seconds spent training (evaluation and "
                     "bookkeeping excluded).",
    }
    if not data:
        notes[panel.id] = "No run of this comparison has finished yet."
    if panel.diverged:
        notes[panel.id] = notes[panel.id] + (" Dotted: runs that diverged, up to their last finite "
                                             "loss; ▲ where one leaves the range or stops.")
    return Chart(f"chart-{panel.id}", data, chart_layout, notes[panel.id])


def _share_chart(rows: list[SummaryRow]) -> Chart:
    shown = views.share_rows(rows)
    names = [_two_line(r.label) for r in shown]
    mean = [100 * r.step_time_share_mean for r in shown]
    trace = {
        "type": "bar", "orientation": "h", "y": names, "x": round6(mean),
        "marker": {"color": [r.color for r in shown]},
        "error_x": {"type": "data", "symmetric": False, "color": "#3e4c59", "thickness": 1.2,
                    "array": round6([100 * r.step_time_share_high - m for r, m in zip(shown, mean)]),
                    "arrayminus": round6([m - 100 * r.step_time_share_low for r, m in zip(shown, mean)])},
        "customdata": [[round6([100 * r.step_time_share_low])[0], round6([100 * r.step_time_share_high])[0]]
                       for r in shown],
        "hovertemplate": "%{x:.1f}% (seeds %{customdata[0]:.1f}–%{customdata[1]:.1f}%)<extra></extra>",
    }
    chart_layout = pages.layout("Share of training time in optimizer.step()",
                                "% of training time", "", legend=False,
                                plot_height=max(120, 34 * len(shown)))
    chart_layout["yaxis"].update(type="category", autorange="reversed", ticks="", title={"text": ""})
    top = max([100 * r.step_time_share_high for r in shown if math.isfinite(r.step_time_share_high)],
              default=100)
    chart_layout["xaxis"].update(range=[0, min(100, top * 1.08 + 1)], ticksuffix="%")
    note = ("Bar: mean over the finished seeds; whisker: lowest to highest seed. The rest of the "
            "time is the forward and backward passes.")
    return Chart("chart-step-share", [trace] if shown else [], chart_layout, note)


def _two_line(label: str) -> str:
    """A label as a tick: the name, then the hyperparameters in a smaller second line."""
    name, _, rest = label.partition(" (")
    if not rest:
        return escape(label)
    return f"{escape(name)}<br><span style=\"font-size:10px\">{escape(rest[:-1])}</span>"


# ---- table ---------------------------------------------------------------------------------------
_HEAD = (("optimizer", "text"), ("lr", ""), ("effective step", ""), ("seeds finished / total", ""),
         ("final train loss", ""),
         ("test accuracy (%)", ""), ("± 95% CI (pp)", ""), ("train time (s)", ""),
         ("optimizer.step() share (%)", ""), ("diverged", "text"))


def _summary_table(rows: list[SummaryRow]) -> str:
    skipped = any(r.skipped_steps for r in rows)
    body = []
    for r in rows:
        diverged = Cell("0", 0)
        if r.diverged_at:
            details = ", ".join(f"seed {s} at step {st}" for s, st in r.diverged_at)
            diverged = Cell(f'<span class="bad">{r.diverged_runs} ({escape(details)})</span>', r.diverged_runs)
        if r.unfinished_runs:
            diverged = Cell(diverged.html + f' <span class="warn">{r.unfinished_runs} unfinished</span>',
                            diverged.sort)
        done = f"{r.seeds_finished}/{r.seeds}"
        name = pages.name_html(r.label, r.optimizer, r.color)
        body.append([
            Cell(name, r.label.lower(), "text wrap"),
            Cell(fmt(r.lr, ".3g"), r.lr), Cell(fmt(r.effective_lr, ".3g"), r.effective_lr),
            Cell(f'<span class="{"bad" if r.seeds_finished == 0 else ""}">{done}</span>', r.seeds_finished),
            Cell(pages.number(r.final_train_loss_mean), r.final_train_loss_mean),
            Cell(fmt(100 * r.test_accuracy_mean, ".2f"), 100 * r.test_accuracy_mean),
            Cell(fmt(100 * r.test_accuracy_ci95, ".2f"), 100 * r.test_accuracy_ci95),
            Cell(fmt(r.wall_time_s_mean, ".3g"), r.wall_time_s_mean),
            Cell(fmt(100 * r.step_time_share_mean, ".1f"), 100 * r.step_time_share_mean),
            Cell(diverged.html, diverged.sort, "text wrap"),
            *([Cell(str(r.skipped_steps), r.skipped_steps)] if skipped else []),
        ])
    # steps left out by --skip-nonfinite: a column only where some were
    head = (*_HEAD, ("skipped steps", "")) if skipped else _HEAD
    return pages.table(head, body, table_id="summary")


# ---- page ----------------------------------------------------------------------------------------
def _date(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _header(data: ReportData) -> str:
    exp = data.experiment
    items = [("task", data.task), ("data", data.source),
             ("hyperparameters", exp.get("hyperparameters") or "not recorded")]
    if exp.get("folders"):
        items.append(("comparisons", ", ".join(exp["folders"])))
    for key in ("epochs", "batch_size", "seeds", "schedule", "validation_fraction", "clip_grad_norm",
                "accumulate", "skip_nonfinite"):
        if exp.get(key) is not None:
            items.append((key.replace("_", " "), str(exp[key])))
    if data.provenance:
        last = data.provenance[-1]
        items.append(("device", f"{last.get('device', '?')} ({last.get('device_name', '')})"))
    items.append(("results written", _date(data.updated_at)))
    return pages.facts(items)


def _smoothing_control(weight: float) -> str:
    return (
        '<section class="card"><div class="controls">'
        '<label for="smooth"><b>Smoothing</b> of the per-step curves</label>'
        f'<input type="range" id="smooth" min="0" max="0.99" step="0.01" value="{weight:.2f}">'
        f'<output id="smooth-value" for="smooth">{weight:.2f}</output>'
        '<span class="note">weight of an exponential moving average of each seed\'s batch losses '
        "(0: the raw batch losses)</span></div></section>"
    )


def _raw_series(data: ReportData) -> dict[str, Any]:
    """What the slider smooths: each optimizer's finished seeds' batch losses (binned as the
    charts are) and epoch columns, and the steps of an epoch."""
    raw: dict[str, Any] = {"spe": views.steps_per_epoch(data), "steps": {}}
    for what in ("train_losses", "test_losses", "test_accuracies"):
        raw[what] = {}
    for k, g in enumerate(data.groups):
        runs = [r for r in g.finished if r.losses]
        if runs:
            n = min(len(r.losses) for r in runs)
            _, seeds = views.binned(list(range(n)), [r.losses[:n] for r in runs])
            raw["steps"][str(k)] = [round6(s) for s in seeds]
        for what in ("train_losses", "test_losses", "test_accuracies"):
            runs = [r for r in g.finished if getattr(r, what)]
            if runs:
                scale = 100.0 if what == "test_accuracies" else 1.0
                raw[what][str(k)] = [round6(s) for s in views.epoch_seeds(runs, what, scale)[1]]
    return raw


def render_html(data: ReportData, rows: list[SummaryRow], line_panels: list[views.Panel] | None = None,
                weight: float | None = None) -> str:
    """The self-contained HTML report (plotly.js inline; every user string escaped)."""
    if weight is None:
        weight = views.default_smoothing(views.total_steps(data))
    if line_panels is None:
        line_panels = views.panels(data, weight)
    charts = [_panel_chart(p) for p in line_panels] + [_share_chart(rows)]
    n_diverged = sum(r.diverged_runs for r in rows)
    flag = (f'<p class="bad">{n_diverged} run(s) diverged (non-finite loss): they are counted, '
            "never averaged; see the last column.</p>" if n_diverged else "")
    note = ("Means are over the finished seeds. Test accuracy is the last epoch's, in %; ± is the "
            "95% confidence interval over seeds (Student's t), in percentage points (pp). Effective "
            "step: what a constant gradient moves per step, lr/(1−momentum) for momentum methods "
            "(momentum 0.9 at lr 0.01 steps like SGD at 0.1), lr otherwise. Hyperparameters: "
            + (data.experiment.get("hyperparameters") or "not recorded")
            + ". Click a column's header to sort by it.")
    title = f"optimlab compare: {data.task}" if data.task else "optimlab compare"
    body = (
        f'<section class="card"><h2>Summary</h2>{flag}{_summary_table(rows)}'
        f'<p class="note">{escape(note)}</p></section>'
        + _smoothing_control(weight)
        + '<div class="grid">' + "".join(c.card() for c in charts) + "</div>"
        + provenance(data)
    )
    script = _SMOOTHING_JS % {"raw": pages.script_json(_raw_series(data), compact=True)}
    return pages.page(title, header=_header(data), body=body, charts=charts, script=script)


def provenance(data: ReportData) -> str:
    """The page's "how this was made" block, from the provenance records in the store."""
    written = [("results written", _date(data.updated_at))]
    if data.overlay_command is not None:
        made = "; ".join(f"{r['folder']}: {r.get('command', 'not recorded')}" for r in data.provenance)
        return provenance_section(data.provenance[:1], extra=written, command=data.overlay_command,
                                  note=f"The comparisons were made with: {made}." if made else "")
    return provenance_section(data.provenance, extra=written)


#: the smoothing slider: recompute each seed's EMA, the mean and band, refit the y-range
_SMOOTHING_JS = """(function(){
var RAW=%(raw)s,slider=document.getElementById('smooth'),out=document.getElementById('smooth-value');
if(!slider||!window.Plotly)return;
var PANELS={'chart-loss':['steps',0,1],'chart-loss-time':['steps',0,1],'chart-loss-epoch':['train_losses',1,1],
'chart-test-loss':['test_losses',1,1],'chart-accuracy':['test_accuracies',1,0]};
function ema(v,w){var o=[],s=0,d=1;for(var i=0;i<v.length;i++){var x=v[i];if(x===null||!isFinite(x)){o.push(null);continue;}
s=w*s+(1-w)*x;d*=w;o.push(d<1?s/(1-d):x);}return o;}
function epochWeight(w){if(w>=1||RAW.spe<=0)return 0;var n=1/(1-w)/RAW.spe;return n<2?0:1-1/n;}
function stats(seeds,w){var sm=seeds.map(function(s){return ema(s,w);}),n=sm[0].length,m=[],lo=[],hi=[];
for(var i=0;i<n;i++){var c=[];sm.forEach(function(s){if(s[i]!==null)c.push(s[i]);});
m.push(c.length===sm.length?c.reduce(function(a,b){return a+b;},0)/c.length:null);
lo.push(c.length?Math.min.apply(null,c):null);hi.push(c.length?Math.max.apply(null,c):null);}
return {mean:m,low:lo,high:hi};}
function sup(e){return '10<sup>'+e+'</sup>';}
function ticks(lo,hi){var a=Math.floor(Math.log10(lo)),b=Math.ceil(Math.log10(hi)),t=[];
[[1],[1,2,5],[1,2,3,5,7]].some(function(ms){t=[];for(var e=a;e<=b;e++)ms.forEach(function(m){var v=m*Math.pow(10,e);
if(v>=lo&&v<=hi)t.push([m,e]);});return t.length>=3;});
if(t.length>8){var k=Math.ceil(t.length/7);t=t.filter(function(_,i){return i%%k===0;});}
return {tickvals:t.map(function(p){return p[0]*Math.pow(10,p[1]);}),
ticktext:t.map(function(p){return p[1]===0?String(p[0]):(p[0]===1?sup(p[1]):p[0]+'×'+sup(p[1]));})};}
function fitLog(vals,lows){vals=vals.filter(function(v){return v>0;});if(!vals.length)return null;
var lo=Math.min.apply(null,vals),hi=Math.max.apply(null,vals);lows=lows.filter(function(v){return v>0;}).sort(function(a,b){return a-b;});
if(lows.length)lo=Math.min(lo,lows[Math.floor(0.02*(lows.length-1))]);
var a=Math.log10(lo),b=Math.log10(hi),s=Math.max(b-a,0.3);return [a-0.04*s,b+0.04*s];}
function fitLinear(vals){if(!vals.length)return null;var lo=Math.min.apply(null,vals),hi=Math.max.apply(null,vals),
s=Math.max(hi-lo,1),m=(lo+hi)/2;return [Math.max(0,m-s/2-0.06*s),Math.min(100,m+s/2+0.06*s)];}
function update(){var w=Number(slider.value),we=epochWeight(w),cache={};out.textContent=w.toFixed(2);
Object.keys(PANELS).forEach(function(id){var gd=document.getElementById(id),p=PANELS[id],raw=RAW[p[0]];
if(!gd||!gd.data||!raw)return;var idx=[],ys=[],vals=[],lows=[];
gd.data.forEach(function(t,i){var m=t.meta;if(!m||m.g===undefined||!raw[m.g])return;var key=p[0]+'/'+m.g;
if(!cache[key])cache[key]=stats(raw[m.g],p[1]?we:w);var y=cache[key][m.r];if(!y)return;idx.push(i);ys.push(y);
y.forEach(function(v){if(v!==null){if(m.r==='low'&&p[2])lows.push(v);else vals.push(v);}});});
if(!idx.length)return;Plotly.restyle(gd,{y:ys},idx);
if(!p[2]){var r=fitLinear(vals);if(r)Plotly.relayout(gd,{'yaxis.range':r});return;}
var r=fitLog(vals,lows);if(!r)return;
var top=Math.pow(10,r[1]-0.01*(r[1]-r[0])),di=[],dy=[];gd.data.forEach(function(t,i){var m=t.meta;if(!m)return;
if(m.r==='diverged'){di.push(i);dy.push(m.raw.map(function(v){return v===null?null:Math.min(v,top);}));}
if(m.r==='edge'){di.push(i);dy.push([top]);}});if(di.length)Plotly.restyle(gd,{y:dy},di);
var tk=ticks(Math.pow(10,r[0]),Math.pow(10,r[1]));Plotly.relayout(gd,{'yaxis.range':r,'yaxis.tickvals':tk.tickvals,
'yaxis.ticktext':tk.ticktext});});}
slider.addEventListener('input',update);
})();"""
