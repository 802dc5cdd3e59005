"""A tuning study's configuration: checked once, stored in the study, read back by every worker."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from ...optim import SEED_OPTIMIZERS
from ..errors import UserError
from ..runspec import RunSpec, check_batch_size, whole_number
from ..spec import OptimizerSpec, parse_spec, parse_specs
from ..tasks import DEFAULT_TASK, accuracy, get_task
from .space import Dimension, check_space, dimensions, hyperparameters, parse_dimension, trial_spec

DEFAULT_BUDGET = 12
DEFAULT_EPOCHS = 2
DEFAULT_SEEDS = 5
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_STUDY = "optimlab-tune"
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 60
#: a trial whose worker died this many times is given up (its slot stays unfilled and is reported)
DEFAULT_MAX_RETRY = 3
#: final runs evaluate the validation split this many times an epoch (a fixed interval of steps)
EVALS_PER_EPOCH = 4
CONFIG_VERSION = 2
#: the environment variable that holds the storage URL (keeps a password off command lines)
STORAGE_ENV = "OPTIMLAB_STORAGE"


@dataclass(frozen=True)
class TuneConfig:
    """Everything that defines a tuning study; stored in it, so workers need only its name.

    ``budget`` is one number for every optimizer: the equal budget of the comparison.
    ``optimizers`` are the specs' canonical labels (the study's text); :attr:`specs` holds them
    parsed, once per process.
    """

    tasks: tuple[str, ...] = (DEFAULT_TASK,)
    optimizers: tuple[str, ...] = SEED_OPTIMIZERS
    budget: int = DEFAULT_BUDGET
    space: str = "lr-only"
    lr_range: tuple[float, float] | None = None
    epochs: int | None = DEFAULT_EPOCHS
    batch_size: int | str | None = None
    seeds: int = DEFAULT_SEEDS
    seed: int = 0
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    target: float | None = None  # validation accuracy to reach; None: each task's declared one
    heartbeat_interval: int = DEFAULT_HEARTBEAT_S
    grace_period: int = DEFAULT_GRACE_S
    max_retry: int = DEFAULT_MAX_RETRY
    data_dir: str | None = None
    dimensions: tuple[str, ...] = ()
    device: str | None = None
    clip_grad_norm: float | None = None
    accumulate: int | None = None
    skip_nonfinite: bool = False

    def __post_init__(self) -> None:
        whole_number("budget", self.budget, 1)
        whole_number("seeds", self.seeds, 1)
        whole_number("seed", self.seed, 0)
        whole_number("heartbeat interval", self.heartbeat_interval, 1)
        whole_number("max retry", self.max_retry, 0)
        if self.epochs is not None:
            whole_number("epochs", self.epochs, 1)
        object.__setattr__(self, "batch_size", check_batch_size(self.batch_size))
        if self.grace_period <= self.heartbeat_interval:
            raise UserError(
                f"Invalid grace period {self.grace_period!r} (expected more than the heartbeat "
                f"interval, {self.heartbeat_interval} s)"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise UserError(
                f"Invalid validation fraction {self.validation_fraction!r} "
                "(expected 0 < fraction < 1; the test split is never used for tuning)"
            )
        if self.target is not None and (isinstance(self.target, bool)
                                        or not isinstance(self.target, (int, float))
                                        or not math.isfinite(self.target)):
            raise UserError(f"Invalid target {self.target!r} (expected a number: the task's "
                            "metric on the validation split, e.g. 0.9 for 90% accuracy)")
        if not self.tasks:
            raise UserError("No task to tune (expected --task NAME)")
        if not self.optimizers:
            raise UserError("No optimizer to tune (expected --optimizers sgd,adam,...)")
        check_space(self.space)
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if self.accumulate == 1:
            object.__setattr__(self, "accumulate", None)
        # RunSpec checks the loop's options
        RunSpec(self.tasks[0], "sgd", device=self.device, clip_grad_norm=self.clip_grad_norm,
                accumulate=self.accumulate)

    @cached_property
    def custom(self) -> tuple[Dimension, ...]:
        """The ``--space KEY=...`` dimensions, parsed."""
        return tuple(parse_dimension(t) for t in self.dimensions)

    def run_options(self) -> dict[str, Any]:
        """The training loop's options of every trial and final run (RunSpec keywords)."""
        return {"device": self.device, "clip_grad_norm": self.clip_grad_norm,
                "accumulate": self.accumulate, "skip_nonfinite": self.skip_nonfinite}

    @classmethod
    def create(cls, *, tasks: str | Sequence[str] = (DEFAULT_TASK,),
               optimizers: str | Sequence[str | OptimizerSpec] = SEED_OPTIMIZERS,
               **kw: Any) -> TuneConfig:
        """Check names and parse the optimizer specs once (their labels are stored).

        ``tasks`` and ``optimizers`` may be comma-separated text, as on the command line.
        """
        if isinstance(tasks, str):
            tasks = [t.strip() for t in tasks.split(",") if t.strip()]
        specs = parse_specs(optimizers)
        labels: list[str] = []
        for spec in specs:
            if len(spec.phases) != 1:
                raise UserError(
                    f"Cannot tune the multi-phase spec {spec.label()!r} (expected one optimizer "
                    "per spec)"
                )
            if spec.label() in labels:
                raise UserError(f"Optimizer {spec.label()!r} is listed twice")
            labels.append(spec.label())
        for t in tasks:
            if get_task(t).metric is None:
                raise UserError(f"Task {t!r} has no metric, and tuning selects on the validation "
                                "metric (give the Task one, e.g. metric=accuracy)")
        if len(set(tasks)) != len(tasks):
            raise UserError(f"A task is listed twice in {', '.join(tasks)}")
        cfg = cls(tasks=tuple(tasks), optimizers=tuple(labels), **kw)
        for t in tasks:  # an accuracy is a fraction: --target 90 (for 90%) would never be reached
            if get_task(t).metric is accuracy and cfg.target is not None and not 0 < cfg.target <= 1:
                raise UserError(f"Invalid target {cfg.target!r} for {t}: its metric is accuracy, a "
                                "fraction from 0 to 1 (e.g. 0.9 for 90%)")
        cfg.__dict__["specs"] = dict(zip(labels, specs))  # parsed already: not again
        for spec in specs:  # every optimizer must have a search space that builds it
            phase = spec.phases[0]
            dims = dimensions(cfg.space, phase, cfg.lr_range, cfg.custom)
            trial = trial_spec(phase, hyperparameters(phase, dims, {d.name: d.low for d in dims}))
            parse_spec(trial.label())
        return cfg

    @cached_property
    def specs(self) -> dict[str, OptimizerSpec]:
        """Label -> parsed spec of every optimizer."""
        return {label: parse_spec(label) for label in self.optimizers}

    def to_json(self) -> str:
        return json.dumps({"version": CONFIG_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TuneConfig:
        data = json.loads(text)
        version = data.pop("version", None)
        if version != CONFIG_VERSION:
            raise UserError(
                f"Study was written by a different optimlab (config version {version!r}, "
                f"expected {CONFIG_VERSION})"
            )
        for key in ("tasks", "optimizers", "dimensions"):
            if key in data:
                data[key] = tuple(data[key])
        if data.get("lr_range") is not None:
            data["lr_range"] = tuple(data["lr_range"])
        return cls(**data)

    def evaluation_seeds(self) -> list[int]:
        """The seeds of the final runs of each best configuration: never the trials' own seed
        (``seed``), so no final run repeats the trial that won the selection."""
        return [self.seed + 1 + i for i in range(self.seeds)]

    def studies(self, name: str) -> list[tuple[str, str, str]]:
        """``(study name, task, optimizer)`` of every sub-study, in a fixed order."""
        return [(substudy_name(name, t, o), t, o) for t in self.tasks for o in self.optimizers]


def substudy_name(name: str, task: str, optimizer: str) -> str:
    return f"{name}/{task}/{optimizer}"
