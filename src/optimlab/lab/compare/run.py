"""A comparison: one task, several optimizer specs, several seeds, into one output folder.

:func:`compare` plans the runs (optimizer-major, seeds ``0..n-1``), runs the ones not done yet
with the store ``<out>/results.db`` and checkpoints in ``<out>/checkpoints/``, then rebuilds the
report. Without ``resume`` an existing folder's results are replaced. With ``resume`` finished and
diverged runs are skipped, an interrupted run continues from its last checkpoint, and a changed
configuration is refused (listing the changed keys) unless ``force`` is given, in which case the
runs that are no longer part of the plan are removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .runner import RunResult, RunSpec, checkpoint_path, load_dataset, resolve_batch_size, run
from .schedules import parse_schedule
from .spec import parse_spec
from .store import Store
from .tasks import DataOptions, get_task

CHECKPOINT_DIR = "checkpoints"

#: the configuration keys whose change makes ``--resume`` refuse
CONFIG_KEYS = ("task", "optimizers", "epochs", "seeds", "batch_size", "schedule")


@dataclass(frozen=True)
class CompareConfig:
    """What to compare. ``None`` fields take the task's defaults.

    Attributes:
        task: registry name.
        optimizers: optimizer spec texts (None: the task's default optimizers).
        seeds: number of seeds; runs use seeds ``0 .. seeds-1``.
        epochs: epochs per run.
        batch_size: ``N``, ``"full"`` or ``1``.
        schedule: learning-rate schedule text.
    """

    task: str = "mnist-mlp"
    optimizers: tuple[str, ...] | None = None
    seeds: int = 3
    epochs: int | None = None
    batch_size: int | str | None = None
    schedule: str | None = None

    def resolved(self) -> dict[str, Any]:
        """The configuration with defaults filled in and specs canonical (validates everything)."""
        task = get_task(self.task)
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise UserError(f"Invalid number of seeds {self.seeds!r} (expected a whole number >= 1)")
        epochs = task.epochs if self.epochs is None else self.epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise UserError(f"Invalid epochs {self.epochs!r} (expected a whole number >= 1)")
        texts = task.optimizers if self.optimizers is None else self.optimizers
        if not texts:
            raise UserError("No optimizers given (expected e.g. --optimizers sgd,adam)")
        labels = [parse_spec(t).label() for t in texts]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise UserError(f"Optimizer listed twice: {duplicates[0]}")
        batch: int | str = task.batch_size if self.batch_size is None else self.batch_size
        if isinstance(batch, str) and batch.strip().lower() == "full":
            batch = "full"
        else:
            batch = resolve_batch_size(batch, task.batch_size, 2**62)
        schedule = parse_schedule(self.schedule).label() if self.schedule is not None else None
        return {"task": task.name, "optimizers": labels, "epochs": epochs, "seeds": self.seeds,
                "batch_size": batch, "schedule": schedule}

    def plan(self) -> list[RunSpec]:
        """The runs, optimizer by optimizer, seed by seed."""
        cfg = self.resolved()
        return [
            RunSpec(cfg["task"], label, seed=seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                    schedule=cfg["schedule"])
            for label in cfg["optimizers"]
            for seed in range(cfg["seeds"])
        ]


class CompareListener:
    """Progress hooks for a front end (the CLI draws progress bars); every method is optional."""

    def start(self, total_runs: int, to_run: int) -> None:
        """Before the first run: how many runs the plan has and how many will run now."""

    def run_started(self, index: int, spec: RunSpec, total_steps: int | None) -> None:
        """Run ``index`` (0-based in the plan) starts."""

    def run_progress(self, steps_done: int, total_steps: int) -> None:
        """After every step of the current run."""

    def run_finished(self, index: int, spec: RunSpec, result: RunResult | None) -> None:
        """Run ``index`` ended; ``result`` is None when it was skipped (already done)."""

    def reporting(self) -> None:
        """The runs are done; the report is being written."""


@dataclass
class CompareOutcome:
    """What :func:`compare` did."""

    out: Path
    config: dict[str, Any]
    results: list[RunResult] = field(default_factory=list)
    skipped: list[RunSpec] = field(default_factory=list)
    summary: list[Any] = field(default_factory=list)  # report.SummaryRow


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The configuration keys whose values differ."""
    return [k for k in CONFIG_KEYS if old.get(k) != new.get(k)]


def _describe_change(old: dict[str, Any], new: dict[str, Any], keys: list[str]) -> str:
    def show(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)

    return "; ".join(f"{k}: {show(old.get(k))} -> {show(new.get(k))}" for k in keys)


def default_jobs() -> int:
    """Runs trained at once by default: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent() -> None:
    """Worker processes end when the comparing process dies, even by kill -9 (Linux).

    Without this an orphaned worker would go on writing the store while a ``--resume`` trains
    the same run.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


_PROGRESS: Any = None  # a worker's queue for (plan index, steps done, total steps)


def _worker_init(threads: int, progress: Any) -> None:
    import torch

    global _PROGRESS
    _die_with_parent()
    torch.set_num_threads(threads)
    _PROGRESS = progress


def _run_in_worker(index: int, spec: RunSpec, data: DataOptions, out: Path, ckpt_dir: Path) -> RunResult:
    last = [0.0]

    def report(steps_done: int, total_steps: int) -> None:
        # a few updates a second are enough for a progress bar
        now = time.monotonic()
        if now - last[0] > 0.1 or steps_done == total_steps:
            last[0] = now
            _PROGRESS.put((index, steps_done, total_steps))

    with Store.open(out) as store:
        return run(spec, data=data, store=store, checkpoint_dir=ckpt_dir,
                   progress=report if _PROGRESS is not None else None)


def _run_parallel(
    todo: list[tuple[int, RunSpec]],
    jobs: int,
    data: DataOptions,
    out: Path,
    ckpt_dir: Path,
    listener: CompareListener,
    outcome: CompareOutcome,
) -> None:
    """Train the runs of ``todo`` in ``jobs`` worker processes, each with its own store connection.

    Every run depends only on its own spec and seed, so the numbers are those of a sequential
    comparison. Workers are forked (the dataset cache is inherited) when the parent runs torch on
    one thread, as the CLI does; otherwise they are spawned, since forking after an OpenMP pool
    has started is unsafe.
    """
    import torch

    threads = torch.get_num_threads()
    method = "fork" if threads == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    progress = context.SimpleQueue()
    steps: dict[int, tuple[int, int]] = {}  # plan index -> (steps done, total) of runs in training
    results: dict[int, RunResult] = {}

    def drain() -> None:
        """Pass the workers' step counts to the listener, summed over the runs in training."""
        updated = False
        while not progress.empty():
            index, done_steps, total_steps = progress.get()
            if index in steps:
                steps[index] = (done_steps, total_steps)
                updated = True
        if updated:
            listener.run_progress(sum(d for d, _ in steps.values()), sum(t for _, t in steps.values()))

    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_worker_init, initargs=(threads, progress)
    ) as pool:
        pending = {}
        queue = list(todo)

        def submit() -> None:
            index, spec = queue.pop(0)
            listener.run_started(index, spec, None)
            steps[index] = (0, 1)
            pending[pool.submit(_run_in_worker, index, spec, data, out, ckpt_dir)] = (index, spec)

        try:
            while queue and len(pending) < jobs:
                submit()
            while pending:
                done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    index, spec = pending.pop(future)
                    steps.pop(index, None)
                    results[index] = future.result()
                    listener.run_finished(index, spec, results[index])
                    if queue:
                        submit()
        except BaseException as e:
            for future in pending:
                future.cancel()
            if isinstance(e, KeyboardInterrupt):
                # a signal sent to this process alone (kill -INT) reaches the workers too, so that
                # they stop at their next consistent point instead of finishing their runs
                for process in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(OSError):
                        os.kill(process.pid, signal.SIGINT)
            raise
    outcome.results.extend(results[i] for i in sorted(results))


