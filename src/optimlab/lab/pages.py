"""What every report page and figure shares: one look (the page shell, its stylesheet and
scripts from :mod:`.page_assets`, the plotly configuration), the one colour palette, short legend
labels, log-axis ticks, number formats and the provenance block.

Pages: :func:`page` wraps a page's sections in one self-contained HTML file (plotly.js inline, no
network) that fits any width from 390 px up: cards shrink with the window, charts with their card,
wide tables scroll inside their own box, and each chart's legend sits below its plot, as tall as
its labels need at the chart's width. Tables made by :func:`table` sort by any column on a click.

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
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..optim import SEED_OPTIMIZERS, available
from ..optim import defaults as optimizer_defaults
from .errors import UserError
from .page_assets import CSS, SCRIPT
from .spec import parse_parts, parse_value

#: matplotlib's tab10, then further distinct colours (tab20b's darks) for names beyond ten
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
    "#5254a3", "#8ca252", "#bd9e39", "#ad494a", "#a55194",
)  # fmt: skip

#: the names in colour order: the seeds' nine first, then every other registered optimizer
COLOR_ORDER: tuple[str, ...] = (*SEED_OPTIMIZERS, *(n for n in available() if n not in SEED_OPTIMIZERS))

#: text, grid and background colours of every chart (plotly and matplotlib)
INK, MUTED, GRID = "#1f2933", "#52606d", "#e6e9ee"

#: plotly's options for every chart
PLOTLY_CONFIG = {"responsive": True, "displaylogo": False, "displayModeBar": "hover",
                 "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}


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
    r, g, b = rgb(hex_color)
    return f"rgba({r},{g},{b},{alpha})"


def rgb(hex_color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as three 0-255 integers."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return (r, g, b)


# ---- short labels ---------------------------------------------------------------------------------
def short_labels(labels: Sequence[str]) -> list[str]:
    """Legend labels: each spec's name with only the hyperparameters that tell it apart.

    A ``key=value`` is left out when every spec shown has it, or when it is the optimizer's own
    default under the spec's convention (``adam:lr=0.001`` is ``adam``); conventions and phase
    lengths stay (``adam@keras``, ``adam@3 → sgd (lr=0.01)``). Where two labels would read the
    same, those two keep every hyperparameter; a label that cannot be read stays whole.
    """
    parsed = [_parts(label) for label in labels]
    pairs = [{(k, v) for phase in p for k, v in phase[2].items()} if p else set() for p in parsed]
    shared = set.intersection(*pairs) if pairs and all(parsed) and len(labels) > 1 else set()
    out = [_short(p, shared, drop_defaults=True) if p else label for p, label in zip(parsed, labels)]
    for i, text in enumerate(out):
        twins = [j for j, other in enumerate(out) if other == text]
        if len(twins) > 1:
            for j in twins:
                out[j] = _short(parsed[j], set(), drop_defaults=False) if parsed[j] else labels[j]
    return out


def _parts(label: str) -> list[tuple[str, tuple[str, ...], dict[str, str]]] | None:
    try:
        return [(p.name, p.suffixes, dict(p.params))
                for p in parse_parts(label, noun="hyperparameter", expected="key=value")]
    except UserError:
        return None


def _short(phases: list[tuple[str, tuple[str, ...], dict[str, str]]], shared: set[tuple[str, str]],
           *, drop_defaults: bool) -> str:
    texts = []
    for name, suffixes, params in phases:
        convention = next((s for s in suffixes if not s.isdigit()), "pytorch")
        kept = [f"{k}={v}" for k, v in params.items()
                if (k, v) not in shared and not (drop_defaults and _is_default(name, convention, k, v))]
        text = name + "".join(f"@{s}" for s in suffixes)
        texts.append(text + (f" ({', '.join(kept)})" if kept else ""))
    return " → ".join(texts)


def _is_default(name: str, convention: str, key: str, value: str) -> bool:
    try:
        default = optimizer_defaults(name, convention).get(key, object())
        given = parse_value(value)
    except (UserError, ValueError, KeyError, TypeError):
        return False
    if isinstance(default, (tuple, list)) and isinstance(given, tuple):
        return len(default) == len(given) and all(float(a) == float(b) for a, b in zip(default, given))
    if isinstance(default, bool) or isinstance(given, bool):
        return default is given
    if isinstance(default, (int, float)) and isinstance(given, (int, float)):
        return float(default) == float(given)
    return default == given


# ---- numbers ------------------------------------------------------------------------------------
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt(x: float, spec: str = ".4g", *, missing: str = "–", infinite: str = "never") -> str:
    """``x`` formatted with ``spec``; ``missing`` for nan, ``infinite`` for inf."""
    if isinstance(x, float) and math.isnan(x):
        return missing
    if isinstance(x, float) and math.isinf(x):
        return infinite
    return format(x, spec)


def number(x: float, digits: int = 4, *, missing: str = "–") -> str:
    """A number for a table or a label in the pages' one style: ``digits`` significant digits,
    written out between 10⁻³ and 10⁵ (``0.0123``, ``1234``), as ``m×10ᵉ`` outside (``1.2×10⁻⁵``),
    ``−`` for minus; ``missing`` when not finite."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return missing
    if x == 0:
        return "0"
    e = math.floor(math.log10(abs(x)))
    if -3 <= e < 5:
        text = f"{x:.{digits}g}" if e < digits else str(round(x))
    else:
        m = f"{x / 10.0**e:.{max(1, digits - 1)}g}"
        if m in ("10", "-10"):
            m, e = m[:-1], e + 1
        text = (m.lstrip("-") + "×" if m.lstrip("-") != "1" else "") + "10" + str(e).translate(_SUPERSCRIPT)
        text = ("-" if x < 0 else "") + text
    return text.replace("-", "−")


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


