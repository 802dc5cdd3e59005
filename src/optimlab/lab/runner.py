"""One training run: task x optimizer spec x seed, deterministic, resumable, recorded step by step.

The contract (used by ``optimlab compare`` and ``optimlab tune``):

* :class:`~optimlab.lab.runspec.RunSpec` names a run (parsed once); its ``run_id()`` is its
  stable key in the store.
* :func:`run` trains it and returns a :class:`~optimlab.lab.runspec.RunResult`; with a store
  and a checkpoint folder it saves both together every ``checkpoint_every`` seconds, at its end
  and on Ctrl-C (:mod:`optimlab.lab.bookkeeping`), and resumes from the last checkpoint of the
  same run.

This is the lab's one training loop. How each step's loss is computed is a :class:`Batches`
hook: here, the whole mini-batch in this process; :mod:`optimlab.lab.distributed` drives the same
loop with a hook that takes the rank's shard of every batch and all-reduces the loss.

Randomness: ``torch.manual_seed(seed)`` (and Python's and NumPy's generators) right before the model
is built, so every optimizer of a seed starts from the same weights; the order of the training
examples in epoch ``e`` comes from a ``torch.Generator`` seeded from ``(seed, e)``, so it is the
same for every optimizer and does not depend on where a run was resumed. The same spec gives
bit-identical numbers on CPU.

Divergence: the loss of every step is read (``loss.item()``) before the backward pass; the first
non-finite loss ends the run as ``"diverged"`` at that (1-based, global) step, before any update
with it, so no checkpoint ever holds non-finite weights. With ``skip_nonfinite`` such a step (and
one whose gradients are not finite) changes nothing instead and is counted
(``RunResult.skipped_steps``); accumulation, clipping and the device are the loop's other
options (:mod:`optimlab.lab.loop`). Trackers (:mod:`optimlab.lab.trackers`) see every step and
epoch as the run goes.

Evaluation (:func:`optimlab.lab.loop.evaluate`): the evaluation split at the end of every epoch,
and with ``evaluate_every=N`` after every N-th step too; evaluating changes no training number.

Timing: ``wall_time_s`` counts training only (forward, backward, ``optimizer.step()``, scheduler);
evaluation, checkpoints and store writes are excluded. ``step_time_share`` is the time inside
``optimizer.step()`` over that training time.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .bookkeeping import CHECKPOINT_EVERY_S, Saver, StopRequest, check_interval, stop_requests
from .checkpoint import checkpoint_path, load_checkpoint, rng_state, set_rng_state
from .errors import UserError
from .files import remove_stale_temps
from .loop import (
    evaluate,
    finite_mean,
    forward_backward,
    on_device,
    optimizer_options,
    optimizer_step,
    tracked_hyperparameters,
)
from .runspec import EpochRecord, Evaluation, RunResult, RunSpec, resolve_batch_size, whole_number
from .schedules import build_scheduler
from .spec import Phase, build_optimizer
from .tasks import DataOptions, Dataset, Task, get_task, load_dataset
from .trackers import TrackedRun, Tracker

if TYPE_CHECKING:
    from .store import Store
    from .trackers import TrackerConfig

__all__ = ["Batches", "run", "train"]


class Batches:
    """How the loop computes each step's loss: the whole mini-batch, in this process, on
    ``device`` (default: where the model and data are, the CPU).

    :mod:`optimlab.lab.distributed` subclasses it to train data-parallel; every method is a
    point where that path differs.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else None

    def model(self, model: nn.Module) -> nn.Module:
        """The model to train (moved, cast or wrapped); called once, before any optimizer."""
        return model.to(self.device) if self.device is not None else model

    def data(self, dataset: Dataset) -> Dataset:
        """The dataset to train and evaluate on (moved or cast)."""
        return on_device(dataset, self.device) if self.device is not None else dataset

    def phase(self, phase: Phase) -> Phase:
        """The phase to build the optimizer of (a path may need other keywords)."""
        return phase

    def loss(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
             y: Tensor, idx: Tensor | None) -> tuple[Tensor, float]:
        """The loss to back-propagate for the rows ``idx`` (None: every row), and its value."""
        xb, yb = (x, y) if idx is None else (x[idx], y[idx])
        loss = loss_fn(model(xb), yb)
        return loss, loss.item()


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for the data order of ``epoch`` (0-based), mixed from (seed, epoch)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _fast_forward(scheduler: Any, steps: int) -> None:
    """Advance a fresh scheduler by ``steps`` (a new phase's optimizer joins the run's schedule)."""
    with warnings.catch_warnings():
        # the optimizer has not stepped yet; the order warning does not apply here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


