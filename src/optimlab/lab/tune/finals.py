"""The final evaluation of a study: each optimizer's best trial re-trained over the evaluation seeds
(other seeds than the trials'), one record per seed in the study.

As AlgoPerf measures time-to-target, a final run trains on the training split minus the validation
split the study selected on, evaluates the validation split at a fixed interval of steps
(:data:`~.config.EVALS_PER_EPOCH` times an epoch, and at the end of every epoch), and its trained
model is then tested once on the test split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from .. import parallel
from ..runner import run
from ..runspec import RunResult, RunSpec, resolve_batch_size
from ..spec import parse_spec
from ..tasks import DataOptions, get_task, load_dataset
from ..trackers import TrackerConfig
from .config import EVALS_PER_EPOCH, TuneConfig
from .storage import _study_id, evaluated_trials, json_safe, load_trackers


def best_trial(storage: RDBStorage, sub: str) -> FrozenTrial | None:
    """The evaluated trial with the highest validation accuracy (earliest on ties); a trial whose
    run diverged is never the best. None when no trial finished."""
    complete = storage.get_all_trials(_study_id(storage, sub), states=(TrialState.COMPLETE,))
    finished = [t for t in evaluated_trials(complete) if t.user_attrs.get("status") == "finished"]
    if not finished:
        return None
    return max(finished, key=lambda t: (t.value, -t.number))


def _steps_per_epoch(spec: RunSpec, data: DataOptions) -> int:
    """How many steps an epoch of ``spec`` takes (its training split over its batch size)."""
    task = get_task(spec.task)
    n = len(load_dataset(task, data, spec.validation_fraction).x_train)
    return -(-n // (resolve_batch_size(spec.batch_size, task.batch_size, n)
                    * (spec.accumulate or 1)))


def _final_run(spec: RunSpec, data_dir: str | None, trackers: TrackerConfig | None = None
               ) -> dict[str, Any]:
    """One seed of a best configuration: trained on the training split minus the validation
    split, evaluated on it at a fixed interval of steps, then tested on the test split."""
    data = DataOptions(Path(data_dir)) if data_dir else DataOptions()
    interval = max(1, -(-_steps_per_epoch(spec, data) // EVALS_PER_EPOCH))
    result = run(spec, data=data, trackers=trackers, evaluate_every=interval, test_at_end=True)
    return final_record(result, result.final_test, interval)


def final_record(result: RunResult, test: tuple[float, float] | None = None,
                 interval: int | None = None) -> dict[str, Any]:
    """The JSON record of a final run, as stored in the sub-study (``user_attrs["final:SEED"]``):
    ``test`` is its test ``(loss, accuracy)``; ``evaluations`` its validation curve as
    ``[step, accuracy, loss, wall_time_s]`` rows, one every ``interval`` steps."""
    finished = result.status == "finished" and test is not None
    return json_safe({
        "seed": result.spec.seed,
        "spec": result.spec.optimizer_label(),
        "status": result.status,
        "diverged_step": result.diverged_step,
        "test_accuracy": test[1] if finished else None,
        "test_loss": test[0] if finished else None,
        "wall_time_s": result.wall_time_s,
        "steps": len(result.step_losses),
        "eval_interval": interval,
        "evaluations": [[e.step, e.accuracy, e.loss, e.wall_time_s] for e in result.evaluations],
    })


def run_finals(storage: RDBStorage, name: str, cfg: TuneConfig, *, workers: int = 1,
               threads: int = 1, progress: Callable[[int, int], None] | None = None) -> None:
    """Re-run each sub-study's best trial over the evaluation seeds; store one record per seed.

    Seeds already stored are skipped, so an interrupted evaluation resumes. With ``workers > 1``
    the runs go to that many processes (:func:`optimlab.lab.parallel.run_all`), each with
    ``threads`` torch threads.
    """
    jobs: list[tuple[int, RunSpec]] = []
    for sub, task, _ in cfg.studies(name):
        best = best_trial(storage, sub)
        if best is None:
            continue
        study_id = _study_id(storage, sub)
        attrs = storage.get_study_user_attrs(study_id)
        label = best.user_attrs["spec"]
        spec = parse_spec(label)
        for seed in cfg.evaluation_seeds():
            record = attrs.get(f"final:{seed}")
            if record is not None and record.get("spec") == label:
                continue
            jobs.append((study_id, RunSpec(task, spec, seed=seed, epochs=cfg.epochs,
                                           batch_size=cfg.batch_size,
                                           validation_fraction=cfg.validation_fraction,
                                           **cfg.run_options())))
    total = len(jobs)
    done = [0]

    def store(i: int, record: dict[str, Any]) -> None:
        study_id, spec = jobs[i]
        storage.set_study_user_attr(study_id, f"final:{spec.seed}", record)
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    if progress is not None:
        progress(0, total)
    trackers = load_trackers(storage, name)
    if workers <= 1 or total <= 1:
        for i, (_, spec) in enumerate(jobs):
            store(i, _final_run(spec, cfg.data_dir, trackers))
        return
    parallel.run_all([(_final_run, (spec, cfg.data_dir, trackers)) for _, spec in jobs], workers,
                     threads=threads, on_done=store)
