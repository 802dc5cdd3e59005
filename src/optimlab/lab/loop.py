"""The training loop's options, for every task: gradient accumulation, gradient clipping,
skipping non-finite steps, the device, and what a tracker is told about a run.

* **Accumulation** (``accumulate=N``): one optimizer step takes the rows of ``N`` consecutive
  micro-batches of the epoch's order; each micro-batch's mean loss is weighted by its share of
  the step's rows before ``backward()``, so the accumulated gradient is that of the step's mean
  loss, as one batch of ``N`` times the size gives (up to the order of floating-point sums).
* **Clipping** (``clip_grad_norm=X``): ``torch.nn.utils.clip_grad_norm_`` over the model's
  parameters after the backward pass(es), before the step.
* **Skipping** (``skip_nonfinite``): a step whose loss is not finite runs no backward pass and no
  ``step()``; one whose gradients hold a NaN or an infinity leaves the parameters and the
  optimizer's state as they were: optimlab's optimizers do it themselves (``skip_nonfinite=True``,
  counted in their groups' ``"skipped_steps"``), any other optimizer is checked here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..optim import entry
from .spec import Phase
from .tasks import Dataset, Task

if TYPE_CHECKING:
    from .runspec import RunSpec

#: keyword arguments of an optimizer that say how it runs, not what it computes
_IMPLEMENTATION_KEYS = {"foreach", "fused", "capturable", "differentiable", "impl", "params"}


def on_device(dataset: Dataset, device: torch.device) -> Dataset:
    """``dataset`` with its tensors on ``device`` (the same object when they are there already)."""
    if dataset.x_train.device == device:
        return dataset
    return Dataset(*(t.to(device) for t in (dataset.x_train, dataset.y_train, dataset.x_test,
                                            dataset.y_test)), source=dataset.source)


def forward_backward(loss_of: Callable[[Tensor | None], tuple[Tensor, float]], order: Tensor | None,
                     start: int, stop: int, micro: int) -> float:
    """Forward and backward passes over the rows ``order[start:stop]`` (every row when ``order``
    is None), ``micro`` rows at a time; returns the step's mean loss.

    ``loss_of(idx)`` gives the loss to back-propagate for the rows ``idx`` and its value (the
    loop's :class:`~optimlab.lab.runner.Batches` hook). The first micro-batch whose loss is not
    finite stops the step before its backward pass, and its loss is returned.
    """
    rows = stop - start
    total = 0.0
    for b in range(start, stop, micro):
        idx = None if order is None else order[b:min(b + micro, stop)]
        loss, value = loss_of(idx)
        if not math.isfinite(value):
            return value
        share = (rows if idx is None else len(idx)) / rows
        if share == 1.0:
            loss.backward()  # one micro-batch: exactly the plain loop's arithmetic
            return value
        (loss * share).backward()
        total += value * share
    return total


def optimizer_options(phase: Phase, skip_nonfinite: bool) -> dict[str, Any]:
    """Keywords for building ``phase``'s optimizer: ``skip_nonfinite=True`` where the optimizer
    takes it (optimlab's own); other optimizers are checked in the loop instead."""
    if not skip_nonfinite or phase.external:
        return {}
    try:
        accepts = "skip_nonfinite" in inspect.signature(entry(phase.name).cls.__init__).parameters
    except (TypeError, ValueError):
        accepts = False
    return {"skip_nonfinite": True} if accepts else {}


def _skipped(optimizer: torch.optim.Optimizer) -> int | None:
    counts = [g["skipped_steps"] for g in optimizer.param_groups if "skipped_steps" in g]
    return max(counts) if counts else None


def _finite_grads(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return True
    # one device sync for all gradients
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def optimizer_step(optimizer: torch.optim.Optimizer, skip_nonfinite: bool) -> bool:
    """``optimizer.step()``; False when ``skip_nonfinite`` skipped it for non-finite gradients."""
    if not skip_nonfinite:
        optimizer.step()
        return True
    before = _skipped(optimizer)
    if before is not None:  # the optimizer checks and counts itself
        optimizer.step()
        return _skipped(optimizer) == before
    if not _finite_grads(optimizer):
        optimizer.zero_grad(set_to_none=True)
        return False
    optimizer.step()
    return True


def tracked_hyperparameters(spec: RunSpec, task: Task, epochs: int, batch_size: int,
                            optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What a tracker shows of a run: its configuration, then the values its (first) optimizer
    was built with, defaults included, as plain numbers, booleans, text and tuples."""
    out: dict[str, Any] = {
        "task": task.name, "optimizer": spec.optimizer_label(), "seed": spec.seed, "epochs": epochs,
        "batch_size": batch_size,
        "schedule": spec.schedule.label() if spec.schedule is not None else "none",
        "device": spec.device or "cpu",
    }
    if spec.clip_grad_norm is not None:
        out["clip_grad_norm"] = spec.clip_grad_norm
    if spec.accumulate is not None and spec.accumulate > 1:
        out["accumulate"] = spec.accumulate
    if spec.skip_nonfinite:
        out["skip_nonfinite"] = True
    for key, value in optimizer.defaults.items():
        if key in _IMPLEMENTATION_KEYS or key in out or value is None:
            continue
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (bool, int, float, str)) or (
                isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value)):
            out[key] = value
    return out


def finite_mean(values: list[float]) -> float:
    """The mean of the finite values (``nan`` when there are none): an epoch's training loss when
    skipped steps are not averaged in."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


#: rows per forward pass when evaluating (bounds memory on the larger test sets)
EVAL_CHUNK = 4096


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean loss and the task's metric (``nan`` without one) of ``model`` on (x, y), in eval
    mode, chunked; the metric sees the outputs of the whole split at once.

    Every process of a data-parallel run evaluates the whole split (FSDP's forward needs all
    ranks), so the numbers agree on every rank.
    """
    model.eval()
    total_loss, n, outputs = 0.0, len(x), []
    try:
        if n <= EVAL_CHUNK:  # one chunk: no slicing, no concatenation (a cost of every epoch)
            out = model(x)
            total_loss = task.loss(out, y).item() * n
            outputs.append(out)
        else:
            for start in range(0, n, EVAL_CHUNK):
                xb, yb = x[start:start + EVAL_CHUNK], y[start:start + EVAL_CHUNK]
                out = model(xb)
                total_loss += task.loss(out, yb).item() * len(xb)
                outputs.append(out)
    finally:
        model.train()
    if task.metric is None:
        metric = math.nan
    else:
        metric = task.metric(outputs[0] if len(outputs) == 1 else torch.cat(outputs), y)
    return total_loss / n, float(metric)