class _Run:
    """The mutable state of one run between epochs (what a checkpoint holds)."""

    def __init__(self, spec: RunSpec, task: Task, dataset: Dataset, batches: Batches) -> None:
        self.spec, self.task, self.batches = spec, task, batches
        self.dataset = batches.data(dataset)
        self.epochs = task.epochs if spec.epochs is None else spec.epochs
        self.n_train = len(dataset.x_train)
        self.batch_size = resolve_batch_size(spec.batch_size, task.batch_size, self.n_train)
        self.accumulate = spec.accumulate or 1
        self.steps_per_epoch = math.ceil(self.n_train / (self.batch_size * self.accumulate))
        self.total_steps = self.epochs * self.steps_per_epoch

        torch.manual_seed(spec.seed)
        random.seed(spec.seed)
        np.random.seed(spec.seed & 0xFFFFFFFF)
        model = task.model(spec.seed)
        model.train()
        self.model = batches.model(model)
        self.phase = -1
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.epoch = 0  # completed epochs
        self.step = 0  # completed steps
        self.step_losses: list[float] = []
        self.step_times: list[float] = []
        self.records: list[EpochRecord] = []
        self.evaluations: list[Evaluation] = []
        self.wall_time_s = 0.0
        self.step_time_s = 0.0
        self.data_generator = torch.Generator()
        self.skipped_steps = 0

    def _build(self, index: int) -> None:
        """Phase ``index``'s optimizer and the schedule over it (torch writes ``initial_lr``)."""
        self.phase = index
        phase = self.batches.phase(self.spec.optimizer.phases[index])
        self.optimizer = build_optimizer(phase, self.model.parameters(),
                                         **optimizer_options(phase, self.spec.skip_nonfinite))
        self.scheduler = None
        if self.spec.schedule is not None:
            self.scheduler = build_scheduler(
                self.spec.schedule, self.optimizer, steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
            )

    def enter_phase(self, index: int) -> None:
        """Build phase ``index``'s optimizer (and schedule, advanced to the current step)."""
        self._build(index)
        if self.scheduler is not None:
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
            "evaluations": [asdict(e) for e in self.evaluations],
            "wall_time_s": self.wall_time_s,
            "step_time_s": self.step_time_s,
            "skipped_steps": self.skipped_steps,
        }

    def restore(self, payload: dict[str, Any], path: Path) -> None:
        """Load a checkpoint of this run.

        Raises:
            UserError: the checkpoint is another run's, or does not fit this run's model,
                optimizer or schedule (shapes, keys); the message says how to restart the run.
        """
        if payload.get("run_id") != self.spec.run_id():
            raise UserError(
                f"Checkpoint {path} belongs to run {payload.get('run_id')!r}, not "
                f"{self.spec.run_id()!r}; delete {path} to restart that run"
            )
        try:
            self._restore(payload)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            # torch's size-mismatch report runs over many lines: its first line names the problem
            lines = [s.strip() for s in str(e).strip().splitlines() if s.strip()]
            detail = " ".join(lines[:2])[:300] if lines else type(e).__name__
            raise UserError(
                f"Checkpoint {path} does not fit run {self.spec.run_id()!r} ({detail}); "
                f"delete {path} to restart that run"
            ) from None

    def _restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.step = int(payload["step"])
        self.epoch = int(payload["epoch"])
        # optimizer and scheduler are built first, then both states are loaded over them
        self._build(int(payload["phase"]))
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.step_losses = payload["step_losses"].tolist()
        self.step_times = payload["step_times"].tolist()
        self.records = [EpochRecord(**r) for r in payload["epochs"]]
        self.evaluations = [Evaluation(**e) for e in payload.get("evaluations", [])]
        self.wall_time_s = float(payload["wall_time_s"])
        self.step_time_s = float(payload["step_time_s"])
        self.skipped_steps = int(payload.get("skipped_steps", 0))
        set_rng_state(payload["rng"], self.data_generator)

    def share(self) -> float:
        return self.step_time_s / self.wall_time_s if self.wall_time_s > 0 else 0.0


