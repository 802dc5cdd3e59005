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

from ..errors import UserError
from ..pages import csv_number
from ..protocol import (
    Crossing,
    CrossingSummary,
    expected_best_curve,
    summarize_crossings,
    time_to_target,
)
from ..spec import parse_spec
from ..stats import ci95, mean
from ..tasks import get_task
from .config import TuneConfig
from .finals import best_trial
from .profiles import CurvePoint, Verdict, validation_target, verdict
from .space import dimensions
from .storage import _study_id, evaluated_trials, load_config, mask_url, provenance


@dataclass
class OptimizerResult:
    """One (task, optimizer) of a study: its trials, best configuration and final runs."""

    task: str
    optimizer: str
    budget: int
    trials: list[FrozenTrial]
    best: FrozenTrial | None
    finals: list[dict[str, Any]]

    def evaluated(self) -> list[FrozenTrial]:
        """The trials that count against the budget: one complete trial per slot."""
        return evaluated_trials(self.trials)

    def trial_scores(self) -> list[float]:
        """The validation score of every evaluated trial (a diverged one scores 0)."""
        return [float(t.value) for t in self.evaluated() if t.value is not None]

    @property
    def n_complete(self) -> int:
        return len(self.evaluated())

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
    "task", "optimizer", "budget", "lr_low", "lr_high", "search_space", "trials_complete",
    "trials_pruned", "trials_failed", "best_hyperparameters", "best_spec",
    "best_validation_accuracy", "expected_best_by_trials", "test_accuracy_mean",
    "test_accuracy_ci95", "seeds_finished", "seeds_diverged", "validation_target",
    "steps_to_target_median", "steps_to_target_ci_low", "steps_to_target_ci_high",
    "seconds_to_target_median", "seeds_reached_target", "steps_run",
)


@dataclass(frozen=True)
class TuneRow:
    """One (task, optimizer) line of ``tune_summary.csv``."""

    task: str
    optimizer: str
    budget: int
    space: dict[str, tuple[float, float]]  # tuned dimension -> (low, high)
    trials_complete: int
    trials_pruned: int
    trials_failed: int
    best_hyperparameters: dict[str, Any]
    best_spec: str
    best_validation_accuracy: float
    test_accuracies: tuple[float, ...]
    seeds_diverged: int
    validation_target: float
    #: per final seed, when it first reached the target on the validation split
    crossings: tuple[Crossing, ...]
    #: the expected best validation score of n = 1..N trials (Dodge et al. 2019)
    expected_best: tuple[float, ...] = ()

    @property
    def to_target(self) -> CrossingSummary:
        """Median and CI over the final seeds of steps and seconds to the target."""
        return summarize_crossings(self.crossings)

    @property
    def lr_range(self) -> tuple[float, float]:
        return self.space.get("lr", (math.nan, math.nan))

    @property
    def test_accuracy_mean(self) -> float:
        return mean(self.test_accuracies)

    @property
    def test_accuracy_ci95(self) -> float:
        return ci95(self.test_accuracies)

    def csv_values(self) -> list[str]:
        return [
            self.task, self.optimizer, str(self.budget), csv_number(self.lr_range[0]),
            csv_number(self.lr_range[1]),
            json.dumps({k: list(v) for k, v in self.space.items()}),
            str(self.trials_complete), str(self.trials_pruned), str(self.trials_failed),
            json.dumps({k: _jsonable(v) for k, v in self.best_hyperparameters.items()}),
            self.best_spec, csv_number(self.best_validation_accuracy),
            json.dumps([round(x, 6) for x in self.expected_best]),
            csv_number(self.test_accuracy_mean),
            csv_number(self.test_accuracy_ci95), str(len(self.test_accuracies)), str(self.seeds_diverged),
            csv_number(self.validation_target), csv_number(self.to_target.steps.estimate),
            csv_number(self.to_target.steps.low), csv_number(self.to_target.steps.high),
            csv_number(self.to_target.seconds.estimate), str(self.to_target.reached),
            str(self.to_target.steps_run),
        ]


