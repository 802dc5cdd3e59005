"""One training run: task x optimizer spec x seed, deterministic, resumable, recorded step by step.

The contract (used by ``optimlab compare`` and ``optimlab tune``):

* :class:`RunSpec` names a run; :meth:`RunSpec.run_id` is its stable key in the store.
* :func:`run` trains it and returns a :class:`RunResult`; with a store it writes the rows of each
  epoch in one transaction, with a checkpoint folder it checkpoints each epoch and resumes from the
  last checkpoint of the same run.

Randomness: ``torch.manual_seed(seed)`` (and Python's and NumPy's generators) right before the model
is built, so every optimizer of a seed starts from the same weights; the order of the training
examples in epoch ``e`` comes from a ``torch.Generator`` seeded from ``(seed, e)``, so it is the
same for every optimizer and does not depend on where a run was resumed. The same spec gives
bit-identical numbers on CPU.

Divergence: the loss of every step is read (``loss.item()``) before the backward pass; the first
non-finite loss ends the run as ``"diverged"`` at that (1-based, global) step, before any update
with it, so no checkpoint ever holds non-finite weights.

Timing: ``wall_time_s`` counts training only (forward, backward, ``optimizer.step()``, scheduler);
evaluation, checkpoints and store writes are excluded. ``step_time_share`` is the time inside
``optimizer.step()`` over that training time.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import (
    deferred_interrupt,
    load_checkpoint,
    remove_stale_temps,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .errors import UserError
from .loop import (
    finite_mean,
    forward_backward,
    hyperparameters,
    on_device,
    optimizer_options,
    optimizer_step,
)
from .schedules import build_scheduler, parse_schedule
from .spec import OptimizerSpec, build_optimizer, parse_spec
from .tasks import DataOptions, Dataset, Task, get_task
from .trackers import TrackedRun, Tracker

if TYPE_CHECKING:
    from .store import Store
    from .trackers import TrackerConfig

__all__ = [
    "EpochRecord",
    "RunResult",
    "RunSpec",
    "checkpoint_path",
    "clear_data_cache",
    "load_dataset",
    "resolve_batch_size",
    "run",
]

#: the default data options (files looked up in the default places, no download)
_DEFAULT_DATA = DataOptions()

#: rows per forward pass when evaluating (bounds memory on the larger test sets)
EVAL_CHUNK = 4096


@dataclass(frozen=True)
class RunSpec:
    """What to run: task, optimizer spec, seed and the overrides of the task's defaults.

    Attributes:
        task: registry name, e.g. ``"mnist-mlp"``.
        optimizer: spec text, parsed with :func:`optimlab.lab.spec.parse_spec`.
        seed: seeds the initial weights (``torch.manual_seed``) and the data order.
        epochs: number of epochs; None: the task's default.
        batch_size: ``N``, ``"full"`` (batch gradient descent) or ``1`` (SGD); None: the task's.
        schedule: learning-rate schedule text (:mod:`optimlab.lab.schedules`), e.g. ``"cosine"``.
        validation_fraction: if set, hold out this fraction of the training split
            (``Dataset.validation_split(fraction, seed=0)``) and evaluate on it; the test split is
            then never read.
        device: the torch device to train on (``"cuda:0"``); None: the CPU.
        clip_grad_norm: clip the global gradient norm to this value before each step.
        accumulate: micro-batches of ``batch_size`` per optimizer step, each loss weighted by its
            share of the step's rows, so that the step equals one batch of ``accumulate`` times
            the size (up to the order of floating-point sums).
        skip_nonfinite: a step whose loss or gradients hold a NaN or an infinity changes nothing
            and is counted (optimlab's optimizers through ``skip_nonfinite=True``, others here);
            the run does not end as diverged.
    """

    task: str
    optimizer: str
    seed: int = 0
    epochs: int | None = None
    batch_size: int | str | None = None
    schedule: str | None = None
    validation_fraction: float | None = None
    device: str | None = None
    clip_grad_norm: float | None = None
    accumulate: int | None = None
    skip_nonfinite: bool = False

    def __post_init__(self) -> None:
        clip = self.clip_grad_norm
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                                 or not math.isfinite(clip) or clip <= 0):
            raise UserError(f"Invalid clip_grad_norm {clip!r} (expected a number > 0)")
        acc = self.accumulate
        if acc is not None and (isinstance(acc, bool) or not isinstance(acc, int) or acc < 1):
            raise UserError(f"Invalid accumulate {acc!r} (expected a whole number >= 1)")

    def optimizer_label(self) -> str:
        """The canonical text of the optimizer spec (``adam:lr=1e-3`` -> ``adam:lr=0.001``)."""
        return parse_spec(self.optimizer).label()

    def run_id(self) -> str:
        """Stable, readable key, e.g. ``"mnist-mlp|adam:lr=0.001|seed=0|epochs=5"``.

        It contains the task, the canonical optimizer label, the seed and every override that is
        set (epochs, batch size, schedule, validation fraction), so two specs share an id exactly
        when they describe the same run. ``|`` cannot occur inside any of the parts.
        """
        parts = [self.task, self.optimizer_label(), f"seed={self.seed}"]
        if self.epochs is not None:
            parts.append(f"epochs={self.epochs}")
        if self.batch_size is not None:
            parts.append(f"batch={self.batch_size}")
        if self.schedule is not None:
            parts.append(f"schedule={parse_schedule(self.schedule).label()}")
        if self.validation_fraction is not None:
            parts.append(f"validation={self.validation_fraction:g}")
        if self.device is not None and torch.device(self.device).type != "cpu":
            # the device type changes the numbers; which GPU of a kind does not
            parts.append(f"device={torch.device(self.device).type}")
        if self.clip_grad_norm is not None:
            parts.append(f"clip={self.clip_grad_norm:g}")
        if self.accumulate is not None and self.accumulate > 1:
            parts.append(f"accumulate={self.accumulate}")
        if self.skip_nonfinite:
            parts.append("skip_nonfinite")
        return "|".join(parts)

    def config(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (stored with the run and inside its checkpoint)."""
        return asdict(self)


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


# ---- data ---------------------------------------------------------------------------------------
_DATA_CACHE: dict[tuple[str, DataOptions, float | None], Dataset] = {}


def load_dataset(task: Task, data: DataOptions, validation_fraction: float | None = None) -> Dataset:
    """The task's dataset, loaded once per process per (task, data options, validation fraction)."""
    if validation_fraction is not None and not 0.0 < validation_fraction < 1.0:
        raise UserError(f"Invalid validation fraction {validation_fraction!r} (expected 0 < fraction < 1)")
    key = (task.name, data, validation_fraction)
    if key not in _DATA_CACHE:
        if validation_fraction is None:
            _DATA_CACHE[key] = task.dataset(data)
        else:
            _DATA_CACHE[key] = load_dataset(task, data).validation_split(validation_fraction, seed=0)
    return _DATA_CACHE[key]


def clear_data_cache() -> None:
    """Forget the datasets loaded so far (frees their memory)."""
    _DATA_CACHE.clear()


def resolve_batch_size(batch_size: int | str | None, default: int, n_train: int) -> int:
    """The mini-batch size as a number: ``"full"`` -> ``n_train``; None -> ``default``.

    Sizes above ``n_train`` are capped at ``n_train``.
    """
    if batch_size is None:
        value: Any = default
    elif isinstance(batch_size, str):
        text = batch_size.strip().lower()
        if text == "full":
            return n_train
        if not text.isdigit():
            raise UserError(
                f"Invalid batch size {batch_size!r} (expected a whole number >= 1, 1 for SGD, "
                "or 'full' for batch gradient descent)"
            )
        value = int(text)
    else:
        value = batch_size
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(
            f"Invalid batch size {batch_size!r} (expected a whole number >= 1, 1 for SGD, "
            "or 'full' for batch gradient descent)"
        )
    return min(value, n_train)


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for the data order of ``epoch`` (0-based), mixed from (seed, epoch)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def checkpoint_path(checkpoint_dir: Path, run_id: str) -> Path:
    """The checkpoint file of ``run_id``: a readable prefix plus a hash of the full id."""
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id)[:80]
    digest = sha256(run_id.encode("utf-8")).hexdigest()[:12]
    return Path(checkpoint_dir) / f"{slug}-{digest}.pt"


