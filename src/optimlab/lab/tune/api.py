"""The tuning workflow as one library call: :func:`tune` (``optimlab tune`` without ``--worker``).

It checks every option, creates (or reopens) the study, tunes with local worker processes (and any
remote ones that join), waits until every optimizer has used its budget, re-runs each best
configuration over the evaluation seeds, and writes the report.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...optim import SEED_OPTIMIZERS
from ..device import resolve_device
from ..errors import UserError
from ..outdir import open_for_write
from ..provenance import collect, command_for
from ..runspec import whole_number
from ..spec import OptimizerSpec
from ..tasks import DEFAULT_TASK, DataOptions, data_fingerprint, get_task, load_dataset
from ..trackers import MLFLOW_DB, TENSORBOARD_DIR, TrackerConfig, parse_log_to
from .config import (
    DEFAULT_BUDGET,
    DEFAULT_EPOCHS,
    DEFAULT_GRACE_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_SEEDS,
    DEFAULT_STUDY,
    DEFAULT_VALIDATION_FRACTION,
    TuneConfig,
)
from .space import parse_lr_range

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from .results import TaskSummary, TuneResults


class TuneListener:
    """Progress hooks for a front end (the CLI prints them); every method is optional."""

    def study_ready(self, study: str, storage: str, config: TuneConfig) -> None:
        """The study exists in ``storage`` (masked URL); tuning starts."""

    def trial_finished(self, substudy: str, trial: FrozenTrial) -> None:
        """A trial of this process's worker ended (complete, pruned or failed)."""

    def trials(self, done: int, total: int) -> None:
        """``done`` of the ``total`` trials of the study have finished."""

    def tuning_done(self, seconds: float) -> None:
        """Every budget is used; the final runs start."""

    def finals(self, done: int, total: int) -> None:
        """``done`` of the ``total`` final runs have finished."""


@dataclass
class TuneResult:
    """What :func:`tune` did.

    Attributes:
        out: the output folder.
        study: the study's name.
        storage: the storage URL, password masked.
        results: everything read back from the storage.
        summaries: per task, the rows of ``tune_summary.csv``, the target and the verdict.
        paths: the files written (``report.html``, ``tune_summary.csv``).
    """

    out: Path
    study: str
    storage: str
    results: TuneResults
    summaries: list[TaskSummary] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """The rows of ``tune_summary.csv`` as plain dicts (column -> text, as in the file),
        e.g. for ``pandas.DataFrame(result.table())``."""
        from .results import CSV_COLUMNS

        return [dict(zip(CSV_COLUMNS, row.csv_values())) for s in self.summaries for row in s.rows]


