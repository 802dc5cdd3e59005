"""The tuning worker: claims waiting trials of a study, trains them, and reports to Optuna.

The protocol (``optimlab tune``), in the words of :mod:`optimlab.lab.tune`: every optimizer spec
gets its own Optuna sub-study with the *same* budget of ``N`` trials. A trial samples the
optimizer's search space (:mod:`.space`), trains on the training split minus a held-out validation
fraction and scores the last epoch's **validation** accuracy; the test split is never read while
tuning. Each epoch's validation accuracy is reported to Optuna's ``MedianPruner``; a run that
diverges is pruned too. A pruned trial uses up its place in the budget.

The budget is enforced through the storage itself: when a study is created, ``N`` *waiting*
trials (one per budget slot, ``user_attrs["slot"]``) are enqueued, and a worker only ever
*claims* a waiting trial (a transactional ``WAITING -> RUNNING`` update that exactly one worker
wins); it never creates a trial. So any number of workers, on any number of machines, finish with
exactly ``N`` finished trials per optimizer, and none is run twice. A running trial records a
heartbeat every ``heartbeat_interval`` seconds; when a worker dies (kill -9, power cut) its trial
goes stale after ``grace_period`` seconds, the next worker that looks marks it ``FAIL``, and
Optuna's ``RetryFailedTrialCallback`` enqueues a waiting copy with the same hyperparameters and
slot, which some worker then runs. A trial that raises an error is marked ``FAIL`` and its slot
re-enqueued, and the error stops that worker.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from .. import parallel
from ..errors import UserError
from ..runner import run
from ..runspec import RunSpec
from ..tasks import DataOptions, get_task
from ..trackers import TrackerConfig
from .config import TuneConfig
from .space import dimensions, hyperparameters, trial_spec
from .storage import (
    _quiet,
    _study_id,
    counts,
    finished_count,
    json_safe,
    load_config,
    load_trackers,
    open_storage,
    scrub,
)

log = logging.getLogger(__name__)

RunFn = Callable[..., Any]


def _derive_seed(*parts: Any) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _sampler(cfg: TuneConfig, index: int, worker_id: str) -> optuna.samplers.BaseSampler:
    # TPE after a random start of a third of the budget; constant_liar keeps concurrent workers
    # from proposing the same point. Seeded per (study seed, sub-study, worker): one worker
    # replays the same trials, several workers do not duplicate each other's proposals.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=_derive_seed(cfg.seed, index, worker_id),
            n_startup_trials=max(2, cfg.budget // 3),
            constant_liar=True,
        )


def _pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    # prune a trial below the median of the earlier ones at the same epoch, once two have ended
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def _claim(storage: RDBStorage, study_id: int) -> int | None:
    """Move one waiting trial to RUNNING; exactly one concurrent caller wins each trial."""
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except UpdateFinishedTrialError:
            continue
    return None


@contextmanager
def _heartbeat(storage: RDBStorage, trial_id: int, interval: int) -> Iterator[None]:
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except (SQLAlchemyError, StorageInternalError, OSError) as e:
                # a missed beat is retried at the next interval
                log.warning("heartbeat of trial %d failed: %s", trial_id, scrub(str(e), storage.url))

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def objective(trial: optuna.Trial, cfg: TuneConfig, task: str, optimizer: str,
              run_fn: RunFn | None = None, trackers: TrackerConfig | None = None) -> float:
    """Train one sampled configuration on the validation split; its last validation accuracy.

    Every epoch's validation accuracy is reported to the pruner and appended to
    ``user_attrs["curve"]`` as ``[epoch, accuracy, loss, wall_time_s, step]``. Raises
    ``optuna.TrialPruned`` when the pruner stops the trial or the run diverges
    (``user_attrs["status"] = "diverged"``, with ``diverged_step``).
    """
    run_fn = run_fn or run
    phase = cfg.specs[optimizer].phases[0]
    dims = dimensions(cfg.space, phase, cfg.lr_range, cfg.custom)
    values = {d.name: trial.suggest_float(d.name, d.low, d.high, log=d.log) for d in dims}
    trial_optimizer = trial_spec(phase, hyperparameters(phase, dims, values))
    trial.set_user_attr("spec", trial_optimizer.label())
    curve: list[list[float]] = []

    def on_epoch(rec: Any) -> None:
        curve.append([rec.epoch, rec.test_accuracy, rec.test_loss, rec.wall_time_s, rec.step])
        trial.set_user_attr("curve", json_safe(curve))
        if math.isfinite(rec.test_accuracy):
            trial.report(rec.test_accuracy, rec.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {rec.test_accuracy:.4f} at "
                                         f"epoch {rec.epoch} is below the median")

    spec = RunSpec(task, trial_optimizer, seed=cfg.seed, epochs=cfg.epochs,
                   batch_size=cfg.batch_size, validation_fraction=cfg.validation_fraction,
                   **cfg.run_options())
    data = DataOptions(Path(cfg.data_dir)) if cfg.data_dir else DataOptions()
    extra = {} if trackers is None else {
        "trackers": trackers,
        "tracker_name": f"{get_task(task).name}/{optimizer}/trial={trial.number}"}
    result = run_fn(spec, data=data, on_epoch=on_epoch, **extra)
    trial.set_user_attr("status", result.status)
    if result.status == "diverged":
        trial.set_user_attr("diverged_step", result.diverged_step)
        raise optuna.TrialPruned(f"diverged at step {result.diverged_step}")
    if not result.epochs or not math.isfinite(result.epochs[-1].test_accuracy):
        raise optuna.TrialPruned("no finite validation accuracy")
    return float(result.epochs[-1].test_accuracy)


@dataclass
class WorkerReport:
    """What one worker did."""

    worker_id: str
    trials: list[tuple[str, int, str]] = field(default_factory=list)  # (sub-study, number, state)


def work(storage_url: str, name: str, *, worker_id: str = "0", run_fn: RunFn | None = None,
         on_trial: Callable[[str, FrozenTrial], None] | None = None,
         wait_ready_s: float = 60.0, poll_s: float | None = None) -> WorkerReport:
    """Run trials of study ``name`` until every sub-study has used its budget.

    The worker claims waiting trials (never creates one), round-robin over the sub-studies
    starting from a place derived from ``worker_id``. When nothing is waiting but trials are still
    running elsewhere, it keeps polling: a running trial whose worker died becomes a waiting retry
    after the grace period, and this worker then runs it. It returns when nothing is waiting or
    running.
    """
    _quiet()
    plain = open_storage(storage_url)
    cfg = load_config(plain, name, wait_s=wait_ready_s)
    trackers = load_trackers(plain, name)
    storage = open_storage(storage_url, heartbeat_interval=cfg.heartbeat_interval,
                           grace_period=cfg.grace_period, max_retry=cfg.max_retry)
    subs = cfg.studies(name)
    samplers = {sub: _sampler(cfg, i, worker_id) for i, (sub, _, _) in enumerate(subs)}
    pruner = _pruner(cfg)
    ids = {sub: _study_id(storage, sub) for sub, _, _ in subs}
    report = WorkerReport(worker_id)
    start = _derive_seed(worker_id) % len(subs) if worker_id != "0" else 0
    order = subs[start:] + subs[:start]
    poll = poll_s if poll_s is not None else min(1.0, cfg.heartbeat_interval / 2)
    studies = {sub: optuna.load_study(study_name=sub, storage=storage) for sub, _, _ in subs}
    while True:
        claimed = _claim_any(storage, order, ids)
        if claimed is None:
            # nothing waiting: turn the trials of dead workers into waiting retries, look again
            for sub, _, _ in subs:
                _fail_stale(studies[sub])
            claimed = _claim_any(storage, order, ids)
        if claimed is None:
            running = any(
                storage.get_all_trials(ids[sub], deepcopy=False, states=(TrialState.RUNNING,))
                for sub, _, _ in subs
            )
            if not running:
                return report
            time.sleep(poll)
            continue
        (sub, task, optimizer), trial_id = claimed
        # a fresh Study per trial: its trial cache (read by the sampler) starts empty
        study = optuna.load_study(study_name=sub, storage=storage, sampler=samplers[sub],
                                  pruner=pruner)
        frozen = _run_trial(storage, cfg, study, trial_id, task, optimizer, worker_id, run_fn,
                            trackers)
        report.trials.append((sub, frozen.number, frozen.state.name))
        if on_trial is not None:
            on_trial(sub, frozen)


def _claim_any(storage: RDBStorage, order: Sequence[tuple[str, str, str]], ids: dict[str, int]
               ) -> tuple[tuple[str, str, str], int] | None:
    for entry in order:
        trial_id = _claim(storage, ids[entry[0]])
        if trial_id is not None:
            return entry, trial_id
    return None


def _run_trial(storage: RDBStorage, cfg: TuneConfig, study: optuna.Study, trial_id: int,
               task: str, optimizer: str, worker_id: str, run_fn: RunFn | None,
               trackers: TrackerConfig | None = None) -> FrozenTrial:
    with _heartbeat(storage, trial_id, cfg.heartbeat_interval):
        trial = optuna.trial.Trial(study, trial_id)
        trial.set_user_attr("worker", f"{worker_id}@{socket.gethostname()}:{os.getpid()}")
        try:
            value = objective(trial, cfg, task, optimizer, run_fn, trackers)
        except optuna.TrialPruned:
            return study.tell(trial, state=TrialState.PRUNED)
        except BaseException as e:
            trial.set_user_attr("error", scrub(f"{type(e).__name__}: {e}", storage.url)[:2000])
            frozen = study.tell(trial, state=TrialState.FAIL)
            # give the slot back, so that the budget can still be met once the cause is fixed
            study.enqueue_trial({}, user_attrs={"slot": frozen.user_attrs.get("slot")})
            raise
        return study.tell(trial, value)


def start_local_workers(storage_url: str, name: str, n: int, *, threads: int = 1
                        ) -> list[BaseProcess]:
    """Start ``n`` worker processes on this machine (:func:`optimlab.lab.parallel.start_processes`),
    each running :func:`work` on study ``name`` with ``threads`` torch threads.

    The URL reaches them through a pipe, never the command line or the environment, so a process
    list never shows a password; they end when this process dies.
    """
    return parallel.start_processes(
        work, [(storage_url, name) for _ in range(n)], threads=threads,
        kwargs=[{"worker_id": str(i)} for i in range(n)],
    )


def wait_for_budget(storage: RDBStorage, name: str, cfg: TuneConfig, *,
                    procs: Sequence[BaseProcess] = (), remote: bool = False,
                    progress: Callable[[int, int], None] | None = None,
                    poll_s: float = 1.0) -> None:
    """Block until every sub-study has ``budget`` finished trials.

    With ``remote`` (workers on other machines do the work) it waits however long it takes.
    Otherwise, once the local worker processes ``procs`` (if any) have exited with the budget
    unmet, the trials left (a dead worker's retry, an error's slot) are run in this process, so
    that an error surfaces with its own message; :class:`UserError` if none is left to run (a
    trial failed more than ``max_retry`` times).
    """
    subs = cfg.studies(name)
    total = cfg.budget * len(subs)
    last = -1
    while True:
        done = sum(min(cfg.budget, finished_count(storage, sub)) for sub, _, _ in subs)
        if progress is not None and done != last:
            progress(done, total)
            last = done
        if done >= total:
            return
        if not remote and all(not p.is_alive() for p in procs):
            pending = 0
            for sub, _, _ in subs:
                c = counts(storage, sub)
                pending += c["WAITING"] + c["RUNNING"]
            if pending == 0:
                codes = ", ".join(str(p.exitcode) for p in procs)
                raise UserError(
                    f"Tuning stopped with {done} of {total} trials finished and none left to run "
                    f"(a trial failed more than {cfg.max_retry} times"
                    + (f"; workers exited with {codes}" if procs else "") + ")"
                )
            work(storage.url, name, worker_id="0")
            continue
        time.sleep(poll_s)