# ---- training -----------------------------------------------------------------------------------
@torch.no_grad()
def _evaluate(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
              ) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on (x, y), in eval mode, chunked."""
    model.eval()
    total_loss, correct, n = 0.0, 0, len(x)
    try:
        for start in range(0, n, EVAL_CHUNK):
            xb, yb = x[start:start + EVAL_CHUNK], y[start:start + EVAL_CHUNK]
            out = model(xb)
            total_loss += loss_fn(out, yb).item() * len(xb)
            correct += int((out.argmax(dim=1) == yb).sum().item())
    finally:
        model.train()
    return total_loss / n, correct / n


def _fast_forward(scheduler: Any, steps: int) -> None:
    """Advance a fresh scheduler by ``steps`` (a new phase's optimizer joins the run's schedule)."""
    with warnings.catch_warnings():
        # the optimizer has not stepped yet; the order warning does not apply here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


class _Run:
    """The mutable state of one run between epochs (what a checkpoint holds)."""

    def __init__(self, spec: RunSpec, task: Task, opt_spec: OptimizerSpec, dataset: Dataset,
                 epochs: int, batch_size: int) -> None:
        self.device = torch.device(spec.device) if spec.device is not None else torch.device("cpu")
        self.spec, self.task, self.opt_spec = spec, task, opt_spec
        self.dataset = on_device(dataset, self.device)
        self.epochs, self.batch_size = epochs, batch_size
        self.accumulate = spec.accumulate or 1
        self.n_train = len(dataset.x_train)
        self.steps_per_epoch = math.ceil(self.n_train / (batch_size * self.accumulate))
        self.total_steps = epochs * self.steps_per_epoch
        self.schedule = parse_schedule(spec.schedule) if spec.schedule is not None else None

        torch.manual_seed(spec.seed)
        random.seed(spec.seed)
        np.random.seed(spec.seed & 0xFFFFFFFF)
        self.model = task.model(spec.seed).to(self.device)
        self.model.train()
        self.phase = -1
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.epoch = 0  # completed epochs
        self.step = 0  # completed steps
        self.step_losses: list[float] = []
        self.step_times: list[float] = []
        self.records: list[EpochRecord] = []
        self.wall_time_s = 0.0
        self.step_time_s = 0.0
        self.data_generator = torch.Generator()
        self.skipped_steps = 0

    def enter_phase(self, index: int) -> None:
        """Build phase ``index``'s optimizer (and schedule, advanced to the current step)."""
        self.phase = index
        phase = self.opt_spec.phases[index]
        self.optimizer = build_optimizer(phase, self.model.parameters(),
                                         **optimizer_options(phase, self.spec.skip_nonfinite))
        self.scheduler = None
        if self.schedule is not None:
            self.scheduler = build_scheduler(
                self.schedule, self.optimizer, steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
            )
            _fast_forward(self.scheduler, self.step)

    # -- checkpoints --
    def state(self) -> dict[str, Any]:
        return {
            "run_id": self.spec.run_id(),
            "config": self.spec.config(),
            "epoch": self.epoch,
            "step": self.step,
            "phase": self.phase,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng_state(self.data_generator),
            "step_losses": torch.tensor(self.step_losses, dtype=torch.float64),
            "step_times": torch.tensor(self.step_times, dtype=torch.float64),
            "epochs": [asdict(r) for r in self.records],
            "wall_time_s": self.wall_time_s,
            "step_time_s": self.step_time_s,
            "skipped_steps": self.skipped_steps,
        }

    def restore(self, payload: dict[str, Any], path: Path) -> None:
        if payload.get("run_id") != self.spec.run_id():
            raise UserError(
                f"Checkpoint {path} belongs to run {payload.get('run_id')!r}, not {self.spec.run_id()!r}"
            )
        self.model.load_state_dict(payload["model"])
        self.step = int(payload["step"])
        self.epoch = int(payload["epoch"])
        # optimizer and scheduler are built first (the scheduler writes initial_lr into the groups),
        # then both states are loaded over them
        self.phase = int(payload["phase"])
        phase = self.opt_spec.phases[self.phase]
        self.optimizer = build_optimizer(phase, self.model.parameters(),
                                         **optimizer_options(phase, self.spec.skip_nonfinite))
        self.scheduler = None
        if self.schedule is not None:
            self.scheduler = build_scheduler(
                self.schedule, self.optimizer, steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
            )
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.step_losses = payload["step_losses"].tolist()
        self.step_times = payload["step_times"].tolist()
        self.records = [EpochRecord(**r) for r in payload["epochs"]]
        self.wall_time_s = float(payload["wall_time_s"])
        self.step_time_s = float(payload["step_time_s"])
        self.skipped_steps = int(payload.get("skipped_steps", 0))
        set_rng_state(payload["rng"], self.data_generator)

    def share(self) -> float:
        return self.step_time_s / self.wall_time_s if self.wall_time_s > 0 else 0.0


