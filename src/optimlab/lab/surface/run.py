"""Optimizer paths on 2-D surfaces: runs, measurements and pictures (``optimlab surface``).

A run drives the real optimizer classes (any spec, convention or phase list that
:func:`optimlab.lab.spec.parse_spec` accepts) on one ``torch.nn.Parameter`` of shape ``(2,)`` in
float64, for a fixed number of steps, and records the point, the value and the wall time of each
step. Optional gradient noise ``g_t + sigma * xi_t``, ``xi_t ~ N(0, I)``, comes from a generator
seeded with ``seed``, so every optimizer of one run sees the same noise sequence.

Measurements of a path (:class:`PathMetrics`), with ``theta_t`` the point after ``t`` steps:

* ``steps_to_tolerance``: the first ``t`` with ``min_m |theta_t - m| < tol`` or
  ``f(theta_t) - f_min < tol`` (``m`` over the known minima); ``None`` if never or if the surface
  has no minima;
* ``distance_to_nearest_minimum``: ``min_m |theta_T - m|`` at the last recorded point;
* on surfaces without minima (saddles, unbounded below): ``escaped_at_step``, the first ``t`` with
  ``f(theta_t) <= escape_value``, and ``distance_to_critical_point``, ``|theta_T - c|``;
* ``diverged``: the path reached a non-finite value or point, or left the surface's
  ``divergence_radius``; it is recorded up to the step before (``diverged_at_step``).

Outputs (written atomically to ``out``): ``<surface>.png`` (contours on log-spaced levels of
``f - min_domain f``, one coloured path per optimizer), ``<surface>.gif`` or ``.mp4`` (the paths
growing, one frame per group of steps), ``<surface>.html`` (interactive plotly page with the
library inlined: play/pause, a step slider, legend toggles, hover values; works offline), and
``<surface>.csv`` (one row per optimizer).
"""

from __future__ import annotations

import csv
import html
import io
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..optim._base import scalar
from .errors import UserError
from .spec import OptimizerSpec, Phase, build_optimizer, parse_spec, split_specs
from .surfaces import DEFAULT_SURFACES, Point, Surface, get_surface

log = logging.getLogger(__name__)

#: ``--tune`` multiplies each optimizer's learning rate by these factors (7 log-spaced values,
#: half a decade apart, from 1/31.6 to 31.6 times the spec's or the default's value)
TUNE_FACTORS: tuple[float, ...] = tuple(10.0 ** (k / 2.0) for k in range(-3, 4))

FORMATS = ("gif", "mp4", "none")
CSV_COLUMNS = (
    "optimizer",
    "steps_to_tolerance",
    "final_value",
    "distance_to_nearest_minimum",
    "diverged",
    "diverged_at_step",
    "escaped_at_step",
    "distance_to_critical_point",
    "lr",
    "tuned",
    "steps",
    "wall_time_s",
)

# Picture geometry: the plot on the left, the legend (labels with hyperparameters) on the right.
FIGSIZE = (8.4, 4.8)  # inches
PNG_DPI = 100
ANIMATION_DPI = 75  # 630 x 360 pixels: small GIFs, even sizes for H.264
FRAME_MS = 80
LAST_FRAME_MS = 1500
DEFAULT_MAX_FRAMES = 60


# ---- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trajectory:
    """The recorded path of one optimizer.

    Attributes:
        label: the spec's canonical text (with the chosen ``lr`` when tuned).
        spec: the spec that ran.
        points: ``(n + 1, 2)`` float64, ``points[t]`` = ``theta_t``; ``points[0]`` is the start.
        values: ``(n + 1,)`` float64, ``f(theta_t)``.
        step_seconds: ``(n,)`` wall time of step ``t``: value, gradient, noise and
            ``optimizer.step()``.
        steps: the number of steps asked for (``n`` is smaller when the path diverged).
        diverged_at: the step whose value or point was non-finite or beyond the divergence radius
            (that point is not recorded), or None.
        lr: the learning rate of each phase, as run.
        tuned: whether ``lr`` was chosen by :func:`tune_learning_rate`.
    """

    label: str
    spec: OptimizerSpec
    points: np.ndarray
    values: np.ndarray
    step_seconds: np.ndarray
    steps: int
    diverged_at: int | None = None
    lr: tuple[float, ...] = ()
    tuned: bool = False

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


