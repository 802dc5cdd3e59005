"""The final evaluation of a study: each optimizer's best trial re-trained on the whole training
split over the evaluation seeds and tested on the test split, one record per seed in the study."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from .. import parallel
from ..runner import run
from ..runspec import RunResult, RunSpec
from ..spec import parse_spec
from ..tasks import DataOptions
from ..trackers import TrackerConfig
from .config import TuneConfig
from .storage import _study_id, json_safe, load_trackers


def best_trial(storage: RDBStorage, sub: str) -> FrozenTrial | None:
    """The COMPLETE trial with the highest validation accuracy (earliest on ties)."""
    complete = storage.get_all_trials(_study_id(storage, sub), states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return max(complete, key=lambda t: (t.value, -t.number))


def _final_run(spec: RunSpec, data_dir: str | None, trackers: TrackerConfig | None = None
               ) -> dict[str, Any]:
    """One seed of a best configuration, trained on the full training split, tested on test."""
    data = DataOptions(Path(data_dir)) if data_dir else DataOptions()
    return final_record(run(spec, data=data, trackers=trackers))


def final_record(result: RunResult) -> dict[str, Any]:
    """The JSON record of a final run, as stored in the sub-study (``user_attrs["final:SEED"]``)."""
    last = result.epochs[-1] if result.epochs else None
    finished = result.status == "finished" and last is not None
    return json_safe({
        "seed": result.spec.seed,
        "spec": result.spec.optimizer_label(),
        "status": result.status,
        "diverged_step": result.diverged_step,
        "test_accuracy": last.test_accuracy if finished else None,
        "test_loss": last.test_loss if finished else None,
        "wall_time_s": result.wall_time_s,
        "steps": len(result.step_losses),
        "curve": [[e.epoch, e.test_accuracy, e.test_loss, e.wall_time_s, e.step]
                  for e in result.epochs],
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
                                           batch_size=cfg.batch_size, **cfg.run_options())))
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
