"""The task registry (one module per task)."""

from __future__ import annotations

from ..errors import UserError
from .base import DataOptions, Dataset, Task, accuracy

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
        raise UserError(f"Unknown task {name!r} (expected one of {', '.join(_TASKS)})") from None


def task_names() -> list[str]:
    _load_all()
    return list(_TASKS)


def _load_all() -> None:
    # task modules register themselves on import; imported lazily to keep start-up fast
    from . import catalog  # noqa: F401


__all__ = ["DataOptions", "Dataset", "Task", "accuracy", "get_task", "register", "task_names"]