@dataclass(frozen=True)
class TaskSummary:
    task: str
    target: float
    target_source: str  # "--target", "declared by the task" or "relative"
    rows: list[TuneRow]
    verdict: Verdict


def crossing(record: dict[str, Any], target: float) -> Crossing:
    """When a final run (its stored record) first reached ``target`` on the validation split."""
    evals = record.get("evaluations") or []
    return time_to_target(
        [int(e[0]) for e in evals], [_float(e[1]) for e in evals], target,
        seconds=[float(e[3]) for e in evals], steps_run=int(record.get("steps") or 0),
        diverged_step=record.get("diverged_step"),
    )


def curve(points: list[list[Any]] | None) -> list[CurvePoint]:
    """A stored curve (``[epoch, accuracy, loss, wall_time_s, step]`` rows) as points."""
    out = []
    for e, acc, loss, wall, step in points or []:
        out.append(CurvePoint(int(e), _float(acc), _float(loss), float(wall), int(step)))
    return out


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _best_accuracy(result: OptimizerResult) -> float:
    """The highest validation accuracy any final run of ``result`` reached."""
    accs = [_float(e[1]) for f in result.finals for e in f.get("evaluations") or []]
    accs = [a for a in accs if math.isfinite(a)]
    return max(accs) if accs else math.nan


def summarize(results: TuneResults) -> list[TaskSummary]:
    """Rows, target and verdict of every task, in the study's order."""
    out = []
    for task in results.config.tasks:
        per_opt = {o: results.results[(task, o)] for o in results.config.optimizers}
        try:
            declared = get_task(task).target
        except UserError:  # a task no longer registered: fall back to the relative target
            declared = None
        source = "declared by the task" if declared is not None else "relative"
        if results.config.target is not None:
            declared, source = results.config.target, "--target"
        target = validation_target({o: _best_accuracy(r) for o, r in per_opt.items()},
                                   declared=declared)
        rows = []
        for o, r in per_opt.items():
            dims = dimensions(results.config.space, results.config.specs[o].phases[0],
                              results.config.lr_range, results.config.custom)
            scores = r.trial_scores()
            rows.append(TuneRow(
                task=task, optimizer=o, budget=r.budget,
                space={d.name: (d.low, d.high) for d in dims}, trials_complete=r.n_complete,
                trials_pruned=r.n_pruned, trials_failed=r.n_failed,
                best_hyperparameters=r.best_params(),
                best_spec=r.best.user_attrs.get("spec", "") if r.best is not None else "",
                best_validation_accuracy=float(r.best.value) if r.best is not None else math.nan,
                test_accuracies=tuple(r.test_accuracies()),
                seeds_diverged=sum(1 for f in r.finals if f["status"] == "diverged"),
                validation_target=target,
                crossings=tuple(crossing(f, target) for f in r.finals)
                if math.isfinite(target) else (),
                expected_best=tuple(p.mean for p in expected_best_curve(scores)) if scores else (),
            ))
        samples = {row.optimizer: list(row.test_accuracies) for row in rows}
        trials = {o: r.trial_scores() for o, r in per_opt.items()}
        out.append(TaskSummary(task, target, source, rows, verdict(task, samples, trials=trials)))
    return out


def ranking(summary: TaskSummary) -> list[TuneRow]:
    """Rows by mean test accuracy, best first (optimizers without finished seeds last)."""
    return sorted(summary.rows, key=lambda r: (-r.test_accuracy_mean
                                               if math.isfinite(r.test_accuracy_mean) else math.inf))


def profiles(summaries: list[TaskSummary]) -> dict[str, dict[str, dict[str, float]]]:
    """Median time-to-target over the final seeds per task and optimizer, by ``"steps"`` and by
    ``"wall_time_s"`` (``inf`` where the median seed did not reach the target)."""
    return {
        "steps": {s.task: {r.optimizer: r.to_target.steps.estimate for r in s.rows}
                  for s in summaries},
        "wall_time_s": {s.task: {r.optimizer: r.to_target.seconds.estimate for r in s.rows}
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
