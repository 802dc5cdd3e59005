"""The task registry (the catalog's tasks, then any registered later) and the datasets loaded in
this process."""

from __future__ import annotations

from ..errors import UserError
from .base import DataOptions, Dataset, Task
from .catalog import TASKS

_TASKS: dict[str, Task] = {t.name: t for t in TASKS}
_DATASETS: dict[tuple[str, DataOptions, float | None], Dataset] = {}


def register(task: Task) -> Task:
    """Add ``task`` (or replace the task of its name); returns it."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task ``name``; unknown names raise :class:`UserError` listing the valid ones."""
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise UserError(
            f"Unknown task {name!r} (expected one of {', '.join(task_names())})"
        ) from None


def task_names() -> list[str]:
    """Registered task names: the catalog's in its order, then any registered elsewhere."""
    return list(_TASKS)


def load_dataset(task: Task, data: DataOptions, validation_fraction: float | None = None) -> Dataset:
    """The task's dataset, loaded once per process per (task, data options, validation fraction).

    With ``validation_fraction`` the dataset's test split is the held-out part of its training
    split (:meth:`Dataset.validation_split`, seed 0).
    """
    key = (task.name, data, validation_fraction)
    if key not in _DATASETS:
        if validation_fraction is None:
            _DATASETS[key] = task.load(data)
        else:
            _DATASETS[key] = load_dataset(task, data).validation_split(validation_fraction, seed=0)
    return _DATASETS[key]


def clear_data_cache() -> None:
    """Forget the datasets loaded so far (frees their memory)."""
    _DATASETS.clear()
