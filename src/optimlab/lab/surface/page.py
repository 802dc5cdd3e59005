"""The interactive page of a surface run: ``<surface>.html``, self-contained (plotly.js inlined,
no network) in the look of :mod:`optimlab.lab.pages`: play/pause, a step slider, legend toggles,
hover values in plain words (``f(x, y) = ...``), the shading's colour bar and scale in words, the
measurements as a table with units, and how the page was made."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import pages
from ..files import atomic_write_text
from ..pages import Cell, Chart, escape
from ..provenance import collect, command_line, provenance_section
from . import view
from .draw import DEFAULT_MAX_FRAMES, FRAME_MS, frame_steps, legend_label, subtitle
from .run import PathMetrics, SurfaceRun

PLOT_HEIGHT = 440  # px of the plot area; the controls and the legend are below it


def _number(v: float) -> float:
    return float(f"{v:.6g}")


def _f_text(v: float) -> str:
    return f"{v:.4g}" if np.isfinite(v) else "–"


def _surface_traces(run: SurfaceRun, box: view.Box) -> list[dict[str, Any]]:
    surface = run.surface
    gx, gy, gz = view.grid(surface, box, 120)
    scale = view.ContourScale.for_values(surface, gz)
    field = scale.transform(gz)
    levels = scale.levels(field)
    ticks, tick_text = view.colorbar_ticks(scale, field)
    data: list[dict[str, Any]] = [{
        "type": "contour",
        "x": [_number(v) for v in gx[0]],
        "y": [_number(v) for v in gy[:, 0]],
        "z": np.round(field, 4).tolist(),
        "text": [[_f_text(v) for v in row] for row in gz],
        "colorscale": "Greys", "opacity": 0.6, "autocontour": False,
        "contours": {"start": float(levels[0]), "end": float(levels[-1]),
                     "size": float(levels[1] - levels[0])},
        "showscale": True,
        "colorbar": {"title": {"text": "f(x, y)<br>(log scale)", "side": "top", "font": {"size": 11}},
                     "tickvals": ticks, "ticktext": tick_text, "thickness": 10, "len": 1,
                     "x": 1.01, "xpad": 4, "outlinewidth": 0, "tickfont": {"size": 10}},
        "line": {"width": 0.5, "color": "rgb(110,110,110)"},
        "name": "surface", "showlegend": False,
        "hovertemplate": "x = %{x:.4g}, y = %{y:.4g}<br>f(x, y) = %{text}<extra></extra>",
    }, {
        "type": "scatter", "x": [run.start[0]], "y": [run.start[1]], "mode": "markers",
        "name": "start", "marker": {"symbol": "circle", "size": 10, "color": "black"},
        "hovertemplate": "start: x = %{x:.4g}, y = %{y:.4g}<extra></extra>",
    }]
    if surface.minima:
        mx, my = np.asarray(surface.minima).T
        data.append({
            "type": "scatter", "x": mx.tolist(), "y": my.tolist(), "mode": "markers",
            "name": "minimum", "marker": {"symbol": "star", "size": 15, "color": "gold",
                                          "line": {"color": "black", "width": 1}},
            "hovertemplate": "minimum: x = %{x:.4g}, y = %{y:.4g}<extra></extra>",
        })
    elif surface.critical_point is not None:
        data.append({
            "type": "scatter", "x": [surface.critical_point[0]], "y": [surface.critical_point[1]],
            "mode": "markers", "name": "saddle point (no minimum)",
            "marker": {"symbol": "cross", "size": 12, "color": "white",
                       "line": {"color": "black", "width": 1}},
            "hovertemplate": "saddle point<extra></extra>",
        })
    return data


def html_figure(run: SurfaceRun, max_frames: int = DEFAULT_MAX_FRAMES) -> dict:
    """The plotly figure (as a dict) of the interactive page.

    Traces: the shading (hover: ``f(x, y)``), the start and the minima, then per optimizer its
    path (hover: step, x, y, f; its own dash and markers) and its current point; frames grow the
    paths group by group. Every user-supplied string is HTML-escaped, because plotly renders a
    subset of HTML in text.
    """
    esc = html.escape
    box = view.frame(run)
    data = _surface_traces(run, box)
    animated: list[int] = []
    styles = view.path_styles(run)
    for i, (path, metrics, style, label) in enumerate(
            zip(run.trajectories, run.metrics, styles, view.labels(run))):
        group = f"path{i}"
        sizes = [0] * len(path.points)
        for k in style.mark_steps:
            sizes[k] = 7
        animated.append(len(data))
        data.append({
            "type": "scatter", "mode": "lines+markers", "name": esc(label), "legendgroup": group,
            "x": [_number(v) for v in path.points[:, 0]],
            "y": [_number(v) for v in path.points[:, 1]],
            "line": {"color": style.color, "width": 2.2, "dash": style.dash},
            "marker": {"size": sizes, "color": style.color, "symbol": style.symbol,
                       "line": {"color": "white", "width": 0.8}},
            "customdata": [[s, _number(v)] for s, v in enumerate(path.values)],
            "hovertemplate": (f"{esc(legend_label(path, metrics))}<br>step %{{customdata[0]}}: "
                              "x = %{x:.5g}, y = %{y:.5g}<br>f(x, y) = %{customdata[1]:.5g}<extra></extra>"),
        })
        last = view.clip(path.points[-1], box)
        animated.append(len(data))
        data.append({
            "type": "scatter", "x": [_number(last[0])], "y": [_number(last[1])], "mode": "markers",
            "legendgroup": group, "showlegend": False, "hoverinfo": "skip",
            "marker": {"symbol": "x" if path.diverged else "circle", "size": 12 if path.diverged else 8,
                       "color": style.color, "line": {"color": "black", "width": 1}},
        })
    frames, slider_steps = [], []
    for k in frame_steps(run.steps, max_frames):
        frame_data = []
        for path in run.trajectories:
            shown = path.points[: k + 1]
            head = view.clip(shown[-1], box)
            end = path.diverged and k >= path.stopped_at
            frame_data.append({"x": [_number(v) for v in shown[:, 0]], "y": [_number(v) for v in shown[:, 1]]})
            frame_data.append({"x": [_number(head[0])], "y": [_number(head[1])],
                               "marker": {"symbol": "x" if end else "circle", "size": 12 if end else 8}})
        frames.append({"name": str(k), "data": frame_data, "traces": animated})
        slider_steps.append({"method": "animate", "label": str(k), "args": [[str(k)], {
            "mode": "immediate", "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}}]})
    layout = pages.layout(f"{run.surface.name}: {run.surface.formula}", "x", "y", plot_height=PLOT_HEIGHT)
    (x0, x1), (y0, y1) = box
    layout["xaxis"].update(range=[x0, x1], autorange=False, gridcolor="rgba(0,0,0,0)")
    layout["yaxis"].update(range=[y0, y1], autorange=False, gridcolor="rgba(0,0,0,0)")
    controls = -58 / PLOT_HEIGHT  # the play button 58 px below the plot, the slider under it
    layout["margin"].update(r=70, b=200)
    layout["height"] = PLOT_HEIGHT + layout["margin"]["t"] + layout["margin"]["b"]
    layout["updatemenus"] = [{
        "type": "buttons", "direction": "left", "showactive": False, "x": 0.0, "y": controls,
        "xanchor": "left", "yanchor": "top", "pad": {"t": 0, "r": 6},
        "buttons": [
            {"label": "Play", "method": "animate", "args": [None, {
                "frame": {"duration": FRAME_MS, "redraw": False}, "transition": {"duration": 0},
                "fromcurrent": False, "mode": "immediate"}]},
            {"label": "Pause", "method": "animate", "args": [[None], {
                "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0},
                "mode": "immediate"}]},
        ],
    }]
    layout["sliders"] = [{
        "active": len(slider_steps) - 1, "steps": slider_steps, "x": 0, "len": 1,
        "y": controls - 34 / PLOT_HEIGHT, "yanchor": "top", "pad": {"t": 0, "b": 0, "l": 0, "r": 0},
        "currentvalue": {"prefix": "step ", "font": {"size": 12}}, "font": {"size": 9},
        "ticklen": 3, "minorticklen": 0,
    }]
    return {"data": data, "layout": layout, "frames": frames}


#: the measurements' columns on the page: (CSV column, header with unit, how a cell reads)
_COLUMNS = (
    ("end_state", "end state", "text"),
    ("steps_to_distance_tol", "steps to distance tolerance", "int"),
    ("steps_to_value_tol", "steps to value tolerance", "int"),
    ("escaped_at_step", "escaped at step", "int"),
    ("diverged_at_step", "diverged at step", "int"),
    ("final_value", "final f(x, y)", "num"),
    ("distance_to_nearest_minimum", "distance to the nearest minimum", "num"),
    ("distance_to_critical_point", "distance to the saddle point", "num"),
    ("lr", "learning rate", "lr"),
    ("steps", "steps run", "int"),
    ("wall_time_s", "time (ms)", "ms"),
)


def _cell(metrics: PathMetrics, key: str, kind: str) -> Cell:
    v = getattr(metrics, key)
    if v is None:
        return Cell("–", None)
    if kind == "int":
        return Cell(str(v), v)
    if kind == "text":
        return Cell(escape(v), str(v), "text")
    if kind == "ms":
        return Cell(f"{1000 * v:.3g}", 1000 * v)
    if kind == "lr":
        text = " → ".join(f"{x:.4g}" for x in v) + (" (tuned)" if metrics.tuned else "")
        return Cell(escape(text), v[0] if v else None)
    return Cell(escape(pages.number(v)), float(v))


def metrics_table(run: SurfaceRun) -> str:
    """The measurements with human headers and units; a column empty for every path is left out."""
    columns = [(key, head, kind) for key, head, kind in _COLUMNS
               if any(getattr(m, key) is not None for m in run.metrics)]
    styles = view.path_styles(run)
    short = pages.short_labels([p.label for p in run.trajectories])
    rows = []
    for m, style, label in zip(run.metrics, styles, short):
        name = pages.name_html(label, m.optimizer, style.color)
        rows.append([Cell(name, label.lower(), "text wrap"), *(_cell(m, k, kind) for k, _, kind in columns)])
    head = [("optimizer", "text"), *((h, "") for _, h, _ in columns)]
    return pages.table(head, rows, table_id="metrics")


def render_page(run: SurfaceRun, max_frames: int = DEFAULT_MAX_FRAMES,
                command: str | None = None) -> str:
    """The page's HTML."""
    figure = html_figure(run, max_frames)
    box = view.frame(run)
    gz = view.grid(run.surface, box, 40)[2]
    scale = view.ContourScale.for_values(run.surface, gz)
    grown = box != run.surface.domain
    note = view.scale_words(scale) + " Click a legend entry to show or hide its path." + (
        " The frame is the surface's domain grown to hold the paths (at most 2.5 times its size); a "
        "path that goes further leaves it at the edge." if grown else "")
    chart = Chart("surface-plot", figure["data"], figure["layout"], note, frames=figure["frames"])
    surface = run.surface
    value_tol = run.tol if run.value_tol is None else run.value_tol
    facts = pages.facts([("formula", surface.formula), ("settings", subtitle(run, "; ")),
                         ("tolerances", f"distance {run.tol:g}, value {value_tol:g}")])
    header = (f'<p class="lead">{escape(surface.description)}</p>' if surface.description else "") + facts
    tol = (f"Steps to distance tolerance: the first step within {run.tol:g} of a minimum; steps to "
           f"value tolerance: the first whose value is within {value_tol:g} of the minimum value "
           "(on a flat valley floor the value is near long before the point). "
           if surface.minima else "On a surface without a minimum, a path that leaves far is "
           "'escaped', never 'diverged'. ")
    record = collect(command if command is not None else command_line())
    body = (
        chart.card() +
        f'<section class="card"><h2>Measurements</h2>{metrics_table(run)}'
        f'<p class="note">{escape(tol)}Time: the wall-clock time of all steps, in milliseconds.</p></section>'
        + provenance_section([record])
    )
    return pages.page(f"optimlab surface: {surface.name}", header=header, body=body, charts=[chart])


def write_html(run: SurfaceRun, path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES,
               command: str | None = None) -> Path:
    """A self-contained interactive page: plotly.js inlined, no network needed."""
    return atomic_write_text(path, render_page(run, max_frames, command))
