"""What every picture of a surface run shows, computed once for the PNG, the animation and the
page: the frame, the shading and its scale in words, and each path's label, colour, dash and
marker.

* The frame holds the surface's domain and every path, as far as :data:`FRAME_CAP` times the
  domain's half-width from its centre on each side (a path that runs further leaves the frame
  there, marked at the edge), so that escaping paths stay in view instead of leaving the domain a
  few steps in.
* The shading is ``f`` on a logarithmic scale (:class:`ContourScale`), described in words by
  :func:`scale_words` and labelled in values of ``f`` on the colour bar (:func:`colorbar_ticks`).
* Paths that run on top of each other stay apart by their dash and by markers spaced along each
  path at an offset of its own (:func:`path_styles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import pages
from .catalog import Surface
from .run import PathMetrics, SurfaceRun, Trajectory

#: how far the frame may grow past the domain: this many half-widths from its centre
FRAME_CAP = 2.5

#: (plotly dash, matplotlib dash) of the paths, in order
DASHES = (("solid", (0, ())), ("dash", (0, (6, 3))), ("dot", (0, (1.2, 2.2))),
          ("dashdot", (0, (6, 2.5, 1.2, 2.5))), ("longdash", (0, (11, 3))),
          ("longdashdot", (0, (11, 2.5, 1.2, 2.5))))
#: (plotly symbol, matplotlib marker) along the paths, in order
MARKERS = (("circle", "o"), ("square", "s"), ("triangle-up", "^"), ("diamond", "D"),
           ("triangle-down", "v"), ("cross", "P"), ("x", "X"), ("star", "*"), ("hexagon", "h"),
           ("triangle-left", "<"), ("triangle-right", ">"))
#: markers drawn along each path
MARKS_PER_PATH = 6

Box = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class ContourScale:
    """How contours are spaced: evenly in ``t(f)``, a logarithmic transform of the surface.

    * ``log``: ``t = log10(max(f - min f, floor))`` with ``min f`` over the plotted grid (so
      ``f - min f >= 0`` also where ``f`` is negative) and ``floor = 10**-decades * max(f - min f)``;
    * ``symlog`` (surfaces without minima whose values take both signs, e.g. saddles):
      ``t = sign(f) * log10(1 + |f| / c)`` with ``c = 10**-decades * max |f|``, symmetric about
      the value 0 of the saddle point.
    """

    kind: str
    offset: float
    scale: float

    @classmethod
    def for_values(cls, surface: Surface, z: np.ndarray, decades: float = 4.0) -> ContourScale:
        """The scale of the values ``z`` of a grid (and of the surface's minima, which a grid
        rarely hits, so that the scale counts from the true minimum)."""
        low, high = float(np.nanmin(z)), float(np.nanmax(z))
        if surface.minima:
            with torch.no_grad():
                at_minima = [float(surface.function(torch.tensor(x, dtype=torch.float64),
                                                    torch.tensor(y, dtype=torch.float64)))
                             for x, y in surface.minima]
            low = min([low, *(v for v in at_minima if math.isfinite(v))])
        if not surface.minima and low < 0 < high:
            return cls("symlog", 0.0, max(-low, high) * 10.0**-decades)
        top = high - low if high > low else 1.0
        return cls("log", low, top * 10.0**-decades)

    def transform(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "symlog":
            return np.sign(z) * np.log10(1.0 + np.abs(z) / self.scale)
        return np.log10(np.maximum(z - self.offset, self.scale))

    def levels(self, t: np.ndarray, n: int = 25) -> np.ndarray:
        """``n`` evenly spaced levels of ``t`` (an odd ``n`` puts one at 0 under symlog)."""
        low, high = float(np.nanmin(t)), float(np.nanmax(t))
        if self.kind == "symlog":
            bound = max(-low, high)
            return np.linspace(-bound, bound, n)
        return np.linspace(low, high if high > low else low + 1.0, n)


def scale_words(scale: ContourScale) -> str:
    """The shading in plain words."""
    if scale.kind == "symlog":
        return ("Shading: the value f(x, y), dark where it is low and light where it is high, on "
                "a logarithmic scale on both sides of 0, so that the shape near the saddle point "
                "stays visible. Each contour line is one step of that scale.")
    return ("Shading: the value f(x, y), dark where it is low and light where it is high, on a "
            "logarithmic scale of its height above the lowest point shown: each contour line is "
            "the same factor higher than the one below it.")


def _number(v: float) -> str:
    if v == 0:
        return "0"
    e = math.floor(math.log10(abs(v)))
    if -2 <= e <= 3:
        return f"{v:.3g}".replace("-", "−")
    m = v / 10**e
    text = pages.power_text(round(abs(m)), e, html_tags=False) if abs(round(m) - m) < 0.05 else f"{v:.1e}"
    return ("−" if v < 0 else "") + text


def colorbar_ticks(scale: ContourScale, field: np.ndarray) -> tuple[list[float], list[str]]:
    """Positions on the shading's scale ``t`` and their labels as values of ``f``."""
    low, high = float(np.nanmin(field)), float(np.nanmax(field))
    if scale.kind == "log":
        ts = [float(k) for k in range(math.ceil(low), math.floor(high) + 1)]
        if len(ts) > 6:
            ts = ts[:: math.ceil(len(ts) / 6)]
        return ts, [_number(scale.offset + 10.0**t) for t in ts]
    # 0 and powers of ten, the larger first, each at least a ninth of the bar from the others
    values = [0.0] + sorted((sign * 10.0**e for e in range(-8, 9) for sign in (1, -1)), key=abs, reverse=True)
    gap, kept = (high - low) / 9, []
    for v in values:
        t = float(scale.transform(np.array([v]))[0])
        if low <= t <= high and all(abs(t - k) >= gap for k, _ in kept):
            kept.append((t, v))
    kept.sort()
    return [t for t, _ in kept], [_number(v) for _, v in kept]


