"""The task registry (one module per task)."""

from __future__ import annotations

from ..errors import UserError
from .base import DataOptions, Dataset, Task, accuracy, data_fingerprint

_TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task ``name``; unknown names raise :class:`UserError` listing the valid ones."""
    _load_all()
    try:
        return _TASKS[name]
    except KeyError:
        raise UserError(
            f"Unknown task {name!r} (expected one of {', '.join(task_names())})"
        ) from None


def task_names() -> list[str]:
    """Registered task names: the catalog's in its order, then any registered elsewhere."""
    order = _load_all()
    return [n for n in order if n in _TASKS] + [n for n in _TASKS if n not in order]


def _load_all() -> tuple[str, ...]:
    # task modules register themselves on import; imported lazily to keep start-up fast
    from . import catalog

    return catalog.ORDER


__all__ = [
    "DataOptions", "Dataset", "Task", "accuracy", "data_fingerprint", "get_task", "register", "task_names",
]