@dataclass(frozen=True)
class PathMetrics:
    """What the CSV reports for one path (see the module docstring for the definitions)."""

    optimizer: str
    steps_to_tolerance: int | None
    final_value: float
    distance_to_nearest_minimum: float | None
    diverged: bool
    diverged_at_step: int | None
    escaped_at_step: int | None
    distance_to_critical_point: float | None
    lr: tuple[float, ...]
    tuned: bool
    steps: int
    wall_time_s: float

    def row(self) -> dict[str, str]:
        """The CSV row: empty cells for None, ``true``/``false`` for booleans."""

        def cell(v: object) -> str:
            if v is None:
                return ""
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, float):
                return f"{v:.10g}"
            if isinstance(v, tuple):
                return "+".join(f"{x:.6g}" for x in v)
            return str(v)

        return {k: cell(getattr(self, k)) for k in CSV_COLUMNS}


@dataclass(frozen=True)
class SurfaceRun:
    """Every optimizer's path on one surface, with the settings that produced them."""

    surface: Surface
    start: Point
    steps: int
    tol: float
    noise: float
    seed: int
    trajectories: tuple[Trajectory, ...]
    metrics: tuple[PathMetrics, ...]


def _as_spec(spec: str | OptimizerSpec) -> OptimizerSpec:
    return spec if isinstance(spec, OptimizerSpec) else parse_spec(spec)


def _phase_lr(phase: Phase) -> float:
    """The learning rate ``phase`` runs with: its own, else its convention's, else the class's."""
    probe = build_optimizer(phase, [torch.zeros(2, dtype=torch.float64, requires_grad=True)])
    return scalar(probe.defaults["lr"])


def run_trajectory(
    surface: Surface,
    spec: str | OptimizerSpec,
    *,
    steps: int | None = None,
    start: Point | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> Trajectory:
    """Run one optimizer spec on ``surface`` and record its path.

    The parameter is ``torch.nn.Parameter(torch.tensor(start, dtype=float64))``. Step ``t``
    evaluates ``f(theta_t)``, back-propagates, adds ``noise * xi_t`` to the gradient (``xi_t``
    from ``torch.Generator().manual_seed(seed)``) and calls ``optimizer.step()``. In a spec of
    several phases (``adam@50+sgd:lr=0.01``), phase lengths count steps; each phase starts with
    a fresh optimizer state.

    Args:
        surface: the surface.
        spec: an optimizer spec (text or parsed).
        steps: number of steps (default: the surface's).
        start: start point (default: the surface's).
        noise: standard deviation of the Gaussian gradient noise (0: exact gradients).
        seed: seed of the noise generator.

    Raises:
        UserError: bad spec, steps, start or noise.
    """
    spec = _as_spec(spec)
    steps = _check_steps(surface.steps if steps is None else steps)
    noise = _check_noise(noise)
    start = _check_start(surface.start if start is None else start)
    radius = surface.divergence_radius
    (x0, x1), (y0, y1) = surface.domain
    centre = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2], dtype=torch.float64)

    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    generator = torch.Generator().manual_seed(seed)
    phase_index = spec.phase_at(0)
    optimizer = build_optimizer(spec.phases[phase_index], [param])

    points, values, seconds = [], [], []
    diverged_at = None
    for t in range(steps + 1):
        began = time.perf_counter()
        if t == steps:
            with torch.no_grad():
                value = surface(param)
        else:
            if spec.phase_at(t) != phase_index:
                phase_index = spec.phase_at(t)
                optimizer = build_optimizer(spec.phases[phase_index], [param])
            optimizer.zero_grad(set_to_none=True)
            value = surface(param)
            value.backward()
        point = param.detach().clone()
        v = float(value.detach())
        if (
            not (math.isfinite(v) and bool(torch.isfinite(point).all()))
            or float(torch.linalg.vector_norm(point - centre)) > radius
        ):
            diverged_at = t
            break
        points.append(point.numpy())
        values.append(v)
        if t == steps:
            break
        if noise > 0:
            param.grad.add_(torch.randn(2, generator=generator, dtype=torch.float64), alpha=noise)
        optimizer.step()
        seconds.append(time.perf_counter() - began)

    return Trajectory(
        label=spec.label(),
        spec=spec,
        points=np.asarray(points, dtype=np.float64).reshape(-1, 2),
        values=np.asarray(values, dtype=np.float64),
        step_seconds=np.asarray(seconds, dtype=np.float64),
        steps=steps,
        diverged_at=diverged_at,
        lr=tuple(_phase_lr(p) for p in spec.phases),
    )


