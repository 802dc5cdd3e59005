"""What a run is and what it measured: :class:`RunSpec` (parsed once, carried as values),
:class:`EpochRecord` and :class:`RunResult`.

A :class:`RunSpec` holds its optimizer spec and schedule parsed; text appears only where it
leaves the process: :meth:`RunSpec.run_id` (the store's and the checkpoint's key) and
:meth:`RunSpec.config` (the JSON stored with the run), both computed once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from .errors import UserError
from .limits import check_count, parse_count, short
from .schedules import Schedule, parse_schedule
from .spec import OptimizerSpec, as_spec

_BATCH_RULE = "expected a whole number >= 1, 1 for SGD, or 'full' for batch gradient descent"


def whole_number(label: str, value: Any, low: int = 1) -> int:
    """``value`` if it is an int from ``low`` to its bound (:data:`~optimlab.lab.limits.LIMITS`,
    found by ``label``; bools are refused); else :class:`UserError` naming ``label``."""
    return check_count(label, value, minimum=low)


def check_batch_size(batch_size: int | str | None) -> int | str | None:
    """A batch size as the lab carries it: ``None`` (the task's), ``"full"`` or an int >= 1.

    Text is read as a user types it (``"64"``, ``"FULL"``; ASCII digits only).
    """
    if batch_size is None:
        return None
    value: Any = batch_size
    if isinstance(batch_size, str):
        text = batch_size.strip().lower()
        if text == "full":
            return "full"
        digits = text.isascii() and text.isdigit()
        value = parse_count("batch size", text, minimum=0) if digits else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        shown = repr(short(batch_size)) if isinstance(batch_size, str) else repr(batch_size)
        raise UserError(f"Invalid batch size {shown} ({_BATCH_RULE})")
    return check_count("batch size", value)


def resolve_batch_size(batch_size: int | str | None, default: int, n_train: int) -> int:
    """The mini-batch size as a number: ``"full"`` -> ``n_train``; None -> ``default``.

    Sizes above ``n_train`` are capped at ``n_train``.
    """
    checked = check_batch_size(batch_size if batch_size is not None else default)
    return n_train if checked == "full" else min(int(checked), n_train)


def check_fraction(value: float | None) -> float | None:
    """A validation fraction: None, or a number strictly between 0 and 1."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0
    ):
        raise UserError(f"Invalid validation fraction {value!r} (expected 0 < fraction < 1)")
    return value


