"""What every report page and figure shares: plotly.js inline, safe JSON, chart layout, number
formatting, and the one colour palette.

Colours: every optimizer name has one colour on every page and in every PNG (compare, tune,
surface). A spec's colour is its first phase's registry name's (``adam:lr=0.1@keras`` is
``adam``'s), in the order of :data:`COLOR_ORDER`: the seeds' nine optimizers take matplotlib's
``tab10`` colours in the seeds' order, the other registered names the next ones. When one page
shows several specs of the same name, the second and later take the colours that no name on that
page uses (:func:`colors`).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from ..optim import SEED_OPTIMIZERS, available

#: matplotlib's tab10, then further distinct colours (tab20b's darks) for names beyond ten
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
    "#5254a3", "#8ca252", "#bd9e39", "#ad494a", "#a55194",
)  # fmt: skip

#: the names in colour order: the seeds' nine first, then every other registered optimizer
COLOR_ORDER: tuple[str, ...] = (*SEED_OPTIMIZERS, *(n for n in available() if n not in SEED_OPTIMIZERS))


def base_name(label: str) -> str:
    """The registry name of a spec's first phase (``adam:lr=0.1@3+sgd`` -> ``adam``)."""
    return label.split("+", 1)[0].split("@", 1)[0].split(":", 1)[0].strip().lower()


def color(label: str) -> str:
    """The colour of an optimizer name (or of a spec, by its first phase's name)."""
    name = base_name(label)
    if name in COLOR_ORDER:
        return PALETTE[COLOR_ORDER.index(name) % len(PALETTE)]
    # a name outside the registry: a fixed colour of the spare ones, from its text
    spare = PALETTE[len(COLOR_ORDER):] or PALETTE
    return spare[sum(name.encode()) % len(spare)]


def colors(labels: Sequence[str]) -> list[str]:
    """One distinct colour per label of one page: each label gets its name's colour, except a
    second spec of a name already shown, which gets the first colour no label here uses."""
    taken = {color(label) for label in labels}
    spare = [c for c in PALETTE if c not in taken]
    out, seen = [], set()
    for label in labels:
        c = color(label)
        if c in seen:
            c = spare.pop(0) if spare else c
        seen.add(c)
        out.append(c)
    return out


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(r,g,b,alpha)``."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def rgb(hex_color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as three 0-255 integers."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return (r, g, b)


@cache
def plotly_js() -> str:
    """The minified plotly.js bundle shipped inside the installed plotly package."""
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_text(
        encoding="utf-8"
    )


def script_json(value: Any, *, compact: bool = False) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no HTML comment openers)."""
    separators = (",", ":") if compact else None
    text = json.dumps(value, separators=separators, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def escape(x: Any) -> str:
    """Any value as HTML text, quotes included."""
    return html.escape(str(x), quote=True)


def fmt(x: float, spec: str = ".4g", *, missing: str = "–", infinite: str = "never") -> str:
    """``x`` formatted with ``spec``; ``missing`` for nan, ``infinite`` for inf."""
    if isinstance(x, float) and math.isnan(x):
        return missing
    if isinstance(x, float) and math.isinf(x):
        return infinite
    return format(x, spec)


def layout(
    title: str, x_title: str, y_title: str, *, log_x: bool = False, log_y: bool = False
) -> dict[str, Any]:
    """The plotly layout of every chart (the title is HTML-escaped: plotly renders HTML)."""
    return {
        "title": {"text": html.escape(title), "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
        "xaxis": {"title": {"text": x_title}, "type": "log" if log_x else "linear",
                  "gridcolor": "#eceff4", "zeroline": False},
        "yaxis": {"title": {"text": y_title}, "type": "log" if log_y else "linear",
                  "gridcolor": "#eceff4", "zeroline": False},
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"font": {"size": 11}},
        "hovermode": "closest",
        "height": 420,
    }


def csv_number(x: float) -> str:
    """A number for a CSV cell: exact (``repr``), empty when undefined, ``inf`` when infinite."""
    if isinstance(x, float) and math.isnan(x):
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return repr(float(x))


def json_number(x: float) -> float | None:
    """A number for JSON: None when not finite."""
    return float(x) if math.isfinite(x) else None