def _score(trajectory: Trajectory) -> tuple[bool, float]:
    # diverged is worst whatever its last value; otherwise the lowest final value wins
    return (
        trajectory.diverged,
        float(trajectory.values[-1]) if len(trajectory.values) else math.inf,
    )


def tune_learning_rate(
    surface: Surface,
    spec: str | OptimizerSpec,
    *,
    steps: int | None = None,
    start: Point | None = None,
    noise: float = 0.0,
    seed: int = 0,
    factors: Sequence[float] = TUNE_FACTORS,
) -> Trajectory:
    """The path of ``spec`` at the best learning rate of a small log-spaced grid.

    The grid is centred, per phase, on the learning rate the spec gives; else, on the value the
    surface's own default set uses for that optimizer and convention (chosen to draw well on this
    surface); else on the optimizer's default under its convention. Each candidate multiplies
    every phase's centre by one of ``factors``, rounded to three significant digits so that the
    label states exactly what ran. The best candidate has the lowest final value among those that
    did not diverge; a diverged candidate is worst. Ties keep the earlier (smaller) rate.

    Returns:
        The chosen path, with ``tuned=True`` and ``lr`` written into its label.
    """
    spec = _as_spec(spec)
    base = [_grid_centre(surface, p) for p in spec.phases]
    best: Trajectory | None = None
    for factor in factors:
        phases = tuple(
            replace(p, hyperparameters={**p.hyperparameters, "lr": float(f"{lr * factor:.3g}")})
            for p, lr in zip(spec.phases, base)
        )
        candidate = run_trajectory(
            surface, OptimizerSpec(phases), steps=steps, start=start, noise=noise, seed=seed
        )
        if best is None or _score(candidate) < _score(best):
            best = candidate
    assert best is not None
    log.info("tuned %s on %s: %s", spec.label(), surface.name, best.label)
    return replace(best, tuned=True)


def _grid_centre(surface: Surface, phase: Phase) -> float:
    if "lr" in phase.hyperparameters:
        return _phase_lr(phase)
    for text in surface.optimizers:
        for own in parse_spec(text).phases:
            if (own.name, own.convention) == (phase.name, phase.convention) and (
                "lr" in own.hyperparameters
            ):
                return _phase_lr(own)
    return _phase_lr(phase)


def measure(trajectory: Trajectory, surface: Surface, tol: float) -> PathMetrics:
    """The CSV's measurements of one path (definitions in the module docstring)."""
    points, values = trajectory.points, trajectory.values
    steps_to_tol = escaped = dist_min = dist_crit = None
    if surface.minima:
        minima = np.asarray(surface.minima, dtype=np.float64)
        distances = np.linalg.norm(points[:, None, :] - minima[None, :, :], axis=2).min(axis=1)
        gaps = values - surface.minimum_value
        reached = np.flatnonzero((distances < tol) | (gaps < tol))
        steps_to_tol = int(reached[0]) if reached.size else None
        dist_min = float(distances[-1])
    else:
        below = np.flatnonzero(values <= surface.escape_value)
        escaped = int(below[0]) if below.size else None
        if surface.critical_point is not None:
            dist_crit = float(np.linalg.norm(points[-1] - np.asarray(surface.critical_point)))
    return PathMetrics(
        optimizer=trajectory.label,
        steps_to_tolerance=steps_to_tol,
        final_value=float(values[-1]),
        distance_to_nearest_minimum=dist_min,
        diverged=trajectory.diverged,
        diverged_at_step=trajectory.diverged_at,
        escaped_at_step=escaped,
        distance_to_critical_point=dist_crit,
        lr=trajectory.lr,
        tuned=trajectory.tuned,
        steps=trajectory.steps,
        wall_time_s=float(trajectory.step_seconds.sum()),
    )


