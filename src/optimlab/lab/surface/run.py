"""Optimizer paths on 2-D surfaces: the runs and their measurements (``optimlab surface``).

A run drives the real optimizer classes (any spec, convention or phase list that
:func:`optimlab.lab.spec.parse_spec` accepts) on one ``torch.nn.Parameter`` of shape ``(2,)`` in
float64, for a fixed number of steps, and records the point, the value and the wall time of each
step. Optional gradient noise ``g_t + sigma * xi_t``, ``xi_t ~ N(0, I)``, comes from a generator
seeded with ``seed``, so every optimizer of one run sees the same noise sequence.

Measurements of a path (:class:`PathMetrics`), with ``theta_t`` the point after ``t`` steps:

* ``steps_to_distance_tol``: the first ``t`` with ``min_m |theta_t - m| < distance_tol`` (``m``
  over the known minima); ``steps_to_value_tol``: the first with ``f(theta_t) - f_min <
  value_tol`` (kept apart: on a flat valley floor the value is near long before the point);
* ``distance_to_nearest_minimum``: ``min_m |theta_T - m|`` at the last recorded point;
* on surfaces without minima (saddles, unbounded below): ``escaped_at_step``, the first ``t`` with
  ``f(theta_t) <= escape_value``, and ``distance_to_critical_point``, ``|theta_T - c|``;
* a path that reaches a non-finite value or point, or leaves the surface's ``divergence_radius``,
  is stopped and recorded up to the step before. On a surface without minima, a path that had
  escaped is then ``escaped`` (going down without end is what escaping means there); otherwise it
  ``diverged`` (``diverged_at_step``);
* ``end_state``: ``converged`` (within ``distance_tol``), ``value converged`` (in value only),
  ``escaped``, ``diverged``, or ``not converged in N steps`` / ``not escaped in N steps``;
* ``lr``: the learning rate of each phase, as run (:mod:`.rates`: ``--lr seed|equal|tuned``).

The pictures are drawn by :mod:`.draw` (PNG, GIF, MP4) and :mod:`.page` (the interactive HTML
page); :mod:`.api` writes them with the CSV.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import UserError
from ..limits import LIMITS, short
from ..spec import OptimizerSpec, Phase, as_spec, build_optimizer, parse_specs
from .catalog import Point, Surface, get_surface

log = logging.getLogger(__name__)

TUNE_FACTORS: tuple[float, ...] = tuple(10.0 ** (k / 2.0) for k in range(-3, 4))

CSV_COLUMNS = (
    "optimizer",
    "lr",
    "tuned",
    "end_state",
    "steps_to_distance_tol",
    "steps_to_value_tol",
    "final_value",
    "distance_to_nearest_minimum",
    "escaped_at_step",
    "distance_to_critical_point",
    "diverged",
    "diverged_at_step",
    "steps",
    "wall_time_s",
)


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
        steps: the number of steps asked for (``n`` is smaller when the path was stopped).
        stopped_at: the step whose value or point was non-finite or beyond the divergence radius
            (that point is not recorded), or None.
        stop: why the path was stopped: ``"escaped"`` (on a surface without minima, after it
            escaped) or ``"diverged"``; None when it ran every step.
        lr: the learning rate of each phase, as run.
        tuned: whether ``lr`` was chosen by :func:`tune_learning_rate`.
    """

    label: str
    spec: OptimizerSpec
    points: np.ndarray
    values: np.ndarray
    step_seconds: np.ndarray
    steps: int
    stopped_at: int | None = None
    stop: str | None = None
    lr: tuple[float, ...] = ()
    tuned: bool = False

    @property
    def diverged(self) -> bool:
        return self.stop == "diverged"


@dataclass(frozen=True)
class PathMetrics:
    """What the CSV reports for one path (see the module docstring for the definitions)."""

    optimizer: str
    end_state: str
    steps_to_distance_tol: int | None
    steps_to_value_tol: int | None
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
    value_tol: float | None = None  # None: tol
    lr_mode: str = "seed"  # how the learning rates were set (``LR_MODES``)


@dataclass(frozen=True)
class Settings:
    """How paths are run, checked once: steps and start (None: the surface's), the tolerance of
    ``steps_to_tolerance``, the gradient noise and its seed."""

    steps: int | None = None
    start: Point | None = None
    tol: float = 1e-3
    noise: float = 0.0
    seed: int = 0
    distance_tol: float | None = None  # None: tol
    value_tol: float | None = None  # None: tol

    def __post_init__(self) -> None:
        if self.steps is not None:
            _check_steps(self.steps)
        if self.start is not None:
            object.__setattr__(self, "start", _check_start(self.start))
        object.__setattr__(self, "tol", _check_tol(self.tol))
        for name in ("distance_tol", "value_tol"):
            value = getattr(self, name)
            object.__setattr__(self, name, self.tol if value is None else _check_tol(value))
        object.__setattr__(self, "noise", _check_noise(self.noise))

    def on(self, surface: Surface) -> tuple[int, Point]:
        """The steps and start point of a run on ``surface``."""
        return (surface.steps if self.steps is None else self.steps,
                surface.start if self.start is None else self.start)


def _phase_lr(phase: Phase) -> float:
    """The learning rate ``phase`` runs with: its own, else its convention's, else the class's."""
    return float(phase.resolved()["lr"])


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
    settings = Settings(steps=steps, start=start, noise=noise, seed=seed)
    return _path(surface, as_spec(spec), settings)