def round6(values: Sequence[float]) -> list[float | None]:
    """Six significant digits (a chart cannot show more); non-finite -> None (a gap)."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in values]


def power_text(mantissa: int, exponent: int, *, html_tags: bool = True) -> str:
    """``m×10^e`` as text: ``10<sup>-2</sup>``, ``2×10<sup>-2</sup>`` (or Unicode superscripts)."""
    power = f"10<sup>{exponent}</sup>" if html_tags else "10" + str(exponent).translate(_SUPERSCRIPT)
    if exponent == 0:
        return str(mantissa)
    return power if mantissa == 1 else f"{mantissa}×{power}"


def log_ticks(low: float, high: float, *, html_tags: bool = True) -> tuple[list[float], list[str]]:
    """Labelled ticks of a log axis from ``low`` to ``high`` (both > 0): the powers of ten, and
    2× and 5× them when fewer than three powers fall inside, every label in one style."""
    a, b = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 5, 7)):
        ticks = [(m, e) for e in range(a, b + 1) for m in mantissas if low <= m * 10.0**e <= high]
        if len(ticks) >= 3:
            break
    if len(ticks) > 8:  # many decades: every second or third
        step = math.ceil(len(ticks) / 7)
        ticks = ticks[::step]
    return [m * 10.0**e for m, e in ticks], [power_text(m, e, html_tags=html_tags) for m, e in ticks]


def log_range(values: Sequence[float], *, pad: float = 0.04) -> tuple[float, float] | None:
    """The range of the positive finite ``values`` on a log axis, padded by ``pad`` of its span
    on each side (None when there are none)."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not finite:
        return None
    lo, hi = math.log10(min(finite)), math.log10(max(finite))
    span = max(hi - lo, 0.3)
    return 10 ** (lo - pad * span), 10 ** (hi + pad * span)