def train(spec: RunSpec, *, data: DataOptions | None = None, batches: Batches | None = None,
          ) -> tuple[RunResult, nn.Module]:
    """Train ``spec`` from its first step with the loop's ``batches`` hook, storing nothing.

    Returns:
        The result and the trained model (as ``batches`` wrapped it).
    """
    state = _start(spec, data, batches or Batches(spec.device))
    state.enter_phase(spec.optimizer.phase_at(0))
    return _train(state, Saver(spec.run_id(), None, None, 0.0), StopRequest(), None, None), state.model


def _start(spec: RunSpec, data: DataOptions | None, batches: Batches) -> _Run:
    task = get_task(spec.task)
    dataset = load_dataset(task, data or DataOptions(), spec.validation_fraction)
    return _Run(spec, task, dataset, batches)


def run(
    spec: RunSpec,
    *,
    data: DataOptions | None = None,
    store: Store | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_S,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    evaluate_every: int | None = None,
    test_at_end: bool = False,
    trackers: TrackerConfig | None = None,
    tracker_name: str | None = None,
) -> RunResult:
    """Train ``spec`` and return what it measured.

    Args:
        spec: the run.
        data: where the task finds its files (default: the default places, no download).
        store: if given, the run's row, its step rows and its epoch rows are written to it, in
            one transaction per save; rows past the checkpoint the run resumes from are replaced.
        checkpoint_dir: if given, a checkpoint is written atomically at each save but the last,
            and an existing checkpoint of the same run is resumed from; the checkpoint is deleted
            when the run ends.
        checkpoint_every: seconds between saves (checkpoint, then the rows since the last save);
            0 saves after every epoch. A run also saves when it ends and when Ctrl-C stops it at
            the end of an epoch (:mod:`optimlab.lab.bookkeeping`).
        on_epoch: called with each epoch's record after its evaluation and before it is
            checkpointed or stored; an exception it raises propagates (e.g. ``optuna.TrialPruned``)
            and the run is then not stored as finished.
        progress: called as ``progress(steps_done, total_steps)`` after every step.
        evaluate_every: also evaluate the evaluation split after every ``evaluate_every``-th
            step (``RunResult.evaluations``, with the end of every epoch).
        test_at_end: when the run trained with a validation split held out, also test the
            trained model once on the task's test split (``RunResult.final_test``).
        trackers: if given, the run is logged to these trackers (:mod:`optimlab.lab.trackers`) as
            it goes, as ``tracker_name`` (default ``<task>/<optimizer>/seed=<seed>``).

    Raises:
        UserError: unknown task, missing data, a checkpoint of another run, a negative
            ``checkpoint_every``.
        KeyboardInterrupt: on Ctrl-C, once the epoch in progress is saved.
    """
    if evaluate_every is not None:
        whole_number("evaluate_every", evaluate_every)
    checkpoint_every = check_interval(checkpoint_every)
    state = _start(spec, data, Batches(spec.device))
    run_id = spec.run_id()
    ckpt = checkpoint_path(checkpoint_dir, run_id) if checkpoint_dir is not None else None
    if ckpt is not None:
        remove_stale_temps(ckpt)
    if ckpt is not None and ckpt.is_file():
        state.restore(load_checkpoint(ckpt), ckpt)
    else:
        state.enter_phase(spec.optimizer.phase_at(0))

    def begin() -> None:
        assert store is not None
        store.begin_run(run_id, task=spec.task, optimizer=spec.optimizer_label(), seed=spec.seed,
                        config=spec.config(), source=state.dataset.source)
        store.truncate(run_id, after_step=resumed_step, after_epoch=resumed_epoch)
        # the checkpoint's rows again: a crash may have come between it and their commit
        store.write_progress(
            run_id, steps=zip(range(1, resumed_step + 1), state.step_losses, state.step_times),
            epochs=state.records[:resumed_epoch], wall_time_s=0.0, step_time_share=None,
        )  # the totals are the save's, written next in the same transaction

    resumed_step, resumed_epoch = state.step, state.epoch
    saver = Saver(run_id, store, ckpt, checkpoint_every, begin=begin if store is not None else None)
    tracker = None
    if trackers is not None:
        tracker = trackers.open()
        name = tracker_name or f"{state.task.name}/{spec.optimizer_label()}/seed={spec.seed}"
        tracker.on_run_start(TrackedRun(run_id, name, resume_step=state.step), tracked_hyperparameters(
            spec, state.task, state.epochs, state.batch_size, state.optimizer))
    status = "failed"
    try:
        with stop_requests() if saver.active else contextlib.nullcontext(StopRequest()) as stop:
            result = _train(state, saver, stop, on_epoch, progress, tracker, evaluate_every)
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
    if stop.requested:  # the run ended in the epoch Ctrl-C came in: it is saved, stop the caller
        stop.deliver()
    if test_at_end and result.status == "finished":
        test = state.batches.data(load_dataset(state.task, data or DataOptions(), None))
        result.final_test = evaluate(state.model, state.task, test.x_test, test.y_test)
    return result