def _path(surface: Surface, spec: OptimizerSpec, settings: Settings) -> Trajectory:
    """:func:`run_trajectory` with checked values."""
    steps, start = settings.on(surface)
    noise, seed = settings.noise, settings.seed
    radius = surface.divergence_radius
    (x0, x1), (y0, y1) = surface.domain
    centre = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2], dtype=torch.float64)

    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    generator = torch.Generator().manual_seed(seed)
    phase_index = spec.phase_at(0)
    optimizer = build_optimizer(spec.phases[phase_index], [param])

    points, values, seconds = [], [], []
    stopped_at = stop = None
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
            stopped_at = t
            escaped = not surface.bounded and bool(values) and min(values) <= surface.escape_value
            stop = "escaped" if escaped else "diverged"
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
        stopped_at=stopped_at,
        stop=stop,
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
    settings = Settings(steps=steps, start=start, noise=noise, seed=seed)
    return _tuned_path(surface, as_spec(spec), settings, factors)


def _tuned_path(surface: Surface, spec: OptimizerSpec, settings: Settings,
                factors: Sequence[float] = TUNE_FACTORS) -> Trajectory:
    """:func:`tune_learning_rate` with checked values."""
    base = [_grid_centre(surface, p) for p in spec.phases]
    best: Trajectory | None = None
    for factor in factors:
        phases = tuple(
            replace(p, hyperparameters={**p.hyperparameters, "lr": float(f"{lr * factor:.3g}")})
            for p, lr in zip(spec.phases, base)
        )
        candidate = _path(surface, OptimizerSpec(phases), settings)
        if best is None or _score(candidate) < _score(best):
            best = candidate
    assert best is not None
    log.info("tuned %s on %s: %s", spec.label(), surface.name, best.label)
    return replace(best, tuned=True)


def _grid_centre(surface: Surface, phase: Phase) -> float:
    if "lr" in phase.hyperparameters:
        return _phase_lr(phase)
    for own_spec in surface.specs:
        for own in own_spec.phases:
            if (own.name, own.convention) == (phase.name, phase.convention) and (
                "lr" in own.hyperparameters
            ):
                return _phase_lr(own)
    return _phase_lr(phase)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def measure(trajectory: Trajectory, surface: Surface, tol: float,
            value_tol: float | None = None) -> PathMetrics:
    """The CSV's measurements of one path (definitions in the module docstring); ``tol`` is the
    distance tolerance, ``value_tol`` (default ``tol``) the value tolerance."""
    value_tol = tol if value_tol is None else value_tol
    points, values = trajectory.points, trajectory.values
    to_distance = to_value = escaped = dist_min = dist_crit = None
    if surface.minima:
        minima = np.asarray(surface.minima, dtype=np.float64)
        distances = np.linalg.norm(points[:, None, :] - minima[None, :, :], axis=2).min(axis=1)
        to_distance = _first(distances < tol)
        to_value = _first(values - surface.minimum_value < value_tol)
        dist_min = float(distances[-1])
    else:
        escaped = _first(values <= surface.escape_value)
        if surface.critical_point is not None:
            dist_crit = float(np.linalg.norm(points[-1] - np.asarray(surface.critical_point)))
    if trajectory.diverged:
        state = "diverged"
    elif not surface.minima:
        state = "escaped" if escaped is not None else f"not escaped in {trajectory.steps} steps"
    elif dist_min is not None and dist_min < tol:
        state = "converged"
    elif float(values[-1]) - surface.minimum_value < value_tol:
        state = "value converged"
    else:
        state = f"not converged in {trajectory.steps} steps"
    return PathMetrics(
        optimizer=trajectory.label,
        end_state=state,
        steps_to_distance_tol=to_distance,
        steps_to_value_tol=to_value,
        final_value=float(values[-1]),
        distance_to_nearest_minimum=dist_min,
        diverged=trajectory.diverged,
        diverged_at_step=trajectory.stopped_at if trajectory.diverged else None,
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
    specs = list(surface.specs) if optimizers is None else parse_specs(optimizers)
    if not specs:
        raise UserError("No optimizers given (expected e.g. --optimizers adam:lr=0.05,nag)")
    settings = Settings(steps=steps, start=start, tol=tol, noise=noise, seed=seed)
    return run_paths(surface, specs, settings, tune=tune)


def run_paths(surface: Surface, specs: Sequence[OptimizerSpec], settings: Settings, *,
              tune: bool = False, lr_mode: str | None = None) -> SurfaceRun:
    """:func:`run_surface` with parsed specs and checked settings (``lr_mode`` only names how
    the specs' learning rates were set, for the pictures)."""
    steps, start = settings.on(surface)
    paths = tuple(
        _tuned_path(surface, s, settings) if tune else _path(surface, s, settings) for s in specs
    )
    return SurfaceRun(
        surface=surface,
        start=start,
        steps=steps,
        tol=settings.distance_tol,
        noise=settings.noise,
        seed=settings.seed,
        trajectories=paths,
        metrics=tuple(measure(p, surface, settings.distance_tol, settings.value_tol)
                      for p in paths),
        value_tol=settings.value_tol,
        lr_mode=lr_mode or ("tuned" if tune else "seed"),
    )


# ---- settings ----------------------------------------------------------------------------------


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise UserError(f"Invalid steps: {steps!r} (expected an integer >= 1)")
    if steps > LIMITS["steps"]:
        raise UserError(f"Invalid steps: {short(str(steps))} (at most {LIMITS['steps']:,})")
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
