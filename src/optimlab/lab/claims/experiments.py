"""The experiments claims are checked on, and the protocol that runs them.

Two kinds, both declared as data:

* :class:`TrainingExperiment`: a task of the lab trained with several optimizers. Protocol:

  1. **Equal tuning budget.** Every optimizer gets the same number of learning rates
     (``grid_points``, log-spaced over the range ``optimlab tune`` searches for it: its
     registry entry's ``lr_range``, :mod:`optimlab.optim.registry`); its other hyperparameters are the seeds' settings
     (the task's default specs). Each learning rate is trained for ``tune_seeds`` seeds on the
     training split minus a 10% validation split, and scored by its validation accuracy averaged
     over the last two epochs and over those seeds (one epoch's accuracy on a small validation
     split moves by points from epoch to epoch; a diverged run scores worst). The test split is
     never read while tuning.
  2. **Tuning noise.** The whole tuning study is run ``replicates`` times with other seeds, each
     replicate choosing its own learning rates (Sivaprasad et al. 2020: the chosen
     configuration is itself a random outcome of tuning).
  3. **Final runs.** Every learning rate some replicate chose is trained on the whole training
     split for ``seeds`` seeds and evaluated on the test split. Seed ``s`` gives every optimizer
     the same initial weights and the same data order, so differences between optimizers are
     paired by seed. Variants (e.g. AdaGrad with its accumulator restarted half-way) run at their
     optimizer's chosen rate; fixed specs (e.g. Adam at its default rate) run untuned.

  A claim is measured once per replicate (:meth:`TrainingResult.views`); a verdict that differs
  between replicates is within tuning noise.
* :class:`SurfaceExperiment`: optimizers on a 2-D surface of ``optimlab surface``. Each one's
  learning rate is the best of the same log-spaced grid (``per_decade`` points a decade between
  ``lr_low`` and ``lr_high``), judged from the surface's own start: the lowest final value on a
  surface with a minimum, the earliest escape (then the lowest final value) on one without.
  Paths are then measured from ``starts`` start points drawn from a seeded generator.

Every run is a pure function of its spec and seed, so results do not depend on ``jobs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...optim import entry
from ..parallel import Call, run_all
from ..runspec import RunResult, RunSpec
from ..spec import OptimizerSpec, Phase, parse_spec

VALIDATION_FRACTION = 0.1

Progress = Callable[[int, int], None]


# ---- declarations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingExperiment:
    """A task trained with several optimizers under the protocol of the module docstring.

    Attributes:
        name: key the claims refer to.
        task: the lab's task name.
        optimizers: optimizer names, each tuned on the grid.
        epochs: epochs of every run.
        grid_points: learning rates tried per optimizer (the equal tuning budget).
        variants: ``(label, optimizer, template)``: a spec built from ``optimizer``'s chosen
            learning rate, ``template.format(lr=..., half=epochs // 2)``, run on the final seeds.
        fixed: ``(label, spec)``: untuned specs run on the final seeds.
        description: one line for the report.
    """

    name: str
    task: str
    optimizers: tuple[str, ...]
    epochs: int
    grid_points: int = 10
    variants: tuple[tuple[str, str, str], ...] = ()
    fixed: tuple[tuple[str, str], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class SurfaceExperiment:
    """Optimizers on a 2-D surface, learning rates from an equal grid, several start points.

    Start points: ``x`` uniform in ``x_range``; ``|y|`` uniform in ``y_range`` (log-uniform when
    ``y_log``), with a random sign when ``y_signed``; turned by the rotated valley's angle when
    ``rotate`` (the same starts, in the turned valley's own axes).
    """

    name: str
    surface: str
    optimizers: tuple[str, ...]
    steps: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    y_log: bool = False
    y_signed: bool = True
    rotate: bool = False
    lr_low: float = 1e-3
    lr_high: float = 10.0
    per_decade: int = 6
    description: str = ""


Experiment = TrainingExperiment | SurfaceExperiment


@dataclass(frozen=True)
class Scale:
    """How much of each experiment to run (the default is the full protocol)."""

    seed: int = 0
    seeds: int = 10
    tune_seeds: int = 2
    replicates: int = 2
    grid_points: int | None = None  # None: each experiment's own
    epochs: int | None = None  # None: each experiment's own
    starts: int = 10
    per_decade: int | None = None  # None: each surface experiment's own
    surface_steps: int | None = None

    def tune_seed(self, replicate: int, k: int) -> int:
        """The seed of the ``k``-th tuning run of replicate ``replicate`` (none is a final seed:
        tuning runs train on the training split minus the validation split)."""
        return self.seed + 1000 * (replicate + 1) + k


# ---- results ------------------------------------------------------------------------------------
@dataclass
class TrainingView:
    """One replicate of a training experiment: its tuning grid, its choices and their finals."""

    experiment: TrainingExperiment
    replicate: int
    epochs: int
    grid: dict[str, list[tuple[float, list[float]]]]  # optimizer -> [(lr, validation scores)]
    chosen: dict[str, float]  # optimizer -> chosen lr
    specs: dict[str, str]  # final label -> spec text
    finals: dict[str, list[RunResult]]  # final label -> one run per seed, in seed order
    classes: int


@dataclass
class TrainingResult:
    """Every replicate of a training experiment; finals shared where replicates agree."""

    experiment: TrainingExperiment
    epochs: int
    grids: list[dict[str, list[tuple[float, list[float]]]]]  # per replicate
    chosen: list[dict[str, float]]  # per replicate
    specs: list[dict[str, str]]  # per replicate: final label -> spec text
    runs: dict[str, list[RunResult]]  # spec text -> one run per seed
    classes: int

    def views(self) -> list[TrainingView]:
        return [
            TrainingView(self.experiment, r, self.epochs, self.grids[r], self.chosen[r],
                         self.specs[r], {label: self.runs[text]
                                         for label, text in self.specs[r].items()},
                         self.classes)
            for r in range(len(self.grids))
        ]


@dataclass
class SurfaceResult:
    experiment: SurfaceExperiment
    steps: int
    grid: dict[str, list[tuple[float, tuple[float, float]]]]  # optimizer -> [(lr, score)]
    chosen: dict[str, float]
    starts: list[tuple[float, float]]
    paths: dict[str, list[Any]]  # optimizer -> Trajectory per start

    def views(self) -> list[SurfaceResult]:
        """Surfaces are deterministic: one choice, no tuning noise between replicates."""
        return [self]


ExperimentResult = TrainingResult | SurfaceResult


# ---- grids --------------------------------------------------------------------------------------
def lr_grid(optimizer: str, points: int) -> list[float]:
    """``points`` learning rates log-spaced over ``optimlab tune``'s range for ``optimizer``."""
    low, high = entry(optimizer).lr_range
    if points == 1:
        return [_round(math.sqrt(low * high))]
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    return [_round(10 ** (math.log10(low) + i * step)) for i in range(points)]


def surface_grid(low: float, high: float, per_decade: int) -> list[float]:
    n = round(math.log10(high / low) * per_decade)
    return [_round(low * 10 ** (i / per_decade)) for i in range(n + 1)]


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def _base_phase(task: str, optimizer: str) -> Phase:
    """The seeds' setting of ``optimizer`` on ``task`` (its default spec), else its defaults."""
    from ..tasks import get_task

    for text in get_task(task).optimizers:
        phases = parse_spec(text).phases
        if len(phases) == 1 and phases[0].name == optimizer:
            return phases[0]
    return Phase(optimizer)


def _with_lr(phase: Phase, lr: float) -> str:
    return OptimizerSpec((replace(phase, hyperparameters={**phase.hyperparameters, "lr": lr}),)
                         ).label()


def starts(exp: SurfaceExperiment, n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` start points of ``exp`` from a generator seeded by ``seed`` (same for every optimizer)."""
    rng = np.random.default_rng([seed, 2002])
    out = []
    for _ in range(n):
        x = float(rng.uniform(*exp.x_range))
        lo, hi = exp.y_range
        y = float(10 ** rng.uniform(math.log10(lo), math.log10(hi)) if exp.y_log
                  else rng.uniform(lo, hi))
        if exp.y_signed and rng.random() < 0.5:
            y = -y
        out.append(_turn(x, y) if exp.rotate else (x, y))
    return out


def _turn(x: float, y: float) -> tuple[float, float]:
    from ..surface.catalog import rotated_point

    return rotated_point(x, y)


# ---- jobs (top-level functions: they run in worker processes) ---------------------------------
def _train(spec: RunSpec, data_dir: str | None) -> RunResult:
    from .. import runner
    from ..tasks import DataOptions

    data = DataOptions(Path(data_dir)) if data_dir else DataOptions()
    return runner.run(spec, data=data)


def _trajectory(surface: str, spec: str, steps: int, start: tuple[float, float]) -> Any:
    from ..surface.catalog import get_surface
    from ..surface.run import run_trajectory

    return run_trajectory(get_surface(surface), spec, steps=steps, start=start)


def run_jobs(jobs: Sequence[Call], workers: int, progress: Progress | None = None,
             offset: int = 0, total: int | None = None) -> list[Any]:
    """Run ``fn(*args)`` for every job, in ``workers`` processes; results in the jobs' order."""
    total = len(jobs) if total is None else total
    if workers <= 1 or len(jobs) <= 1:
        out = []
        for i, (fn, args) in enumerate(jobs):
            out.append(fn(*args))
            if progress is not None:
                progress(offset + i + 1, total)
        return out
    done = [0]

    def on_done(_index: int, _result: Any) -> None:
        done[0] += 1
        if progress is not None:
            progress(offset + done[0], total)

    return run_all(jobs, workers, threads=1, on_done=on_done)


# ---- the protocol -------------------------------------------------------------------------------
def _epochs(exp: TrainingExperiment, scale: Scale) -> int:
    return scale.epochs if scale.epochs is not None else exp.epochs


def _steps(exp: SurfaceExperiment, scale: Scale) -> int:
    return scale.surface_steps if scale.surface_steps is not None else exp.steps


def _tune_jobs(exp: Experiment, scale: Scale, data_dir: str | None
               ) -> list[tuple[str, float, Call]]:
    out = []
    if isinstance(exp, TrainingExperiment):
        for o in exp.optimizers:
            phase = _base_phase(exp.task, o)
            for lr in lr_grid(o, scale.grid_points or exp.grid_points):
                for r in range(scale.replicates):
                    for k in range(scale.tune_seeds):
                        spec = RunSpec(exp.task, _with_lr(phase, lr), seed=scale.tune_seed(r, k),
                                       epochs=_epochs(exp, scale),
                                       validation_fraction=VALIDATION_FRACTION)
                        out.append((f"{o}#{r}", lr, (_train, (spec, data_dir))))
    else:
        from ..surface.catalog import get_surface

        start = get_surface(exp.surface).start
        per_decade = scale.per_decade or exp.per_decade
        for o in exp.optimizers:
            for lr in surface_grid(exp.lr_low, exp.lr_high, per_decade):
                out.append((o, lr, (_trajectory, (exp.surface, f"{o}:lr={lr!r}",
                                                  _steps(exp, scale), start))))
    return out


def _validation_score(result: RunResult) -> float:
    """Validation accuracy averaged over the last two epochs (nan for a diverged run)."""
    if result.status != "finished" or not result.epochs:
        return math.nan
    last = result.epochs[-2:]
    return sum(e.test_accuracy for e in last) / len(last)


def _surface_score(path: Any, surface: Any) -> tuple[float, float]:
    """Lower is better: (escape step or inf, final value) without minima; (final value, 0) with."""
    if path.diverged and surface.bounded:
        return (math.inf, math.inf)
    values = path.values
    if surface.bounded:
        return (float(values[-1]), 0.0)
    below = np.flatnonzero(values <= surface.escape_value)
    return (float(below[0]) if below.size else math.inf, float(values[-1]))


def _choose(scored: list[tuple[float, Any]], key: Callable[[Any], Any]) -> float:
    """The learning rate with the best score (``key`` smaller is better); ties: the smaller lr."""
    return min(scored, key=lambda item: (key(item[1]), item[0]))[0]


def run_experiments(experiments: Sequence[Experiment], scale: Scale, *, jobs: int = 1,
                    data_dir: str | None = None, progress: Progress | None = None
                    ) -> dict[str, ExperimentResult]:
    """Run every experiment under its protocol; results by experiment name."""
    from ..surface.catalog import get_surface
    from ..tasks import get_task

    stage1 = {exp.name: _tune_jobs(exp, scale, data_dir) for exp in experiments}
    flat = [job for jobs_ in stage1.values() for _, _, job in jobs_]
    # the final runs: one job per seed (training) or start (surface) per final spec; replicates
    # that agree share their finals, so this count is an upper bound until the choices are made
    n_final = 0
    for exp in experiments:
        if isinstance(exp, TrainingExperiment):
            per = len(exp.optimizers) + len(exp.variants)
            n_final += scale.seeds * (per * scale.replicates + len(exp.fixed))
        else:
            n_final += scale.starts * len(exp.optimizers)
    total = len(flat) + n_final
    done1 = run_jobs(flat, jobs, progress, 0, total)

    results: dict[str, Any] = {}
    finals: list[tuple[str, str, Call]] = []
    i = 0
    for exp in experiments:
        entries = stage1[exp.name]
        outcomes = done1[i:i + len(entries)]
        i += len(entries)
        if isinstance(exp, TrainingExperiment):
            grids: list[dict[str, list[tuple[float, list[float]]]]] = []
            for r in range(scale.replicates):
                by_lr: dict[str, dict[float, list[float]]] = {o: {} for o in exp.optimizers}
                for (key, lr, _), res in zip(entries, outcomes):
                    o, _, rep = key.partition("#")
                    if int(rep) == r:
                        by_lr[o].setdefault(lr, []).append(_validation_score(res))
                grids.append({o: sorted(d.items()) for o, d in by_lr.items()})
            chosen = [{o: _choose(grid[o], lambda s: -_mean_score(s)) for o in exp.optimizers}
                      for grid in grids]
            epochs = _epochs(exp, scale)
            specs = [_final_specs(exp, c, epochs) for c in chosen]
            for text in dict.fromkeys(t for per in specs for t in per.values()):
                for k in range(scale.seeds):
                    run = RunSpec(exp.task, text, seed=scale.seed + k, epochs=epochs)
                    finals.append((exp.name, text, (_train, (run, data_dir))))
            classes = int(get_task(exp.task).extra.get("classes", 0))
            results[exp.name] = TrainingResult(exp, epochs, grids, chosen, specs, {}, classes)
        else:
            surface = get_surface(exp.surface)
            sgrid: dict[str, list[tuple[float, tuple[float, float]]]] = {o: [] for o in exp.optimizers}
            for (o, lr, _), path in zip(entries, outcomes):
                sgrid[o].append((lr, _surface_score(path, surface)))
            chosen = {o: _choose(sgrid[o], lambda s: s) for o in exp.optimizers}
            points = starts(exp, scale.starts, scale.seed)
            for o in exp.optimizers:
                for p in points:
                    finals.append((exp.name, o, (_trajectory, (exp.surface, f"{o}:lr={chosen[o]!r}",
                                                               _steps(exp, scale), p))))
            results[exp.name] = SurfaceResult(exp, _steps(exp, scale), sgrid, chosen, points, {})
    done2 = run_jobs([job for _, _, job in finals], jobs, progress, len(flat),
                     len(flat) + len(finals))
    for (name, key, _), outcome in zip(finals, done2):
        target = results[name]
        bucket = target.runs if isinstance(target, TrainingResult) else target.paths
        bucket.setdefault(key, []).append(outcome)
    return results


def _mean_score(scores: list[float]) -> float:
    return -math.inf if any(math.isnan(s) for s in scores) else sum(scores) / len(scores)


def _final_specs(exp: TrainingExperiment, chosen: dict[str, float], epochs: int
                 ) -> dict[str, str]:
    """Final label -> spec text: tuned optimizers, their variants, the fixed specs."""
    specs = {o: _with_lr(_base_phase(exp.task, o), chosen[o]) for o in exp.optimizers}
    for label, o, template in exp.variants:
        specs[label] = template.format(lr=chosen[o], half=max(1, epochs // 2))
    for label, text in exp.fixed:
        specs[label] = text
    return specs
