"""A comparison: one task, several optimizer specs, several seeds, into one output folder.

:func:`compare` checks every option first (nothing is written or deleted before they all hold),
plans the runs (optimizer-major, seeds ``0..n-1``), opens the output folder as optimlab's own
store (:mod:`optimlab.lab.outdir`: created or carrying optimlab's manifest, locked for the run),
runs the ones not done yet with the store ``<out>/results.db`` and checkpoints in
``<out>/checkpoints/``, then rebuilds the report. Without ``resume`` an existing folder's results
are replaced (its rows, its runs' checkpoints and TensorBoard events; no file optimlab did not
write is touched). With ``resume`` finished and diverged runs are skipped, an interrupted run
continues from its last checkpoint, other data is refused, and a changed configuration is refused
(listing the changed keys) unless ``force`` is given, in which case the runs no longer in the
plan are removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import parallel
from ..bookkeeping import CHECKPOINT_EVERY_S, check_interval
from ..checkpoint import checkpoint_path
from ..errors import UserError
from ..outdir import OutputFolder, open_for_write
from ..provenance import collect, command_for
from ..runner import run
from ..runspec import RunResult, RunSpec, whole_number
from ..schedules import Schedule
from ..spec import OptimizerSpec
from ..store import DB_NAME, Store
from ..tasks import DEFAULT_TASK, DataOptions, data_fingerprint, get_task, load_dataset
from ..trackers import MLFLOW_DB, TENSORBOARD_DIR, TrackerConfig, parse_log_to, run_folder
from .plan import CompareConfig

CHECKPOINT_DIR = "checkpoints"


class CompareListener:
    """Progress hooks for a front end (the CLI draws progress bars); every method is optional."""

    def start(self, total_runs: int, to_run: int) -> None:
        """Before the first run: how many runs the plan has and how many will run now."""

    def run_started(self, index: int, spec: RunSpec, total_steps: int | None) -> None:
        """Run ``index`` (0-based in the plan) starts."""

    def run_progress(self, steps_done: int, total_steps: int) -> None:
        """After every step of the current run (summed over the runs in training)."""

    def run_finished(self, index: int, spec: RunSpec, result: RunResult | None) -> None:
        """Run ``index`` ended; ``result`` is None when it was skipped (already done)."""

    def reporting(self) -> None:
        """The runs are done; the report is being written."""


@dataclass
class CompareResult:
    """What :func:`compare` did.

    Attributes:
        out: the output folder.
        config: the configuration as stored (task, optimizer labels, epochs, seeds, batch size,
            schedule).
        results: the runs trained now, in the plan's order.
        skipped: the runs already done (``resume``).
        summary: one row per optimizer (empty when ``report=False``).
        paths: the report's files (``summary.csv``, ``report.html``, the PNG figures).
    """

    out: Path
    config: dict[str, Any]
    results: list[RunResult] = field(default_factory=list)
    skipped: list[RunSpec] = field(default_factory=list)
    summary: list[Any] = field(default_factory=list)  # summary.SummaryRow
    paths: list[Path] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """The summary as plain rows (column -> value, ``summary.csv``'s columns; undefined
        numbers are nan), e.g. for ``pandas.DataFrame(result.table())``."""
        from .summary import SUMMARY_COLUMNS

        return [{c: getattr(r, c) for c in SUMMARY_COLUMNS} for r in self.summary]


def default_jobs() -> int:
    """Runs trained at once by default: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _run_in_worker(spec: RunSpec, data: DataOptions, out: Path, ckpt_dir: Path,
                   checkpoint_every: float, trackers: TrackerConfig | None) -> RunResult:
    with Store.open(out) as store:
        return run(spec, data=data, store=store, checkpoint_dir=ckpt_dir,
                   checkpoint_every=checkpoint_every, progress=parallel.report_progress,
                   trackers=trackers)