def compare(
    config: CompareConfig,
    out: Path,
    *,
    data: DataOptions | None = None,
    resume: bool = False,
    force: bool = False,
    listener: CompareListener | None = None,
    report: bool = True,
    run_fn: Callable[..., RunResult] | None = None,
    jobs: int = 1,
) -> CompareOutcome:
    """Run every planned run of ``config`` not done yet, store it in ``out``, write the report.

    ``jobs > 1`` trains that many runs at once in worker processes (not with ``run_fn``).

    Raises:
        UserError: bad configuration, missing data, or ``resume`` of a changed configuration
            without ``force``.
        KeyboardInterrupt: on Ctrl-C, after the current epoch's checkpoint and rows are consistent.
    """
    data = data if data is not None else DataOptions()
    listener = listener or CompareListener()
    out = Path(out)
    resolved = config.resolved()
    plan = config.plan()
    # load (and cache) the data before touching the folder: missing files fail without side effects
    load_dataset(get_task(resolved["task"]), data)
    ckpt_dir = out / CHECKPOINT_DIR
    out.mkdir(parents=True, exist_ok=True)
    with Store.open(out) as store:
        previous = store.get_experiment()
        if resume and previous is not None:
            keys = changed_keys(previous, resolved)
            if keys and not force:
                raise UserError(
                    f"Cannot resume {out}: the configuration changed ({_describe_change(previous, resolved, keys)});"
                    " pass --force to resume anyway, or drop --resume to start over"
                )
        if not resume:
            store.clear()
            if ckpt_dir.exists():
                shutil.rmtree(ckpt_dir)
        else:
            wanted = {s.run_id() for s in plan}
            for stale in [r.run_id for r in store.runs() if r.run_id not in wanted]:
                store.delete_run(stale)
                checkpoint_path(ckpt_dir, stale).unlink(missing_ok=True)
        store.set_experiment(resolved)
        outcome = CompareOutcome(out, resolved)
        done = {r.run_id for r in store.runs() if r.status in ("finished", "diverged")}
        todo = [s for s in plan if s.run_id() not in done]
        listener.start(len(plan), len(todo))
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise UserError(f"Invalid jobs {jobs!r} (expected a whole number >= 1)")
        parallel = run_fn is None and min(jobs, len(todo)) > 1
        queued: list[tuple[int, RunSpec]] = []
        for index, spec in enumerate(plan):
            run_id = spec.run_id()
            if run_id in done:
                checkpoint_path(ckpt_dir, run_id).unlink(missing_ok=True)
                outcome.skipped.append(spec)
                listener.run_finished(index, spec, None)
                continue
            if parallel:
                queued.append((index, spec))
                continue
            listener.run_started(index, spec, None)
            result = (run_fn or run)(spec, data=data, store=store, checkpoint_dir=ckpt_dir,
                         progress=listener.run_progress)
            outcome.results.append(result)
            listener.run_finished(index, spec, result)
        if queued:
            _run_parallel(queued, min(jobs, len(queued)), data, out, ckpt_dir, listener, outcome)
            store.set_order([spec.run_id() for spec in plan])
    if ckpt_dir.exists() and not any(ckpt_dir.iterdir()):
        ckpt_dir.rmdir()
    if report:
        from .report import render_report

        listener.reporting()
        outcome.summary = render_report(out)
    return outcome
