"""The lab's tasks: the contract (:mod:`.base`), one module per task, the catalog and the registry."""

from __future__ import annotations

from .base import DataOptions, Dataset, Task, accuracy, data_fingerprint
from .catalog import DEFAULT_TASK
from .registry import (
    ENTRY_POINT_GROUP,
    as_task,
    clear_data_cache,
    get_task,
    load_dataset,
    register,
    task_names,
)

__all__ = [
    "DEFAULT_TASK",
    "ENTRY_POINT_GROUP",
    "DataOptions",
    "Dataset",
    "Task",
    "accuracy",
    "as_task",
    "clear_data_cache",
    "data_fingerprint",
    "get_task",
    "load_dataset",
    "register",
    "task_names",
]