def run(
    spec: RunSpec,
    *,
    data: DataOptions = _DEFAULT_DATA,
    store: Store | None = None,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    trackers: TrackerConfig | None = None,
    tracker_name: str | None = None,
) -> RunResult:
    """Train ``spec`` and return what it measured.

    Args:
        spec: the run.
        data: where the task finds its files.
        store: if given, the run's row, and each epoch's step and epoch rows, are written to it
            (one transaction per epoch); rows past the checkpoint the run resumes from are replaced.
        checkpoint_dir: if given, a checkpoint is written atomically at the end of each epoch but
            the last, and an existing checkpoint of the same run is resumed from; the checkpoint
            is deleted when the run ends.
        on_epoch: called with each epoch's record after its evaluation and before it is
            checkpointed or stored; an exception it raises propagates (e.g. ``optuna.TrialPruned``)
            and the run is then not stored as finished.
        progress: called as ``progress(steps_done, total_steps)`` after every step.
        trackers: if given, the run is logged to these trackers (:mod:`optimlab.lab.trackers`) as
            it goes, as ``tracker_name`` (default ``<task>/<optimizer>/seed=<seed>``).

    Raises:
        UserError: unknown task, optimizer, schedule, bad batch size or epochs, missing data.
    """
    task = get_task(spec.task)
    opt_spec = parse_spec(spec.optimizer)
    if spec.schedule is not None:
        parse_schedule(spec.schedule)
    epochs = task.epochs if spec.epochs is None else spec.epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"Invalid epochs {spec.epochs!r} (expected a whole number >= 1)")
    dataset = load_dataset(task, data, spec.validation_fraction)
    batch_size = resolve_batch_size(spec.batch_size, task.batch_size, len(dataset.x_train))
    state = _Run(spec, task, opt_spec, dataset, epochs, batch_size)
    run_id = spec.run_id()

    ckpt = checkpoint_path(checkpoint_dir, run_id) if checkpoint_dir is not None else None
    if ckpt is not None:
        remove_stale_temps(ckpt)
    if ckpt is not None and ckpt.is_file():
        state.restore(load_checkpoint(ckpt), ckpt)
    else:
        state.enter_phase(opt_spec.phase_at(0))

    if store is not None:
        store.begin_run(run_id, task=spec.task, optimizer=opt_spec.label(), seed=spec.seed,
                        config=spec.config(), source=dataset.source)
        store.truncate(run_id, after_step=state.step, after_epoch=state.epoch)
        # replay what the checkpoint holds: its last epoch's rows may not have been committed
        store.write_progress(
            run_id,
            steps=zip(range(1, state.step + 1), state.step_losses, state.step_times),
            epochs=_stored(state.records), wall_time_s=state.wall_time_s,
            step_time_share=state.share() if state.step else None,
        )

    tracker = None
    if trackers is not None:
        tracker = trackers.open()
        name = tracker_name or f"{task.name}/{opt_spec.label()}/seed={spec.seed}"
        tracker.on_run_start(TrackedRun(run_id, name, resume_step=state.step),
                             _tracked_hyperparameters(state, task))
    status = "failed"
    try:
        result = _train(state, store, ckpt, on_epoch, progress, tracker)
        status = result.status
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except Exception as e:
        status = "pruned" if type(e).__name__ == "TrialPruned" else "failed"
        raise
    finally:
        if tracker is not None:
            tracker.on_run_end(status)
    if ckpt is not None:
        with contextlib.suppress(FileNotFoundError):
            ckpt.unlink()
    return result


