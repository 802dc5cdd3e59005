"""A study's results, read from its storage only: per (task, optimizer) the trials, the best
configuration and the final runs (:func:`load_results`), and the summary the report and
``tune_summary.csv`` show (:func:`summarize`): trials used against the equal budget, the best
hyperparameters, the test accuracy over seeds (mean and 95% CI), time and steps to the task's
validation target, and a verdict per task.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from ..pages import csv_number
from ..spec import parse_spec
from ..stats import ci95, mean
from ..tasks import get_task
from .config import TuneConfig
from .finals import best_trial
from .profiles import CurvePoint, TimeToTarget, Verdict, time_to_target, validation_target, verdict
from .storage import _study_id, load_config, mask_url, provenance


@dataclass
class OptimizerResult:
    """One (task, optimizer) of a study: its trials, best configuration and final runs."""

    task: str
    optimizer: str
    budget: int
    trials: list[FrozenTrial]
    best: FrozenTrial | None
    finals: list[dict[str, Any]]

    @property
    def n_complete(self) -> int:
        return sum(t.state == TrialState.COMPLETE for t in self.trials)

    @property
    def n_pruned(self) -> int:
        return sum(t.state == TrialState.PRUNED for t in self.trials)

    @property
    def n_failed(self) -> int:
        return sum(t.state == TrialState.FAIL for t in self.trials)

    def test_accuracies(self) -> list[float]:
        """Final test accuracy of every finished seed (diverged seeds excluded, never as NaN)."""
        return [r["test_accuracy"] for r in self.finals
                if r["status"] == "finished" and r["test_accuracy"] is not None]

    def best_params(self) -> dict[str, Any]:
        """The best trial's hyperparameters as the optimizer takes them (not the sampled 1-x)."""
        if self.best is None:
            return {}
        return dict(parse_spec(self.best.user_attrs["spec"]).phases[0].hyperparameters)


@dataclass
class TuneResults:
    name: str
    storage: str  # masked URL
    config: TuneConfig
    results: dict[tuple[str, str], OptimizerResult]
    provenance: list[dict[str, Any]] = field(default_factory=list)


def load_results(storage: RDBStorage, name: str) -> TuneResults:
    """Everything a report needs, read from the storage only."""
    cfg = load_config(storage, name)
    results: dict[tuple[str, str], OptimizerResult] = {}
    seeds = cfg.evaluation_seeds()
    for sub, task, optimizer in cfg.studies(name):
        study_id = _study_id(storage, sub)
        trials = storage.get_all_trials(study_id)
        attrs = storage.get_study_user_attrs(study_id)
        best = best_trial(storage, sub)
        finals = [attrs[f"final:{s}"] for s in seeds if f"final:{s}" in attrs]
        if best is not None:
            finals = [r for r in finals if r.get("spec") == best.user_attrs.get("spec")]
        results[(task, optimizer)] = OptimizerResult(task, optimizer, cfg.budget, trials, best, finals)
    return TuneResults(name, mask_url(storage.url), cfg, results, provenance(storage, name))


CSV_COLUMNS = (
    "task", "optimizer", "budget", "trials_complete", "trials_pruned", "trials_failed",
    "best_hyperparameters", "best_spec", "best_validation_accuracy", "test_accuracy_mean",
    "test_accuracy_ci95", "seeds_finished", "seeds_diverged", "validation_target",
    "time_to_target_s", "steps_to_target", "epochs_to_target",
)

@dataclass(frozen=True)
class TuneRow:
    """One (task, optimizer) line of ``tune_summary.csv``."""

    task: str
    optimizer: str
    budget: int
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    best_hyperparameters: dict[str, Any]
    best_spec: str
    best_validation_accuracy: float
    test_accuracies: tuple[float, ...]
    seeds_diverged: int
    validation_target: float
    time_to_target: TimeToTarget

    @property
    def test_accuracy_mean(self) -> float:
        return mean(self.test_accuracies)

    @property
    def test_accuracy_ci95(self) -> float:
        return ci95(self.test_accuracies)

    def csv_values(self) -> list[str]:
        return [
            self.task, self.optimizer, str(self.budget), str(self.trials_complete),
            str(self.trials_pruned), str(self.trials_failed),
            json.dumps({k: _jsonable(v) for k, v in self.best_hyperparameters.items()}),
            self.best_spec, csv_number(self.best_validation_accuracy), csv_number(self.test_accuracy_mean),
            csv_number(self.test_accuracy_ci95), str(len(self.test_accuracies)), str(self.seeds_diverged),
            csv_number(self.validation_target), csv_number(self.time_to_target.wall_time_s),
            csv_number(self.time_to_target.steps), csv_number(self.time_to_target.epoch),
        ]