def frame(run: SurfaceRun, cap: float = FRAME_CAP) -> Box:
    """The domain grown to hold every recorded point of every path, at most ``cap`` half-widths
    from the domain's centre on each side."""
    (x0, x1), (y0, y1) = run.surface.domain
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    points = np.concatenate([p.points for p in run.trajectories]) if run.trajectories else np.zeros((0, 2))
    points = points[np.isfinite(points).all(axis=1)]
    if len(points):
        x0, x1 = min(x0, float(points[:, 0].min())), max(x1, float(points[:, 0].max()))
        y0, y1 = min(y0, float(points[:, 1].min())), max(y1, float(points[:, 1].max()))
    x0, x1 = max(x0, cx - cap * hx), min(x1, cx + cap * hx)
    y0, y1 = max(y0, cy - cap * hy), min(y1, cy + cap * hy)
    # a margin where the paths widened the frame, so that their ends are not on the edge
    dx, dy = 0.03 * (x1 - x0), 0.03 * (y1 - y0)
    (d0, d1), (e0, e1) = run.surface.domain
    return ((x0 - dx if x0 < d0 else x0, x1 + dx if x1 > d1 else x1),
            (y0 - dy if y0 < e0 else y0, y1 + dy if y1 > e1 else y1))


def grid(surface: Surface, box: Box, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X, Y, f(X, Y)`` on an ``n`` by ``n`` grid over ``box`` (rows follow ``y``)."""
    (x0, x1), (y0, y1) = box
    xs = torch.linspace(x0, x1, n, dtype=torch.float64)
    ys = torch.linspace(y0, y1, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    with torch.no_grad():
        z = surface.function(gx, gy)
    return gx.numpy(), gy.numpy(), z.numpy()


def clip(point: np.ndarray, box: Box) -> np.ndarray:
    """``point`` moved into ``box`` (a path that left the frame is shown at its edge)."""
    (x0, x1), (y0, y1) = box
    return np.array([min(max(point[0], x0), x1), min(max(point[1], y0), y1)])


def exit_step(path: Trajectory, box: Box) -> int | None:
    """The first step whose point lies outside ``box``, or None."""
    (x0, x1), (y0, y1) = box
    p = path.points
    outside = ~((p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1))
    return int(np.argmax(outside)) if outside.any() else None


def status(path: Trajectory, metrics: PathMetrics) -> str:
    """What happened to a path, in a few words (empty when nothing did)."""
    if metrics.diverged:
        return f"diverged at step {metrics.diverged_at_step}"
    if metrics.escaped_at_step is not None:
        return f"escaped at step {metrics.escaped_at_step}"
    # in the CSV's words (end_state): converged = within the distance tolerance of a minimum
    if metrics.steps_to_distance_tol is not None:
        return f"converged at step {metrics.steps_to_distance_tol}"
    if metrics.end_state == "value converged":
        return f"value converged at step {metrics.steps_to_value_tol}"
    return ""


def labels(run: SurfaceRun) -> list[str]:
    """Each path's short label (:func:`optimlab.lab.pages.short_labels`) and its status."""
    short = pages.short_labels([p.label for p in run.trajectories])
    out = []
    for text, path, metrics in zip(short, run.trajectories, run.metrics):
        what = status(path, metrics)
        out.append(f"{text}: {what}" if what else text)
    return out


@dataclass(frozen=True)
class PathStyle:
    """How one path is drawn: colour, dash and marker (plotly and matplotlib names), and the
    steps its markers sit on."""

    color: str
    dash: str
    mpl_dash: tuple
    symbol: str
    mpl_marker: str
    mark_steps: tuple[int, ...]


def path_styles(run: SurfaceRun) -> list[PathStyle]:
    """One style per path: the name's colour, and a dash and marker of its own; each path's
    markers are spaced evenly along it, shifted by its index, so overlapping paths show both."""
    colors = pages.colors([p.label for p in run.trajectories])
    n = max(1, len(run.trajectories))
    styles = []
    for i, (path, c) in enumerate(zip(run.trajectories, colors)):
        last = len(path.points) - 1
        every = max(1, last // MARKS_PER_PATH)
        offset = 1 + (i * every) // n
        marks = tuple(range(offset, last + 1, every)) if last > 0 else ()
        (dash, mpl_dash), (symbol, marker) = DASHES[i % len(DASHES)], MARKERS[i % len(MARKERS)]
        styles.append(PathStyle(c, dash, mpl_dash, symbol, marker, marks))
    return styles