def run_surface(
    surface: Surface | str,
    optimizers: Sequence[str | OptimizerSpec] | str | None = None,
    *,
    steps: int | None = None,
    start: Point | None = None,
    tol: float = 1e-3,
    noise: float = 0.0,
    seed: int = 0,
    tune: bool = False,
) -> SurfaceRun:
    """Run several optimizers on one surface from the same start, with the same noise.

    Args:
        surface: a :class:`Surface` or a built-in name.
        optimizers: specs (a list, or comma-separated text as on the command line); default the
            surface's own.
        steps, start, noise, seed: see :func:`run_trajectory`.
        tol: tolerance of ``steps_to_tolerance``.
        tune: choose each optimizer's learning rate with :func:`tune_learning_rate`.

    Raises:
        UserError: unknown surface or optimizer, or a bad setting.
    """
    if isinstance(surface, str):
        surface = get_surface(surface)
    if optimizers is None:
        optimizers = surface.optimizers
    elif isinstance(optimizers, str):
        optimizers = split_specs(optimizers)
    specs = [_as_spec(s) for s in optimizers]
    if not specs:
        raise UserError("No optimizers given (expected e.g. --optimizers adam:lr=0.05,nag)")
    steps = _check_steps(surface.steps if steps is None else steps)
    start = _check_start(surface.start if start is None else start)
    tol = _check_tol(tol)
    noise = _check_noise(noise)
    settings = {"steps": steps, "start": start, "noise": noise, "seed": seed}
    paths = tuple(
        tune_learning_rate(surface, s, **settings)
        if tune
        else run_trajectory(surface, s, **settings)
        for s in specs
    )
    return SurfaceRun(
        surface=surface,
        start=start,
        steps=steps,
        tol=tol,
        noise=noise,
        seed=seed,
        trajectories=paths,
        metrics=tuple(measure(p, surface, tol) for p in paths),
    )


# ---- validation ------------------------------------------------------------------------------


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise UserError(f"Invalid steps: {steps!r} (expected an integer >= 1)")
    return steps


def _check_start(start: Sequence[float]) -> Point:
    try:
        x, y = (float(c) for c in start)
    except (TypeError, ValueError):
        raise UserError(
            f"Invalid start: {start!r} (expected two numbers x,y, e.g. 1,0.001)"
        ) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise UserError(f"Invalid start: {start!r} (expected finite numbers x,y)")
    return (x, y)


def _check_tol(tol: float) -> float:
    if not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
        raise UserError(f"Invalid tol: {tol!r} (expected a finite number > 0)")
    return float(tol)


def _check_noise(noise: float) -> float:
    if not isinstance(noise, (int, float)) or not (math.isfinite(noise) and noise >= 0):
        raise UserError(f"Invalid noise: {noise!r} (expected a finite number >= 0)")
    return float(noise)


