"""What a comparison runs: its options checked and parsed once (:class:`CompareConfig`), and its
runs, optimizer by optimizer, seed by seed (:meth:`CompareConfig.runs`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..device import resolve_device
from ..errors import UserError
from ..refs import is_reference
from ..runspec import RunSpec, check_batch_size, whole_number
from ..schedules import Schedule, parse_schedule
from ..spec import OptimizerSpec, Phase, parse_specs, warn_unused_phases
from ..tasks import DEFAULT_TASK, get_task

#: what the hyperparameters of a comparison are, said on its report and CLI table
SEED_SETTINGS = "the seeds' fixed settings (the task's default specs), untuned"
GIVEN_SETTINGS = "as given in --optimizers, untuned"


def effective_lr(phase: Phase) -> float | None:
    """The step a constant gradient ``g`` finally gets per iteration, over ``g``.

    With momentum ``beta`` (heavy-ball or velocity form) steps add up to ``lr / (1 - beta)``
    (times ``1 - dampening``): momentum 0.9 at lr 0.01 moves like plain SGD at lr 0.1. The EMA
    form (``m = beta*m + (1-beta)*g``) and Adam's bias-corrected moments keep ``lr``. None when
    the phase has no learning rate.
    """
    hp = phase.resolved()
    lr = hp.get("lr")
    if not isinstance(lr, (int, float)):
        return None
    beta = hp.get("momentum") or 0.0
    if not beta or hp.get("form") == "ema":
        return float(lr)
    return float(lr) * (1.0 - (hp.get("dampening") or 0.0)) / (1.0 - beta)


@dataclass(frozen=True)
class CompareConfig:
    """A checked comparison: every value parsed, the task's defaults filled in.

    Make one with :meth:`create`, which validates everything before anything is run or written.

    Attributes:
        task: registry name, or the ``pkg.module:attr`` reference it was given as (so that
            worker processes import it again).
        optimizers: the parsed specs, in the comparison's order.
        seeds: number of seeds; runs use seeds ``0 .. seeds-1``.
        epochs: epochs per run.
        batch_size: ``N`` or ``"full"``.
        schedule: the parsed learning-rate schedule, or None.
        device: the device the runs train on (``"cuda:0"``), None for the CPU.
        clip_grad_norm, accumulate, skip_nonfinite: the training loop's options
            (:class:`~optimlab.lab.runspec.RunSpec`).
        hyperparameters: where the hyperparameters come from, in words (the seeds' untuned
            settings, the user's, or a tuning study's choices).
    """

    task: str
    optimizers: tuple[OptimizerSpec, ...]
    seeds: int
    epochs: int
    batch_size: int | str
    schedule: Schedule | None
    device: str | None = None
    clip_grad_norm: float | None = None
    accumulate: int | None = None
    skip_nonfinite: bool = False
    hyperparameters: str = SEED_SETTINGS

    @classmethod
    def create(
        cls,
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
        hyperparameters: str | None = None,
    ) -> CompareConfig:
        """Check and parse the options of a comparison (``None``: the task's default).

        ``optimizers`` is comma-separated text as on the command line, or a sequence of spec
        texts or parsed specs. Raises :class:`UserError` with a one-line message.
        """
        t = get_task(task)
        whole_number("number of seeds", seeds)
        epochs = t.epochs if epochs is None else epochs
        whole_number("epochs", epochs)
        specs = parse_specs(t.optimizers if optimizers is None else optimizers)
        if not specs:
            raise UserError("No optimizers given (expected e.g. --optimizers sgd,adam)")
        for spec in specs:
            warn_unused_phases(spec, epochs)
        labels = [s.label() for s in specs]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise UserError(f"Optimizer listed twice: {duplicates[0]}")
        batch = check_batch_size(t.batch_size if batch_size is None else batch_size)
        if isinstance(schedule, str):
            schedule = parse_schedule(schedule)
        if hyperparameters is None:
            hyperparameters = SEED_SETTINGS if optimizers is None else GIVEN_SETTINGS
        resolved = resolve_device(device)
        key = task.strip() if is_reference(task) else t.name
        accumulate = None if accumulate == 1 else accumulate
        # RunSpec checks the loop's options
        RunSpec(key, specs[0], clip_grad_norm=clip_grad_norm, accumulate=accumulate)
        return cls(key, tuple(specs), seeds, epochs, batch, schedule,
                   None if resolved.type == "cpu" else str(resolved), clip_grad_norm, accumulate,
                   bool(skip_nonfinite), hyperparameters)

    def stored(self) -> dict[str, Any]:
        """The configuration as the results store keeps it (JSON: labels, numbers)."""
        return {
            "task": self.task,
            "optimizers": [s.label() for s in self.optimizers],
            "epochs": self.epochs,
            "seeds": self.seeds,
            "batch_size": self.batch_size,
            "schedule": self.schedule.label() if self.schedule is not None else None,
            # unset options are None, as in a store written before they existed
            "device": self.device,
            "clip_grad_norm": self.clip_grad_norm,
            "accumulate": self.accumulate,
            "skip_nonfinite": True if self.skip_nonfinite else None,
            "hyperparameters": self.hyperparameters,
        }

    def runs(self) -> list[RunSpec]:
        """The runs, optimizer by optimizer, seed by seed (the specs are not parsed again)."""
        return [
            RunSpec(self.task, spec, seed=seed, epochs=self.epochs, batch_size=self.batch_size,
                    schedule=self.schedule, device=self.device, clip_grad_norm=self.clip_grad_norm,
                    accumulate=self.accumulate, skip_nonfinite=self.skip_nonfinite)
            for spec in self.optimizers
            for seed in range(self.seeds)
        ]