@dataclass(frozen=True)
class RunSpec:
    """What to run: task, optimizer spec, seed and the overrides of the task's defaults.

    Every field is checked when the spec is made; text given for ``optimizer`` or ``schedule``
    is parsed then, once.

    Attributes:
        task: registry name, e.g. ``"mnist-mlp"``.
        optimizer: the parsed optimizer spec (text is parsed with
            :func:`optimlab.lab.spec.parse_spec`).
        seed: seeds the initial weights (``torch.manual_seed``) and the data order.
        epochs: number of epochs; None: the task's default.
        batch_size: ``N``, ``"full"`` (batch gradient descent) or ``1`` (SGD); None: the task's.
        schedule: the parsed learning-rate schedule (:mod:`optimlab.lab.schedules`), e.g.
            ``cosine``; None: a constant learning rate.
        validation_fraction: if set, hold out this fraction of the training split
            (``Dataset.validation_split(fraction, seed=0)``) and evaluate on it; the test split is
            then never read.
        device: the torch device to train on (``"cuda:0"``); None: the CPU.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        accumulate: micro-batches of ``batch_size`` per optimizer step (:mod:`optimlab.lab.loop`):
            each loss is weighted by its share of the step's rows, so that the step equals one
            batch of ``accumulate`` times the size (up to the order of floating-point sums).
        skip_nonfinite: a step whose loss or gradients hold a NaN or an infinity changes nothing
            and is counted; the run does not end as diverged.
    """

    task: str
    optimizer: OptimizerSpec
    seed: int = 0
    epochs: int | None = None
    batch_size: int | str | None = None
    schedule: Schedule | None = None
    validation_fraction: float | None = None
    device: str | None = None
    clip_grad_norm: float | None = None
    accumulate: int | None = None
    skip_nonfinite: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked values replace what was given
        set_(self, "optimizer", as_spec(self.optimizer))
        if isinstance(self.schedule, str):
            set_(self, "schedule", parse_schedule(self.schedule))
        set_(self, "batch_size", check_batch_size(self.batch_size))
        set_(self, "validation_fraction", check_fraction(self.validation_fraction))
        whole_number("seed", self.seed, 0)
        if self.epochs is not None:
            whole_number("epochs", self.epochs)
        if self.accumulate is not None:
            whole_number("accumulate", self.accumulate)
        clip = self.clip_grad_norm
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                                 or not math.isfinite(clip) or clip <= 0):
            raise UserError(f"Invalid clip_grad_norm {clip!r} (expected a number > 0)")
        if self.device is not None:
            set_(self, "device", str(torch.device(self.device)))

    def optimizer_label(self) -> str:
        """The canonical text of the optimizer spec (``adam:lr=1e-3`` -> ``adam:lr=0.001``)."""
        return self.optimizer.label()

    def run_id(self) -> str:
        """Stable, readable key, e.g. ``"mnist-mlp|adam:lr=0.001|seed=0|epochs=5"``.

        It contains the task, the canonical optimizer label, the seed and every override that is
        set (epochs, batch size, schedule, validation fraction), so two specs share an id exactly
        when they describe the same run. ``|`` cannot occur inside any of the parts.
        """
        return self._run_id

    @cached_property
    def _run_id(self) -> str:
        parts = [self.task, self.optimizer.label(), f"seed={self.seed}"]
        if self.epochs is not None:
            parts.append(f"epochs={self.epochs}")
        if self.batch_size is not None:
            parts.append(f"batch={self.batch_size}")
        if self.schedule is not None:
            parts.append(f"schedule={self.schedule.label()}")
        if self.validation_fraction is not None:
            parts.append(f"validation={self.validation_fraction:g}")
        if self.device is not None and torch.device(self.device).type != "cpu":
            # the kind of device changes the numbers; which one of a kind does not
            parts.append(f"device={torch.device(self.device).type}")
        if self.clip_grad_norm is not None:
            parts.append(f"clip={self.clip_grad_norm:g}")
        if self.accumulate is not None and self.accumulate > 1:
            parts.append(f"accumulate={self.accumulate}")
        if self.skip_nonfinite:
            parts.append("skip_nonfinite")
        return "|".join(parts)

    def config(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict of text and numbers (stored with the run and inside its
        checkpoint); ``RunSpec(**spec.config())`` makes the same spec."""
        return {
            "task": self.task,
            "optimizer": self.optimizer.label(),
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "schedule": self.schedule.label() if self.schedule is not None else None,
            "validation_fraction": self.validation_fraction,
            "device": self.device,
            "clip_grad_norm": self.clip_grad_norm,
            "accumulate": self.accumulate,
            "skip_nonfinite": self.skip_nonfinite,
        }


@dataclass
class EpochRecord:
    """Metrics at the end of one epoch."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch's steps
    test_loss: float  # on the evaluation split (test, or validation when validation_fraction set)
    test_accuracy: float
    wall_time_s: float  # cumulative training wall time at the end of this epoch
    step: int  # global step count at the end of this epoch


@dataclass
class RunResult:
    """Everything one run measured.

    ``step_losses[i]`` is the training loss of global step ``i + 1``; for a diverged run the last
    entry is the non-finite loss of ``diverged_step``. ``step_times_s[i]`` is the cumulative
    training time at the end of that step.
    """

    spec: RunSpec
    status: str  # "finished" | "diverged"
    diverged_step: int | None  # the global step whose loss was NaN/Inf
    step_losses: list[float]  # training loss of every step
    epochs: list[EpochRecord]
    wall_time_s: float
    step_time_share: float  # time in optimizer.step() / total training time
    step_times_s: list[float] = field(default_factory=list)
    source: str = ""  # the dataset's description
    skipped_steps: int = 0  # steps that changed nothing (skip_nonfinite)