def log_axis(low: float, high: float) -> dict[str, Any]:
    """A plotly log axis over ``[low, high]``: labelled ticks of :func:`log_ticks`, unlabelled
    minor ticks, the range fixed (so that nothing outside it stretches the axis)."""
    vals, text = log_ticks(low, high)
    decades = math.log10(high / low)
    # minor ticks at every digit; left to plotly's own choice under tickmode "array" they are
    # packed densely enough to grey out the plot
    return {"type": "log", "range": [math.log10(low), math.log10(high)], "autorange": False,
            "tickmode": "array", "tickvals": vals, "ticktext": text,
            "minor": {"dtick": "D1", "ticks": "outside", "ticklen": 3, "tickcolor": "#c5ccd6",
                      "showgrid": decades <= 5, "gridcolor": "#f1f3f6"}}


# ---- charts ---------------------------------------------------------------------------------------
def layout(title: str, x_title: str, y_title: str, *, log_x: bool = False, log_y: bool = False,
           hover: str = "closest", legend: bool = True, plot_height: int = 300) -> dict[str, Any]:
    """The plotly layout of every chart (the title is HTML-escaped: plotly renders HTML).

    The legend sits below the plot (:func:`page` sets the chart's height and bottom margin for
    the rows its labels take at the chart's width); numbers use one exponent style (``10⁵``).
    """

    def axis(name: str, log: bool) -> dict[str, Any]:
        return {"title": {"text": name, "font": {"size": 13}}, "type": "log" if log else "linear",
                "gridcolor": GRID, "zeroline": False, "exponentformat": "power",
                "separatethousands": True, "automargin": True, "linecolor": "#c5ccd6",
                "ticks": "outside", "ticklen": 4, "tickcolor": "#c5ccd6"}

    return {
        "title": {"text": html.escape(title), "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
        "xaxis": axis(x_title, log_x),
        "yaxis": axis(y_title, log_y),
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "font": {"color": INK, "family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"},
        "margin": {"l": 56, "r": 14, "t": 44, "b": 48},
        "showlegend": legend,
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yanchor": "bottom",
                   "yref": "container", "font": {"size": 12}, "itemwidth": 30,
                   "tracegroupgap": 4},
        "hovermode": hover,
        "hoverlabel": {"font": {"size": 12}, "namelength": -1},
        "height": plot_height + 44 + 48,
    }


@dataclass
class Chart:
    """One plotly chart of a page: its element id, traces and layout; ``note`` is a sentence
    shown under it. The layout's title is shown as the card's heading (HTML), so that plotly's
    tool bar never covers it on a narrow screen."""

    id: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]
    note: str = ""
    frames: list[dict[str, Any]] | None = None  # an animation's frames

    def _title(self) -> str:
        # layout() escaped it already: plotly renders HTML in titles
        return str(self.layout.get("title", {}).get("text", ""))

    def card(self) -> str:
        note = f'<p class="note">{escape(self.note)}</p>' if self.note else ""
        title = f"<h3>{self._title()}</h3>" if self._title() else ""
        return (f'<section class="card chart-card">{title}<div id="{escape(self.id)}" class="chart">'
                f"</div>{note}</section>")

    def spec(self) -> dict[str, Any]:
        chart_layout = dict(self.layout)
        if self._title():
            chart_layout["title"] = {"text": ""}
            chart_layout["margin"] = {**chart_layout.get("margin", {}), "t": 28}
            top = self.layout.get("margin", {}).get("t", 0)
            chart_layout["height"] = self.layout.get("height", 400) - top + 28
        spec = {"id": self.id, "data": self.data, "layout": chart_layout}
        if self.frames:
            spec["frames"] = self.frames
        return spec


def skipped(title: str, why: str) -> str:
    """A card for a chart left out: its title and one sentence why."""
    return f'<section class="card skipped"><h3>{escape(title)}</h3><p class="note">{escape(why)}</p></section>'


# ---- tables ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """A table cell: its HTML (already escaped), the value it sorts by, and a CSS class."""

    html: str
    sort: float | str | None = None
    cls: str = ""