def tune(
    *,
    task: str | Sequence[str] = DEFAULT_TASK,
    optimizers: str | Sequence[str | OptimizerSpec] = SEED_OPTIMIZERS,
    budget: int = DEFAULT_BUDGET,
    space: str | Sequence[str] = "lr-only",
    lr_range: str | tuple[float, float] | None = None,
    epochs: int | None = DEFAULT_EPOCHS,
    batch_size: int | str | None = None,
    seeds: int = DEFAULT_SEEDS,
    seed: int = 0,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    out: str | os.PathLike = "runs/tune",
    storage: str | None = None,
    study: str = DEFAULT_STUDY,
    workers: int = 1,
    threads: int = 1,
    heartbeat_interval: int = DEFAULT_HEARTBEAT_S,
    grace_period: int = DEFAULT_GRACE_S,
    data_dir: str | os.PathLike | None = None,
    device: str | None = "auto",
    clip_grad_norm: float | None = None,
    accumulate: int | None = None,
    skip_nonfinite: bool = False,
    log_to: str | Sequence[str] | None = None,
    listener: TuneListener | None = None,
    command: str | None = None,
) -> TuneResult:
    """Tune each optimizer with the same budget on a validation split, then test the best.

    The options are ``optimlab tune``'s; every one is checked before the storage is opened.
    Running it again on the same study continues it: finished trials are kept.

    Args:
        task: a task name, several as a list or comma-separated.
        optimizers: specs to tune (comma-separated text, or a sequence of texts or parsed specs);
            hyperparameters a spec sets are kept fixed.
        budget: trials per optimizer (complete or pruned), the same for every optimizer.
        space: ``"lr-only"`` (DeepOBS) or ``"full"`` (Choi et al. 2019, ``eps`` included), and/or
            search dimensions ``KEY=log:LOW:HIGH`` / ``KEY=linear:LOW:HIGH`` that add to or replace
            the protocol's (the whole space of an optimizer named by class); a list for several.
        lr_range: one learning-rate range for every optimizer (``(1e-5, 1e2)`` or ``"1e-5:1e2"``);
            None: each optimizer's own (its registry entry).
        epochs: epochs per trial and per final run; None: the task's.
        batch_size: ``N``, ``1`` or ``"full"``; None: the task's.
        seeds: seeds of the final runs of each best configuration.
        seed: seed of the samplers and the trials.
        validation_fraction: share of the training split held out to select on.
        out: folder of ``report.html``, ``tune_summary.csv`` and (by default) ``tune.db``.
        storage: Optuna storage URL (e.g. ``postgresql://USER:PASSWORD@HOST/DB``); None:
            ``sqlite:///<out>/tune.db``.
        study: the study's name in the storage.
        workers: local worker processes (0: only remote workers tune this study; 1: this
            process).
        threads: torch CPU threads per process.
        heartbeat_interval: seconds between a running trial's heartbeats.
        grace_period: seconds without a heartbeat after which a trial is re-queued.
        data_dir: folder holding the datasets' files.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        clip_grad_norm, accumulate, skip_nonfinite: the training loop's options, for every trial
            and final run (:class:`~optimlab.lab.runspec.RunSpec`).
        log_to: trackers every trial and final run logs to as it trains (``tensorboard``,
            ``mlflow``), in ``out``; runs of remote workers (``--worker``) are logged where their
            machine sees that folder.
        listener: progress hooks.
        command: the command line recorded as the study's provenance (None: the ``optimlab
            tune`` line equivalent to these arguments).

    Returns:
        A :class:`TuneResult`: the summary rows (``.table()``), verdicts and files written.

    Raises:
        UserError: a bad option, a study of another configuration, a storage that cannot be
            opened, or trials that failed more often than they may be retried.
    """
    import torch

    from . import finals, report, results, worker
    from . import storage as stores

    listener = listener or TuneListener()
    whole_number("threads", threads)
    whole_number("workers", workers, 0)
    if isinstance(lr_range, str):
        lr_range = parse_lr_range(lr_range)
    spaces = [space] if isinstance(space, str) else list(space)
    protocols = [s for s in spaces if "=" not in s]
    if len(protocols) > 1:
        raise UserError(f"Several search protocols given ({', '.join(protocols)}; expected one)")
    resolved = resolve_device(device)
    cfg = TuneConfig.create(
        tasks=task, optimizers=optimizers, budget=budget,
        space=protocols[0] if protocols else "lr-only", lr_range=lr_range,
        epochs=epochs, batch_size=batch_size, seeds=seeds, seed=seed,
        validation_fraction=validation_fraction, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period, data_dir=str(data_dir) if data_dir is not None else None,
        dimensions=tuple(s for s in spaces if "=" in s),
        device=None if resolved.type == "cpu" else str(resolved), clip_grad_norm=clip_grad_norm,
        accumulate=accumulate, skip_nonfinite=bool(skip_nonfinite),
    )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"Cannot write to {out}: it is a file, not a folder")
    url = storage or stores.default_storage_url(out)
    stores.check_url(url)
    named = parse_log_to(log_to)
    trackers = TrackerConfig(named, out) if named else None
    if command is None:
        command = command_for("tune", {
            "task": task, "optimizers": optimizers, "budget": budget, "space": spaces,
            "lr_range": None if lr_range is None else f"{lr_range[0]:g}:{lr_range[1]:g}",
            "epochs": epochs, "batch_size": batch_size, "seeds": seeds, "seed": seed,
            "validation_fraction": validation_fraction, "out": out, "study": study,
            "workers": workers, "device": device, "clip_grad_norm": clip_grad_norm,
            "accumulate": accumulate, "skip_nonfinite": skip_nonfinite, "log_to": log_to},
            repeated=("space",))
    data = DataOptions(Path(cfg.data_dir)) if cfg.data_dir else DataOptions()
    fingerprint = {t: data_fingerprint(load_dataset(get_task(t), data), data) for t in cfg.tasks}
    # a study continues where it stopped: on the same data only (its configuration is the
    # study's to check)
    with open_for_write(out, "tune", json.loads(cfg.to_json()), fingerprint, resume=True,
                        force=True, restart="choose another --out") as folder:
        if storage is None:
            folder.file(stores.DB_NAME)
        if trackers is not None:
            if "tensorboard" in trackers.names:
                folder.file(f"{TENSORBOARD_DIR}/")
            if "mlflow" in trackers.names and not os.environ.get("MLFLOW_TRACKING_URI"):
                folder.file(MLFLOW_DB)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        procs = []
        try:
            started = time.perf_counter()
            st = stores.open_storage(url)
            stores.create_study(st, study, cfg)
            stores.record_run(st, study, collect(stores.scrub(command, url), cfg.device), trackers)
            if trackers is not None:
                trackers.prepare()
            listener.study_ready(study, stores.mask_url(url), cfg)
            on_trial = listener.trial_finished
            if workers == 1:
                worker.work(url, study, worker_id="0", on_trial=on_trial)
            elif workers > 1:
                procs = worker.start_local_workers(url, study, workers, threads=threads)
            worker.wait_for_budget(st, study, cfg, procs=procs, remote=workers == 0,
                                   progress=listener.trials)
            for p in procs:
                p.join()
            listener.tuning_done(time.perf_counter() - started)
            finals.run_finals(st, study, cfg, workers=max(1, workers), threads=threads,
                              progress=listener.finals)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            torch.set_num_threads(before)
        loaded = results.load_results(st, study)
        summaries = results.summarize(loaded)
        for name in (report.REPORT_NAME, report.CSV_NAME):
            folder.file(name)
        html_path, csv_path = report.write_report(loaded, out, summaries)
        return TuneResult(out, study, loaded.storage, loaded, summaries, [html_path, csv_path])