def check_format(fmt: str) -> str:
    """Validate an animation format; ``mp4`` needs ``ffmpeg`` on the PATH."""
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise UserError(f"Invalid format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if fmt == "mp4" and shutil.which("ffmpeg") is None:
        raise UserError(
            "--format mp4 needs ffmpeg on the PATH, and none was found (use --format gif)"
        )
    return fmt


def parse_point(text: str) -> Point:
    """``"x,y"`` as two finite floats (``--start``)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        return _check_start((float(parts[0]), float(parts[1])))
    except ValueError:
        raise UserError(
            f"Invalid start {text!r} (expected two finite numbers x,y, e.g. 1,0.001)"
        ) from None


# ---- pictures ------------------------------------------------------------------------------------

_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip


def color(i: int) -> str:
    """The colour of the ``i``-th path (matplotlib's tab10 order)."""
    return _COLORS[i % len(_COLORS)]


def frame_steps(steps: int, max_frames: int = DEFAULT_MAX_FRAMES) -> list[int]:
    """The steps an animation shows: ``0, k, 2k, ...`` and ``steps``, at most ``max_frames``.

    ``k = ceil(steps / (max_frames - 1))`` steps make one group; each frame ends one group.
    """
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
        raise UserError(f"Invalid frames: {max_frames!r} (expected an integer >= 2)")
    group = max(1, math.ceil(steps / (max_frames - 1)))
    shown = list(range(0, steps, group))
    return [*shown, steps]


def animation_size() -> tuple[int, int]:
    """Width and height in pixels of every GIF/MP4 frame."""
    return (round(FIGSIZE[0] * ANIMATION_DPI), round(FIGSIZE[1] * ANIMATION_DPI))


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
    label: str

    @classmethod
    def for_values(cls, surface: Surface, z: np.ndarray, decades: float = 4.0) -> ContourScale:
        low, high = float(np.nanmin(z)), float(np.nanmax(z))
        if not surface.minima and low < 0 < high:
            c = max(-low, high) * 10.0**-decades
            return cls("symlog", 0.0, c, "sign(f) log10(1 + |f|/c)")
        top = high - low if high > low else 1.0
        return cls("log", low, top * 10.0**-decades, "log10(f - min f)")

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


def _legend_label(trajectory: Trajectory, metrics: PathMetrics) -> str:
    text = trajectory.label
    if metrics.diverged:
        text += f" (diverged at step {metrics.diverged_at_step})"
    elif metrics.escaped_at_step is not None:
        text += f" (escaped at step {metrics.escaped_at_step})"
    elif metrics.steps_to_tolerance is not None:
        text += f" (tol at step {metrics.steps_to_tolerance})"
    return text


def _subtitle(run: SurfaceRun, sep: str = "\n") -> str:
    parts = [f"{run.steps} steps from ({run.start[0]:g}, {run.start[1]:g})"]
    if run.noise > 0:
        parts.append(f"gradient noise sigma={run.noise:g}, seed {run.seed}")
    if any(p.tuned for p in run.trajectories):
        parts.append("lr tuned by final value")
    if not run.surface.bounded:
        parts.append(f"unbounded below: 'escaped' = f <= {run.surface.escape_value:g}")
    return sep.join(parts)


class _Figure:
    """The static picture (contours, start, minima, legend) and one line per path."""

    def __init__(self, run: SurfaceRun) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        surface = run.surface
        self.run = run
        self.fig = Figure(figsize=FIGSIZE, dpi=ANIMATION_DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.ax = self.fig.add_axes((0.075, 0.11, 0.5, 0.8))
        gx, gy, gz = (t.numpy() for t in surface.grid(160))
        scale = ContourScale.for_values(surface, gz)
        field = scale.transform(gz)
        levels = scale.levels(field)
        ax.contourf(gx, gy, field, levels=levels, cmap="Greys_r", alpha=0.6)
        ax.contour(gx, gy, field, levels=levels, colors="0.4", linewidths=0.35)
        (x0, x1), (y0, y1) = surface.domain
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"{surface.name}: {surface.formula}", fontsize=10, loc="left")
        self.fig.text(0.6, 0.11, _subtitle(run), fontsize=7, color="0.3", va="bottom")
        handles: list = []
        ax.plot(*run.start, "o", color="black", markersize=6, zorder=5)
        handles.append(Line2D([], [], marker="o", color="black", ls="", label="start"))
        if surface.minima:
            mx, my = np.asarray(surface.minima).T
            ax.plot(mx, my, "*", color="gold", markeredgecolor="black", markersize=13, zorder=5)
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="*",
                    color="gold",
                    markeredgecolor="black",
                    markersize=11,
                    ls="",
                    label="minimum",
                )
            )
        elif surface.critical_point is not None:
            ax.plot(
                *surface.critical_point,
                "P",
                color="white",
                markeredgecolor="black",
                markersize=9,
                zorder=5,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="P",
                    color="white",
                    markeredgecolor="black",
                    ls="",
                    label="saddle point (no minimum)",
                )
            )

        self.lines, self.heads, self.crosses = [], [], []
        for i, (path, metrics) in enumerate(zip(run.trajectories, run.metrics)):
            c = color(i)
            (line,) = ax.plot(
                [],
                [],
                "-",
                color=c,
                lw=1.6,
                label=_legend_label(path, metrics),
                zorder=3,
            )
            (head,) = ax.plot(
                [],
                [],
                "o",
                color=c,
                markersize=5,
                markeredgecolor="black",
                markeredgewidth=0.5,
                zorder=4,
            )
            (cross,) = ax.plot([], [], "x", color=c, markersize=11, mew=2.5, zorder=6)
            self.lines.append(line)
            self.heads.append(head)
            self.crosses.append(cross)
            handles.append(line)
        self.fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.6, 0.915),
            fontsize=7.5,
            frameon=False,
            handlelength=1.6,
        )
        self.counter = self.fig.text(0.57, 0.115, "", fontsize=8, ha="right", va="bottom")

    def _clip(self, point: np.ndarray) -> np.ndarray:
        (x0, x1), (y0, y1) = self.run.surface.domain
        return np.array([min(max(point[0], x0), x1), min(max(point[1], y0), y1)])

    def show(self, step: int) -> None:
        """Set every path to its first ``step`` steps."""
        for path, line, head, cross in zip(
            self.run.trajectories, self.lines, self.heads, self.crosses
        ):
            shown = path.points[: step + 1]
            line.set_data(shown[:, 0], shown[:, 1])
            end_reached = path.diverged and step >= path.diverged_at
            last = self._clip(shown[-1])
            head.set_data([last[0]], [last[1]])
            # diverged: the path stops at its last finite point, marked by an x (kept in view)
            cross.set_data(([last[0]], [last[1]]) if end_reached else ([], []))
            head.set_visible(not end_reached)
        self.counter.set_text(f"step {step} / {self.run.steps}")

    def set_animated(self, animated: bool) -> None:
        """Animated artists are left out of full draws, so that frames can blit them."""
        for artist in self.artists():
            artist.set_animated(animated)

    def artists(self) -> list:
        return [*self.lines, *self.heads, *self.crosses, self.counter]