def table(head: Sequence[tuple[str, str]], rows: Sequence[Sequence[Cell]], *, table_id: str = "",
          sortable: bool = True) -> str:
    """A table in its own scrolling box. ``head``: (text, CSS class) per column; a click on a
    header sorts by its column (numbers as numbers, undefined values last)."""
    ths = "".join(
        f'<th class="{escape(cls)}{" sortable" if sortable else ""}" scope="col"'
        f'{" tabindex=0" if sortable else ""}>{escape(text)}</th>'
        for text, cls in head)
    body = []
    for row in rows:
        tds = []
        for c in row:
            sort = "" if c.sort is None else f' data-sort="{escape(_sort_key(c.sort))}"'
            tds.append(f'<td class="{escape(c.cls)}"{sort}>{c.html}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    ident = f' id="{escape(table_id)}"' if table_id else ""
    return (f'<div class="table-wrap"><table{ident}{" data-sortable" if sortable else ""}>'
            f"<thead><tr>{ths}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _sort_key(value: float | str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "" if math.isnan(value) else ("1e308" if value > 0 else "-1e308")
    return repr(value) if isinstance(value, float) else str(value)


def name_html(label: str, spec: str, color: str) -> str:
    """An optimizer's table cell: its colour, its short label and, below, its full spec when the
    label leaves something out (escaped here)."""
    full = f'<span class="spec">{escape(spec).replace(",", ",<wbr>")}</span>' if label != spec else ""
    first, space, rest = label.partition(" ")  # the swatch stays on the line of the first word
    return (f'<span class="name"><span class="lead-word"><span class="swatch" '
            f'style="background:{escape(color)}"></span>{escape(first)}</span>{space}{escape(rest)}'
            f"</span>{full}")


def facts(items: Sequence[tuple[str, str]]) -> str:
    """A header's key facts: ``<dl>`` of (label, text) pairs; empty texts are left out."""
    return "<dl class=\"facts\">" + "".join(
        f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in items if v) + "</dl>"


# ---- provenance -------------------------------------------------------------------------------------
def provenance_section(rows: Sequence[tuple[str, str]], command: str | None, *,
                       note: str = "") -> str:
    """The block that says how a page was made: the command that reproduces it, then the
    versions, machine and date (``rows``: label, text), in ``<section class="card provenance">``."""
    cmd = (f'<p class="label">Reproduce with</p><pre class="command"><code>{escape(command)}</code></pre>'
           if command else '<p class="note">The command that made this was not recorded.</p>')
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in rows if v)
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    return (f'<section class="card provenance"><h2>How this was made</h2>{cmd}'
            f'<dl class="facts">{items}</dl>{extra}</section>')


# ---- the page (its stylesheet and script: page_assets) ---------------------------------------------
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


def page(title: str, *, header: str, body: str, charts: Sequence[Chart] = (), script: str = "",
         plotly: bool = True) -> str:
    """One self-contained report page.

    Args:
        title: the page title (escaped here).
        header: HTML under the title (facts, a lead sentence), already escaped.
        body: the sections, already escaped; each chart's element is placed by its
            :meth:`Chart.card`.
        charts: the charts to draw; their figures are JSON in
            ``<script type="application/json" id="optimlab-charts">`` (escaped for it), which
            :func:`page_charts` reads back.
        script: page-specific JavaScript run after the charts are drawn
            (``window.optimlabCharts`` holds them).
        plotly: inline plotly.js (a page without charts may leave it out).
    """
    specs = script_json([c.spec() for c in charts], compact=True)
    code = SCRIPT % {"config": script_json(PLOTLY_CONFIG, compact=True)}
    js = f"<script>{plotly_js()}</script>" if plotly and charts else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style>{js}</head><body>"
        f"<header class=\"page\"><h1>{escape(title)}</h1>{header}</header><main>{body}</main>"
        f'<script type="application/json" id="optimlab-charts">{specs}</script>'
        f"<script>{code}</script>{f'<script>{script}</script>' if script else ''}"
        "</body></html>\n"
    )


def page_charts(text: str) -> list[dict[str, Any]]:
    """The charts' figures (id, data, layout) embedded in a page :func:`page` wrote."""
    start = text.find('<script type="application/json" id="optimlab-charts">')
    if start < 0:
        return []
    start = text.index(">", start) + 1
    return json.loads(text[start:text.index("</script>", start)])