def compare(
    *,
    task: str = DEFAULT_TASK,
    optimizers: str | Sequence[str | OptimizerSpec] | None = None,
    seeds: int = 3,
    epochs: int | None = None,
    batch_size: int | str | None = None,
    schedule: str | Schedule | None = None,
    device: str | None = "auto",
    clip_grad_norm: float | None = None,
    accumulate: int | None = None,
    skip_nonfinite: bool = False,
    log_to: str | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    jobs: int | None = 1,
    nproc: int = 1,
    threads: int | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_S,
    listener: CompareListener | None = None,
    report: bool = True,
    command: str | None = None,
    tuned_from: str | os.PathLike | None = None,
) -> CompareResult:
    """Train every optimizer on one task over several seeds; store the runs; write the report.

    The options are ``optimlab compare``'s. Every one is checked before anything is written or
    deleted: a bad option leaves an existing output folder as it was.

    Args:
        task: task name (``optimlab list tasks``).
        optimizers: specs, comma-separated text (``"sgd:lr=0.1,adam"``) or a sequence of texts or
            parsed specs; None: the task's.
        seeds: number of seeds (runs use seeds ``0 .. seeds-1``).
        epochs: epochs per run; None: the task's.
        batch_size: ``N``, ``1`` (SGD) or ``"full"`` (batch gradient descent); None: the task's.
        schedule: learning-rate schedule (text or parsed), stepped per optimizer step.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        accumulate: micro-batches of ``batch_size`` per optimizer step.
        skip_nonfinite: steps with a non-finite loss or gradient change nothing and are counted.
        log_to: trackers to log every run to as it trains: ``tensorboard``, ``mlflow``
            (comma-separated text or a sequence).
        out: output folder; None: ``runs/<task name>``.
        resume: continue the runs in ``out`` and skip the finished ones.
        force: with ``resume``, accept a changed configuration.
        data_dir: folder holding the datasets' files.
        download: fetch missing dataset files.
        jobs: runs trained at once, each in its own process; None: one per CPU. Every run
            depends only on its seed, so the numbers do not change.
        nproc: train each run data-parallel over this many processes (torchrun + DDP).
        threads: torch CPU threads per run (None: leave torch's setting).
        checkpoint_every: seconds between a run's saves (checkpoint and store rows; 0: every
            epoch); a kill -9 repeats at most this much training (plus one epoch) on resume.
        listener: progress hooks.
        report: write ``summary.csv``, ``report.html`` and the figures at the end.
        command: the command line to record as the comparison's provenance (None: the
            ``optimlab compare`` line equivalent to these arguments).
        tuned_from: an ``optimlab tune`` output folder: every optimizer of its study runs with
            the hyperparameters the study selected (not with ``optimizers``), for the study's
            epochs and batch size unless given.

    Returns:
        A :class:`CompareResult`: the summary rows (``.table()``) and the files written.

    Raises:
        UserError: a bad option, missing data, or ``resume`` of a changed configuration without
            ``force``.
        KeyboardInterrupt: on Ctrl-C, after the current epoch's checkpoint and rows are consistent.
    """
    hyperparameters = None
    if tuned_from is not None:
        from .tuned import tuned_settings

        if optimizers is not None:
            raise UserError("Give either --optimizers or --tuned-from, not both (--tuned-from "
                            "runs each optimizer of the study with its tuned hyperparameters)")
        tuned = tuned_settings(tuned_from, task)
        optimizers, hyperparameters = list(tuned.specs), tuned.description
        epochs = tuned.epochs if epochs is None else epochs
        batch_size = tuned.batch_size if batch_size is None else batch_size
    config = CompareConfig.create(task=task, optimizers=optimizers, seeds=seeds, epochs=epochs,
                                  batch_size=batch_size, schedule=schedule, device=device,
                                  clip_grad_norm=clip_grad_norm, accumulate=accumulate,
                                  skip_nonfinite=skip_nonfinite, hyperparameters=hyperparameters)
    trackers_named = parse_log_to(log_to)
    jobs = default_jobs() if jobs is None else whole_number("jobs", jobs)
    whole_number("--nproc", nproc)
    if threads is not None:
        whole_number("threads", threads)
    checkpoint_every = check_interval(checkpoint_every)
    if nproc > 1 and (config.schedule is not None
                      or any(len(s.phases) != 1 for s in config.optimizers)):
        raise UserError("--nproc runs take one optimizer per spec and no schedule")
    if nproc > 1 and (trackers_named or config.device or config.clip_grad_norm or config.accumulate
                      or config.skip_nonfinite):
        raise UserError("--nproc runs take none of --device, --clip-grad-norm, --accumulate, "
                        "--skip-nonfinite, --log-to")
    out = Path(out) if out is not None else Path("runs") / get_task(config.task).name
    if out.exists() and not out.is_dir():
        raise UserError(f"Cannot write to {out}: it is a file, not a folder")
    data = DataOptions(data_dir=Path(data_dir) if data_dir is not None else None,
                       download=download)
    stored = config.stored()
    trackers = TrackerConfig(trackers_named, out) if trackers_named else None
    if command is None:
        command = command_for("compare", {
            "task": task, "optimizers": list(config.optimizers), "seeds": seeds, "epochs": epochs,
            "batch_size": batch_size, "schedule": schedule, "device": device,
            "clip_grad_norm": clip_grad_norm, "accumulate": accumulate,
            "skip_nonfinite": skip_nonfinite, "log_to": log_to, "out": out, "jobs": jobs,
            "nproc": nproc if nproc > 1 else None})
    # load (and cache) the data before touching the folder: missing files fail without side
    # effects; its fingerprint goes into the folder's manifest, which --resume checks
    dataset = load_dataset(get_task(config.task), data)
    fingerprint = data_fingerprint(dataset, data)
    import torch

    listener = listener or CompareListener()
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with open_for_write(out, "compare", stored, fingerprint, resume=resume,
                            force=force) as folder:
            from .report import render_report, report_files

            # the report's names are recorded first: `optimlab report` may then rewrite them
            # while this comparison runs, without the folder's lock
            for path in report_files(out):
                folder.file(path.name)
            result = _run(config, folder, data, resume, jobs, nproc, checkpoint_every, listener,
                          trackers, collect(command, config.device))
            if report:
                listener.reporting()
                result.summary = render_report(out)
                result.paths = report_files(out)
    finally:
        torch.set_num_threads(before)
    return result