def _train(
    state: _Run,
    saver: Saver,
    stop: StopRequest,
    on_epoch: Callable[[EpochRecord], None] | None,
    progress: Callable[[int, int], None] | None,
    tracker: Tracker | None = None,
    evaluate_every: int | None = None,
) -> RunResult:
    spec, task, data, batches = state.spec, state.task, state.dataset, state.batches
    model, loss_fn = state.model, task.loss
    x_train, y_train = data.x_train, data.y_train
    n, bs = state.n_train, state.batch_size
    rows_per_step = bs * state.accumulate

    def loss_of(idx: Tensor | None) -> tuple[Tensor, float]:
        return batches.loss(model, loss_fn, x_train, y_train, idx)
    perf = time.perf_counter
    diverged_step: int | None = None

    while state.epoch < state.epochs and diverged_step is None:
        epoch0 = state.epoch
        phase = spec.optimizer.phase_at(epoch0)
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
        paused = 0.0  # seconds spent evaluating mid-epoch: not training time
        start = perf()
        for b in range(0, n, rows_per_step):
            optimizer.zero_grad(set_to_none=True)
            value = forward_backward(loss_of, order, b, min(b + rows_per_step, n), bs)
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
            else:  # skip_nonfinite: no backward pass ran, there is nothing to step
                optimizer.zero_grad(set_to_none=True)
                stepped = False
            state.skipped_steps += not stepped
            if scheduler is not None:
                scheduler.step()
            epoch_losses.append(value)
            epoch_times.append(wall_before + perf() - start - paused)
            step = first_step + len(epoch_losses)
            if tracker is not None:
                tracker.on_step(step, value)
            if evaluate_every is not None and step % evaluate_every == 0 and b + rows_per_step < n:
                t1 = perf()
                v_loss, v_acc = evaluate(model, task, data.x_test, data.y_test)
                state.evaluations.append(Evaluation(step, v_loss, v_acc, epoch_times[-1]))
                paused += perf() - t1
            if progress is not None:
                progress(first_step + len(epoch_losses), state.total_steps)
        state.wall_time_s = wall_before + perf() - start - paused
        state.step_time_s += step_time
        state.step = first_step + len(epoch_losses)
        state.step_losses.extend(epoch_losses)
        state.step_times.extend(epoch_times)
        new_steps = list(zip(range(first_step + 1, state.step + 1), epoch_losses, epoch_times))

        if diverged_step is not None:
            saver.add(new_steps, None)
            saver.save(None, wall_time_s=state.wall_time_s, step_time_share=state.share(),
                       status="diverged", diverged_step=diverged_step,
                       skipped_steps=state.skipped_steps)
            break

        test_loss, test_accuracy = evaluate(model, task, data.x_test, data.y_test)
        record = EpochRecord(
            epoch=epoch0 + 1, train_loss=finite_mean(epoch_losses) if spec.skip_nonfinite else
            sum(epoch_losses) / len(epoch_losses), test_loss=test_loss,
            test_accuracy=test_accuracy, wall_time_s=state.wall_time_s, step=state.step,
        )
        if evaluate_every is not None:
            state.evaluations.append(Evaluation(state.step, test_loss, test_accuracy,
                                                state.wall_time_s))
        if tracker is not None:
            tracker.on_epoch(record.epoch, record.step,
                             {"loss/test": test_loss, "accuracy/test": test_accuracy})
        if on_epoch is not None:
            on_epoch(record)
        state.records.append(record)
        state.epoch = epoch0 + 1
        saver.add(new_steps, record)
        last = state.epoch == state.epochs
        if saver.active and (last or stop.requested or saver.due()):
            # checkpoint first, then the rows: a crash in between replays the rows on resume
            saver.save(None if last else state.state, wall_time_s=state.wall_time_s,
                       step_time_share=state.share(), status="finished" if last else "running",
                       skipped_steps=state.skipped_steps)
        if stop.requested and not last:
            stop.deliver()

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
        evaluations=list(state.evaluations),
    )