def _tracked_hyperparameters(state: _Run, task: Task) -> dict[str, Any]:
    """What a tracker shows of a run: its configuration, then the first optimizer's values."""
    spec = state.spec
    out: dict[str, Any] = {
        "task": task.name, "optimizer": state.opt_spec.label(), "seed": spec.seed,
        "epochs": state.epochs, "batch_size": state.batch_size,
        "schedule": state.schedule.label() if state.schedule is not None else "none",
        "device": str(state.device),
    }
    if spec.clip_grad_norm is not None:
        out["clip_grad_norm"] = spec.clip_grad_norm
    if state.accumulate > 1:
        out["accumulate"] = state.accumulate
    if spec.skip_nonfinite:
        out["skip_nonfinite"] = True
    return out | {k: v for k, v in hyperparameters(state.optimizer).items() if k not in out}


def _stored(records: list[EpochRecord]) -> list[Any]:
    from .store import StoredEpoch

    return [StoredEpoch(r.epoch, r.train_loss, r.test_loss, r.test_accuracy, r.wall_time_s, r.step)
            for r in records]


def _train(
    state: _Run,
    store: Store | None,
    ckpt: Path | None,
    on_epoch: Callable[[EpochRecord], None] | None,
    progress: Callable[[int, int], None] | None,
    tracker: Tracker | None = None,
) -> RunResult:
    spec, task, data = state.spec, state.task, state.dataset
    run_id = spec.run_id()
    model, loss_fn = state.model, task.loss
    x_train, y_train = data.x_train, data.y_train
    n, bs = state.n_train, state.batch_size
    rows_per_step = bs * state.accumulate
    perf = time.perf_counter
    diverged_step: int | None = None

    while state.epoch < state.epochs and diverged_step is None:
        epoch0 = state.epoch
        phase = state.opt_spec.phase_at(epoch0)
        if phase != state.phase:
            state.enter_phase(phase)
        optimizer, scheduler = state.optimizer, state.scheduler
        first_step = state.step
        if bs >= n:
            order = None
        else:
            state.data_generator.manual_seed(_epoch_seed(spec.seed, epoch0))
            order = torch.randperm(n, generator=state.data_generator)
        epoch_losses: list[float] = []
        epoch_times: list[float] = []
        wall_before = state.wall_time_s
        step_time = 0.0
        start = perf()
        for b in range(0, n, rows_per_step):
            optimizer.zero_grad(set_to_none=True)
            value = forward_backward(model, loss_fn, x_train, y_train, order, b,
                                     min(b + rows_per_step, n), bs)
            if not math.isfinite(value) and not spec.skip_nonfinite:
                epoch_losses.append(value)
                epoch_times.append(wall_before + perf() - start)
                diverged_step = first_step + len(epoch_losses)
                if tracker is not None:
                    tracker.on_step(diverged_step, value)
                break
            if math.isfinite(value):
                if spec.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip_grad_norm)
                t0 = perf()
                stepped = optimizer_step(optimizer, spec.skip_nonfinite)
                step_time += perf() - t0
            else:  # skip_nonfinite: no backward pass ran, nothing to step
                optimizer.zero_grad(set_to_none=True)
                stepped = False
            state.skipped_steps += not stepped
            if scheduler is not None:
                scheduler.step()
            epoch_losses.append(value)
            epoch_times.append(wall_before + perf() - start)
            if tracker is not None:
                tracker.on_step(first_step + len(epoch_losses), value)
            if progress is not None:
                progress(first_step + len(epoch_losses), state.total_steps)
        state.wall_time_s = wall_before + perf() - start
        state.step_time_s += step_time
        state.step = first_step + len(epoch_losses)
        state.step_losses.extend(epoch_losses)
        state.step_times.extend(epoch_times)
        new_steps = list(zip(range(first_step + 1, state.step + 1), epoch_losses, epoch_times))

        if diverged_step is not None:
            if store is not None:
                with deferred_interrupt():
                    store.write_progress(run_id, steps=new_steps, epochs=[],
                                         wall_time_s=state.wall_time_s, step_time_share=state.share(),
                                         status="diverged", diverged_step=diverged_step)
            break

        test_loss, test_accuracy = _evaluate(model, loss_fn, data.x_test, data.y_test)
        record = EpochRecord(
            epoch=epoch0 + 1, train_loss=finite_mean(epoch_losses) if spec.skip_nonfinite else
            sum(epoch_losses) / len(epoch_losses), test_loss=test_loss,
            test_accuracy=test_accuracy, wall_time_s=state.wall_time_s, step=state.step,
        )
        if tracker is not None:
            tracker.on_epoch(record.epoch, record.step,
                             {"loss/test": test_loss, "accuracy/test": test_accuracy})
        if on_epoch is not None:
            on_epoch(record)
        state.records.append(record)
        state.epoch = epoch0 + 1
        last = state.epoch == state.epochs
        with deferred_interrupt():
            # checkpoint first, then the rows: a crash in between replays the rows on resume
            if ckpt is not None and not last:
                save_checkpoint(ckpt, state.state())
            if store is not None:
                store.write_progress(run_id, steps=new_steps, epochs=_stored([record]),
                                     wall_time_s=state.wall_time_s, step_time_share=state.share(),
                                     status="finished" if last else "running")

    return RunResult(
        spec=spec,
        status="diverged" if diverged_step is not None else "finished",
        diverged_step=diverged_step,
        step_losses=list(state.step_losses),
        epochs=list(state.records),
        wall_time_s=state.wall_time_s,
        step_time_share=state.share(),
        step_times_s=list(state.step_times),
        source=data.source,
        skipped_steps=state.skipped_steps,
    )