def _run(config: CompareConfig, folder: OutputFolder, data: DataOptions, resume: bool, jobs: int,
         nproc: int, checkpoint_every: float, listener: CompareListener,
         trackers: TrackerConfig | None, provenance: dict[str, Any]) -> CompareResult:
    """Act on a checked comparison in its locked folder: train what is not done, store it.

    Only optimlab's own files are touched: the store (rows cleared, not the file), and the
    checkpoints and TensorBoard event files of this plan's and the store's runs, by name.
    """
    out = folder.path
    plan = config.runs()
    stored = config.stored()
    folder.file(DB_NAME)
    ckpt_dir = folder.file(f"{CHECKPOINT_DIR}/")
    if trackers is not None:
        if "tensorboard" in trackers.names:
            folder.file(f"{TENSORBOARD_DIR}/")
        if "mlflow" in trackers.names and not os.environ.get("MLFLOW_TRACKING_URI"):
            folder.file(MLFLOW_DB)
    with Store.open(out) as store:
        if not resume:
            cleared = {(r.run_id, r.task, r.optimizer, r.seed) for r in store.runs()}
            cleared |= {(s.run_id(), s.task, s.optimizer_label(), s.seed) for s in plan}
            for run_id, *_ in cleared:
                checkpoint_path(ckpt_dir, run_id).unlink(missing_ok=True)
            if folder.owns(f"{TENSORBOARD_DIR}/"):
                _remove_tensorboard_logs(folder.path / TENSORBOARD_DIR,
                                         [f"{t}/{label}/seed={seed}" for _, t, label, seed in cleared])
            store.clear()
        else:
            wanted = {s.run_id() for s in plan}
            for stale in [r.run_id for r in store.runs() if r.run_id not in wanted]:
                store.delete_run(stale)
                checkpoint_path(ckpt_dir, stale).unlink(missing_ok=True)
        store.set_experiment(stored)
        store.add_provenance(provenance)
        if trackers is not None:
            trackers.prepare()
        result = CompareResult(out, stored)
        done = {r.run_id for r in store.runs() if r.status in ("finished", "diverged")}
        todo = [(i, s) for i, s in enumerate(plan) if s.run_id() not in done]
        listener.start(len(plan), len(todo))
        for index, spec in enumerate(plan):
            if spec.run_id() in done:
                checkpoint_path(ckpt_dir, spec.run_id()).unlink(missing_ok=True)
                result.skipped.append(spec)
                listener.run_finished(index, spec, None)
        if nproc == 1 and min(jobs, len(todo)) > 1:
            calls = [(_run_in_worker, (spec, data, out, ckpt_dir, checkpoint_every, trackers))
                     for _, spec in todo]
            result.results.extend(parallel.run_all(
                calls, min(jobs, len(todo)),
                on_start=lambda k: listener.run_started(todo[k][0], todo[k][1], None),
                on_done=lambda k, r: listener.run_finished(todo[k][0], todo[k][1], r),
                on_progress=listener.run_progress,
            ))
            store.set_order([spec.run_id() for spec in plan])
        else:
            run_fn = _data_parallel(nproc)
            for index, spec in todo:
                listener.run_started(index, spec, None)
                extra = {"trackers": trackers} if trackers is not None else {}
                r = run_fn(spec, data=data, store=store, checkpoint_dir=ckpt_dir,
                           checkpoint_every=checkpoint_every, progress=listener.run_progress,
                           **extra)
                result.results.append(r)
                listener.run_finished(index, spec, r)
    folder.remove(f"{CHECKPOINT_DIR}/")  # when empty: a user's file inside keeps it
    return result


def _remove_tensorboard_logs(root: Path, names: list[str]) -> None:
    """Delete the event files TensorBoard's writer wrote for the runs ``names`` (named
    ``events.out.tfevents.*`` in each run's own folder), then the folders they leave empty;
    anything else there is not optimlab's and stays."""
    for name in names:
        run_dir = run_folder(root, name)
        for events in run_dir.glob("events.out.tfevents.*"):
            events.unlink(missing_ok=True)
        while run_dir != root and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
            run_dir = run_dir.parent


def _data_parallel(nproc: int) -> Callable[..., RunResult]:
    """The run function of ``nproc`` processes per run (the runner's, in this process, for 1)."""
    if nproc == 1:
        return run
    from functools import partial

    from ..distributed import run_data_parallel

    return partial(run_data_parallel, nproc=nproc)
