"""The interactive page of a surface run: ``<surface>.html``, self-contained (plotly.js inlined,
no network): play/pause, a step slider, legend toggles and hover values, with the measurements'
table below the plot."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from ..files import atomic_write_text
from .draw import (
    DEFAULT_MAX_FRAMES,
    FRAME_MS,
    ContourScale,
    frame_steps,
    legend_label,
    path_colors,
    subtitle,
)
from .run import CSV_COLUMNS, SurfaceRun


def _number(v: float) -> float:
    return float(f"{v:.6g}")


def html_figure(run: SurfaceRun, max_frames: int = DEFAULT_MAX_FRAMES) -> dict:
    """The plotly figure (as a dict) of the interactive page.

    Traces: the contour of ``log10(f - min f)`` over the domain, then per optimizer its path
    (hover: step, x, y, f) and its current point; frames grow the paths group by group. Every
    user-supplied string is HTML-escaped, because plotly renders a subset of HTML in text.
    """
    surface = run.surface
    gx, gy, gz = (t.numpy() for t in surface.grid(120))
    scale = ContourScale.for_values(surface, gz)
    field = scale.transform(gz)
    levels = scale.levels(field)
    esc = html.escape
    data: list[dict] = [
        {
            "type": "contour",
            "x": [_number(v) for v in gx[0]],
            "y": [_number(v) for v in gy[:, 0]],
            "z": np.round(field, 4).tolist(),
            "colorscale": "Greys",
            "reversescale": False,
            "opacity": 0.6,
            "autocontour": False,
            "contours": {
                "start": float(levels[0]),
                "end": float(levels[-1]),
                "size": float(levels[1] - levels[0]),
            },
            "showscale": False,
            "line": {"width": 0.5, "color": "rgb(110,110,110)"},
            "name": "surface",
            "hovertemplate": (
                f"x=%{{x:.4g}}<br>y=%{{y:.4g}}<br>{scale.label}=%{{z:.3g}}<extra></extra>"
            ),
        },
        {
            "type": "scatter",
            "x": [run.start[0]],
            "y": [run.start[1]],
            "mode": "markers",
            "name": "start",
            "marker": {"symbol": "circle", "size": 10, "color": "black"},
            "hovertemplate": "start<br>x=%{x:.4g}<br>y=%{y:.4g}<extra></extra>",
        },
    ]
    if surface.minima:
        mx, my = np.asarray(surface.minima).T
        data.append(
            {
                "type": "scatter",
                "x": mx.tolist(),
                "y": my.tolist(),
                "mode": "markers",
                "name": "minimum",
                "marker": {
                    "symbol": "star",
                    "size": 15,
                    "color": "gold",
                    "line": {"color": "black", "width": 1},
                },
                "hovertemplate": "minimum<br>x=%{x:.4g}<br>y=%{y:.4g}<extra></extra>",
            }
        )
    elif surface.critical_point is not None:
        data.append(
            {
                "type": "scatter",
                "x": [surface.critical_point[0]],
                "y": [surface.critical_point[1]],
                "mode": "markers",
                "name": "saddle point (no minimum)",
                "marker": {
                    "symbol": "cross",
                    "size": 12,
                    "color": "white",
                    "line": {"color": "black", "width": 1},
                },
                "hovertemplate": "saddle point<extra></extra>",
            }
        )
    animated: list[int] = []
    palette = path_colors(run)
    for i, (path, metrics) in enumerate(zip(run.trajectories, run.metrics)):
        c = palette[i]
        label = esc(legend_label(path, metrics))
        group = f"path{i}"
        steps_axis = list(range(len(path.values)))
        animated.append(len(data))
        data.append(
            {
                "type": "scatter",
                "x": [_number(v) for v in path.points[:, 0]],
                "y": [_number(v) for v in path.points[:, 1]],
                "mode": "lines+markers",
                "name": label,
                "legendgroup": group,
                "line": {"color": c, "width": 2},
                "marker": {"size": 3, "color": c},
                "customdata": [[s, _number(v)] for s, v in zip(steps_axis, path.values)],
                "hovertemplate": (
                    f"{esc(path.label)}<br>step %{{customdata[0]}}<br>x=%{{x:.5g}}"
                    "<br>y=%{y:.5g}<br>f=%{customdata[1]:.5g}<extra></extra>"
                ),
            }
        )
        last = path.points[-1]
        animated.append(len(data))
        data.append(
            {
                "type": "scatter",
                "x": [_number(last[0])],
                "y": [_number(last[1])],
                "mode": "markers",
                "legendgroup": group,
                "showlegend": False,
                "hoverinfo": "skip",
                "marker": {
                    "symbol": "x" if path.diverged else "circle",
                    "size": 12 if path.diverged else 8,
                    "color": c,
                    "line": {"color": "black", "width": 1},
                },
            }
        )
    frames, slider_steps = [], []
    for k in frame_steps(run.steps, max_frames):
        frame_data = []
        for path in run.trajectories:
            shown = path.points[: k + 1]
            head = shown[-1]
            end = path.diverged and k >= path.stopped_at
            frame_data.append(
                {"x": [_number(v) for v in shown[:, 0]], "y": [_number(v) for v in shown[:, 1]]}
            )
            frame_data.append(
                {
                    "x": [_number(head[0])],
                    "y": [_number(head[1])],
                    "marker": {"symbol": "x" if end else "circle", "size": 12 if end else 8},
                }
            )
        frames.append({"name": str(k), "data": frame_data, "traces": animated})
        slider_steps.append(
            {
                "method": "animate",
                "label": str(k),
                "args": [
                    [str(k)],
                    {
                        "mode": "immediate",
                        "frame": {"duration": 0, "redraw": False},
                        "transition": {"duration": 0},
                    },
                ],
            }
        )
    (x0, x1), (y0, y1) = surface.domain
    layout = {
        "title": {
            "text": f"{esc(surface.name)}: {esc(surface.formula)}<br>"
            f"<sub>{esc(subtitle(run, '; '))}</sub>"
        },
        "xaxis": {"range": [x0, x1], "title": {"text": "x"}},
        "yaxis": {"range": [y0, y1], "title": {"text": "y"}},
        "hovermode": "closest",
        "legend": {"title": {"text": "click to show/hide"}, "font": {"size": 11}},
        "margin": {"t": 90},
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "showactive": False,
                "x": 0.0,
                "y": -0.12,
                "xanchor": "left",
                "yanchor": "top",
                "buttons": [
                    {
                        "label": "Play",
                        "method": "animate",
                        "args": [
                            None,
                            {
                                "frame": {"duration": FRAME_MS, "redraw": False},
                                "transition": {"duration": 0},
                                "fromcurrent": False,
                                "mode": "immediate",
                            },
                        ],
                    },
                    {
                        "label": "Pause",
                        "method": "animate",
                        "args": [
                            [None],
                            {
                                "frame": {"duration": 0, "redraw": False},
                                "transition": {"duration": 0},
                                "mode": "immediate",
                            },
                        ],
                    },
                ],
            }
        ],
        "sliders": [
            {
                "active": len(slider_steps) - 1,
                "steps": slider_steps,
                "x": 0.15,
                "len": 0.85,
                "y": -0.08,
                "currentvalue": {"prefix": "step "},
                "pad": {"t": 30},
            }
        ],
    }
    return {"data": data, "layout": layout, "frames": frames}


def write_html(
    run: SurfaceRun, path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES
) -> Path:
    """A self-contained interactive page: plotly.js inlined, no network needed."""
    import plotly.io as pio

    esc = html.escape
    figure = html_figure(run, max_frames)
    plot = pio.to_html(
        figure,
        include_plotlyjs=True,
        full_html=False,
        validate=False,
        auto_play=False,
        div_id="surface-plot",
        default_width="100%",
        default_height="640px",
        config={"displaylogo": False, "responsive": True},
    )
    header = "".join(f"<th>{esc(c)}</th>" for c in CSV_COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in m.row().values()) + "</tr>"
        for m in run.metrics
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>optimlab surface: {esc(run.surface.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-top: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
td:first-child {{ text-align: left; }}
</style>
</head>
<body>
<h1>{esc(run.surface.name)}</h1>
<p>{esc(run.surface.description)}</p>
{plot}
<table id="metrics"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>
<p>distance tolerance {run.tol:g}, value tolerance {run.value_tol if run.value_tol is not None else run.tol:g}; {esc(subtitle(run, "; "))}</p>
</body>
</html>
"""
    return atomic_write_text(path, page)