def _png_bytes(figure: _Figure) -> bytes:
    figure.set_animated(False)
    figure.show(figure.run.steps)
    buffer = io.BytesIO()
    figure.fig.savefig(buffer, format="png", dpi=PNG_DPI)
    return buffer.getvalue()


def write_png(run: SurfaceRun, path: str | os.PathLike) -> Path:
    """The contour plot with every full path, written atomically."""
    return _atomic_write(path, _png_bytes(_Figure(run)))


def _frames(figure: _Figure, max_frames: int) -> tuple[list[int], Callable[[int], np.ndarray]]:
    """The steps of each frame and a function that renders one frame as RGB.

    The contours, markers and legend are drawn once; each frame restores that background and
    draws only the paths and the step counter (blitting).
    """
    figure.set_animated(True)
    canvas = figure.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(figure.fig.bbox)

    def render(step: int) -> np.ndarray:
        canvas.restore_region(background)
        figure.show(step)
        for artist in figure.artists():
            figure.fig.draw_artist(artist)
        return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()

    return frame_steps(figure.run.steps, max_frames), render


def _gif_palette(final: Image.Image, n_paths: int, background_colors: int = 40) -> Image.Image:
    """A palette image: the exact path colours (and their blends with white and grey, which
    antialiased lines produce), black, white and gold, then the background's own colours.

    A median cut alone merges the thin coloured paths into the greys that cover most pixels.
    """

    exact = [(0, 0, 0), (255, 255, 255), (255, 215, 0)]
    for i in range(min(n_paths, len(_COLORS))):
        rgb = tuple(int(_COLORS[i][k : k + 2], 16) for k in (1, 3, 5))
        exact.append(rgb)
        for other, w in (((255, 255, 255), 0.5), ((128, 128, 128), 0.5), ((255, 255, 255), 0.75)):
            exact.append(tuple(round(w * o + (1 - w) * c) for c, o in zip(rgb, other)))
    quantized = final.quantize(colors=background_colors, method=Image.Quantize.MEDIANCUT)
    background = quantized.getpalette()[: 3 * background_colors]
    flat = [v for c in exact for v in c] + background
    flat += [0] * (768 - len(flat))
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat[:768])
    return palette


def _gif_bytes(figure: _Figure, max_frames: int) -> bytes:

    steps, render = _frames(figure, max_frames)
    rgb = [Image.fromarray(render(s)) for s in steps]
    palette = _gif_palette(rgb[-1], len(figure.run.trajectories))
    # One palette for every frame and no dithering: unchanged pixels stay identical between
    # frames, so the GIF stores only the rectangle that changed.
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in rgb]
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
        optimize=False,
    )
    return buffer.getvalue()


def write_gif(
    run: SurfaceRun, path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES
) -> Path:
    """The animation as a looping GIF: one frame per group of steps (:func:`frame_steps`)."""
    return _atomic_write(path, _gif_bytes(_Figure(run), max_frames))


def write_mp4(
    run: SurfaceRun, path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES
) -> Path:
    """The animation as H.264 MP4 through ``ffmpeg`` (raises :class:`UserError` without it)."""
    return _write_mp4(_Figure(run), path, max_frames)