@dataclass(frozen=True)
class TaskSummary:
    task: str
    target: float
    target_declared: bool
    rows: list[TuneRow]
    verdict: Verdict


def curve(points: list[list[Any]] | None) -> list[CurvePoint]:
    """A stored curve (``[epoch, accuracy, loss, wall_time_s, step]`` rows) as points."""
    out = []
    for e, acc, loss, wall, step in points or []:
        out.append(CurvePoint(int(e), _float(acc), _float(loss), float(wall), int(step)))
    return out


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _best_accuracy(result: OptimizerResult) -> float:
    if result.best is None:
        return math.nan
    accs = [p.accuracy for p in curve(result.best.user_attrs.get("curve"))
            if math.isfinite(p.accuracy)]
    return max(accs) if accs else math.nan


def summarize(results: TuneResults) -> list[TaskSummary]:
    """Rows, target and verdict of every task, in the study's order."""
    out = []
    for task in results.config.tasks:
        per_opt = {o: results.results[(task, o)] for o in results.config.optimizers}
        try:
            declared = get_task(task).target
        except ValueError:  # a task no longer registered: fall back to the relative target
            declared = None
        target = validation_target({o: _best_accuracy(r) for o, r in per_opt.items()},
                                   declared=declared)
        rows = []
        for o, r in per_opt.items():
            best_curve = curve(r.best.user_attrs.get("curve")) if r.best is not None else []
            rows.append(TuneRow(
                task=task, optimizer=o, budget=r.budget, trials_complete=r.n_complete,
                trials_pruned=r.n_pruned, trials_failed=r.n_failed,
                best_hyperparameters=r.best_params(),
                best_spec=r.best.user_attrs.get("spec", "") if r.best is not None else "",
                best_validation_accuracy=float(r.best.value) if r.best is not None else math.nan,
                test_accuracies=tuple(r.test_accuracies()),
                seeds_diverged=sum(1 for f in r.finals if f["status"] == "diverged"),
                validation_target=target,
                time_to_target=time_to_target(best_curve, target),
            ))
        samples = {row.optimizer: list(row.test_accuracies) for row in rows}
        out.append(TaskSummary(task, target, declared is not None, rows, verdict(task, samples)))
    return out


def ranking(summary: TaskSummary) -> list[TuneRow]:
    """Rows by mean test accuracy, best first (optimizers without finished seeds last)."""
    return sorted(summary.rows, key=lambda r: (-r.test_accuracy_mean
                                               if math.isfinite(r.test_accuracy_mean) else math.inf))


def profiles(summaries: list[TaskSummary]) -> dict[str, dict[str, dict[str, float]]]:
    """Time-to-target per task and optimizer, by ``"steps"`` and by ``"wall_time_s"``."""
    return {
        "steps": {s.task: {r.optimizer: r.time_to_target.steps for r in s.rows} for s in summaries},
        "wall_time_s": {s.task: {r.optimizer: r.time_to_target.wall_time_s for r in s.rows}
                        for s in summaries},
    }


# ---- CSV ------------------------------------------------------------------------------------------
def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def summary_csv(summaries: list[TaskSummary]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in summaries:
        for row in s.rows:
            writer.writerow(row.csv_values())
    return buf.getvalue()


def hyperparameters_text(hps: dict[str, Any]) -> str:
    """Hyperparameters as short text (``lr=0.001, betas=0.9/0.99``; ``defaults`` when none)."""

    def one(v: Any) -> str:
        if isinstance(v, tuple):
            return "/".join(one(x) for x in v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    return ", ".join(f"{k}={one(v)}" for k, v in hps.items()) or "defaults"