def _write_mp4(figure: _Figure, path: str | os.PathLike, max_frames: int) -> Path:
    check_format("mp4")
    steps, render = _frames(figure, max_frames)
    width, height = animation_size()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".mp4")
    os.close(fd)
    command = [
        shutil.which("ffmpeg") or "ffmpeg",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        f"{1000 / FRAME_MS:g}",
        "-i",
        "-",
        "-vcodec",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        tmp,
    ]
    try:
        with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdin is not None
            for s in steps:
                proc.stdin.write(render(s).tobytes())
            # hold the last frame, as the GIF does
            for _ in range(LAST_FRAME_MS // FRAME_MS):
                proc.stdin.write(render(steps[-1]).tobytes())
            _, err = proc.communicate()
        if proc.returncode != 0:
            raise UserError(f"ffmpeg failed: {err.decode(errors='replace').strip()[:300]}")
        _chmod_default(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


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
    for i, (path, metrics) in enumerate(zip(run.trajectories, run.metrics)):
        c = color(i)
        label = esc(_legend_label(path, metrics))
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
            end = path.diverged and k >= path.diverged_at
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
            f"<sub>{esc(_subtitle(run, '; '))}</sub>"
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
<p>tolerance {run.tol:g}; {esc(_subtitle(run, "; "))}</p>
</body>
</html>
"""
    return _atomic_write(path, page.encode("utf-8"))


def write_csv(run: SurfaceRun, path: str | os.PathLike) -> Path:
    """One row per optimizer, columns :data:`CSV_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for m in run.metrics:
        writer.writerow(m.row())
    return _atomic_write(path, buffer.getvalue().encode("utf-8"))


def write_outputs(
    run: SurfaceRun,
    out: str | os.PathLike,
    *,
    fmt: str = "gif",
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> list[Path]:
    """Write ``<surface>.png``, ``.gif``/``.mp4`` (unless ``fmt="none"``), ``.html`` and ``.csv``."""
    fmt = check_format(fmt)
    frame_steps(run.steps, max_frames)  # validates max_frames before anything is written
    out = Path(out)
    stem = run.surface.name
    figure = _Figure(run)  # contours computed once for the PNG and the animation
    written = [_atomic_write(out / f"{stem}.png", _png_bytes(figure))]
    if fmt == "gif":
        written.append(_atomic_write(out / f"{stem}.gif", _gif_bytes(figure, max_frames)))
    elif fmt == "mp4":
        written.append(_write_mp4(figure, out / f"{stem}.mp4", max_frames))
    written.append(write_html(run, out / f"{stem}.html", max_frames))
    written.append(write_csv(run, out / f"{stem}.csv"))
    return written


def surface_command(
    functions: str | None = None,
    optimizers: str | None = None,
    *,
    steps: int | None = None,
    start: str | None = None,
    tol: float = 1e-3,
    noise: float = 0.0,
    seed: int = 0,
    fmt: str = "gif",
    out: str | os.PathLike = "runs/surface",
    tune: bool = False,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> list[tuple[SurfaceRun, list[Path]]]:
    """What ``optimlab surface`` does: validate everything, then run and draw each surface.

    Args:
        functions: comma-separated surface names (default ``saddle,valley``).
        optimizers: comma-separated specs (default: each surface's own set).
        start: ``"x,y"`` (default: each surface's own).
        Others: as in :func:`run_surface` and :func:`write_outputs`.
    """
    names = [n for n in (functions or ",".join(DEFAULT_SURFACES)).split(",") if n.strip()]
    surfaces = [get_surface(n) for n in names]
    if not surfaces:
        raise UserError("No surface given (expected e.g. --function rosenbrock)")
    specs = None if optimizers is None else [parse_spec(s) for s in split_specs(optimizers)]
    point = None if start is None else parse_point(start)
    if steps is not None:
        _check_steps(steps)
    _check_tol(tol)
    _check_noise(noise)
    fmt = check_format(fmt)
    frame_steps(1, max_frames)
    results = []
    for surface in surfaces:
        run = run_surface(
            surface, specs, steps=steps, start=point, tol=tol, noise=noise, seed=seed, tune=tune
        )
        results.append((run, write_outputs(run, out, fmt=fmt, max_frames=max_frames)))
    return results


# ---- files -------------------------------------------------------------------------------------


def _chmod_default(path: str) -> None:
    # mkstemp creates files readable by the owner only; give them the usual mode (0666 - umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _chmod_default(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
