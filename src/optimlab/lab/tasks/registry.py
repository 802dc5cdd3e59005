"""The task registry and the datasets loaded in this process.

A task is found by name among the catalog's tasks and those registered later, then among the
tasks that installed packages add under the entry-point group ``optimlab.tasks``; or by reference
``pkg.module:attr`` to a :class:`Task` or a zero-argument function returning one
(:mod:`optimlab.lab.refs`: imported, never evaluated). Tasks loaded by entry point or reference
are kept for the rest of the process.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..errors import UserError
from ..refs import is_reference, resolve, split_reference
from .base import DataOptions, Dataset, Task
from .catalog import TASKS

#: the entry-point group through which an installed package adds tasks: each entry's name is
#: the task's name and its value ``pkg.module:attr`` a Task or a function returning one
ENTRY_POINT_GROUP = "optimlab.tasks"

_TASKS: dict[str, Task] = {t.name: t for t in TASKS}
_REFERENCED: dict[str, Task] = {}  # reference or entry-point name -> task
_DATASETS: dict[tuple[str, DataOptions, float | None], Dataset] = {}


def register(task: Task) -> Task:
    """Add ``task`` (or replace the task of its name); returns it."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task ``name``: a registered name, an entry point's name, or a reference
    ``pkg.module:attr``.

    Raises:
        UserError: unknown name, a reference that does not import, or an object that is not a
            Task (one line each).
    """
    if not isinstance(name, str):
        raise UserError(f"Unknown task {name!r} (expected one of {', '.join(task_names())})")
    if name in _TASKS:
        return _TASKS[name]
    if name in _REFERENCED:
        return _REFERENCED[name]
    if is_reference(name):
        return _remember(name, as_task(resolve(name, "task"), name))
    ep = _entry_points().get(name)
    if ep is not None:
        return _remember(name, _load_entry_point(ep))
    if ":" in name:
        split_reference(name, "task")  # says what a reference looks like
    raise UserError(
        f"Unknown task {name!r} (expected one of {', '.join(task_names())}, or a reference "
        "package.module:attribute to an optimlab.lab.Task)"
    )


def task_names() -> list[str]:
    """The catalog's names in its order, then any registered later, then the entry points'."""
    return list(_TASKS) + sorted(n for n in _entry_points() if n not in _TASKS)


def as_task(obj: Any, where: str) -> Task:
    """``obj`` if it is a :class:`Task`, else what calling it without arguments returns, if that
    is a Task; anything else is a :class:`UserError` naming ``where`` it came from."""
    if isinstance(obj, Task):
        return obj
    if callable(obj) and not isinstance(obj, type) and _takes_no_arguments(obj):
        try:
            made = obj()
        except Exception as e:  # the user's factory failed: one line, the cause kept
            raise UserError(f"Building task {where!r} failed: {type(e).__name__}: {e}") from e
        if isinstance(made, Task):
            return made
        raise UserError(f"{where} returned {type(made).__name__}, not an optimlab.lab.Task")
    raise UserError(
        f"{where} is {type(obj).__name__}, not an optimlab.lab.Task or a function of no arguments "
        "returning one"
    )


def _takes_no_arguments(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in params)


def _remember(key: str, task: Task) -> Task:
    """Keep a task loaded by reference or entry point; its name must not shadow another task's
    (datasets are cached by task name)."""
    if any(t.name == task.name and t is not task for t in (*_TASKS.values(), *_REFERENCED.values())):
        raise UserError(f"Task {key!r} is named {task.name!r}, which another task already uses "
                        "(give it another name)")
    _REFERENCED[key] = task
    return task


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: EntryPoint) -> Task:
    where = f"entry point {ep.name!r} ({ep.value})"
    if not is_reference(ep.value):
        raise UserError(f"Invalid {where}: expected package.module:attribute")
    task = as_task(resolve(ep.value, "task"), where)
    if task.name != ep.name:
        raise UserError(f"The {where} names a task called {task.name!r} (expected {ep.name!r})")
    return task


def load_dataset(task: Task, data: DataOptions, validation_fraction: float | None = None) -> Dataset:
    """The task's dataset, loaded once per process per (task, data options, validation fraction).

    With ``validation_fraction`` the dataset's test split is the held-out part of its training
    split (:meth:`Dataset.validation_split`, seed 0).
    """
    key = (task.name, data, validation_fraction)
    if key not in _DATASETS:
        if validation_fraction is None:
            _DATASETS[key] = task.dataset(data)
        else:
            _DATASETS[key] = load_dataset(task, data).validation_split(validation_fraction, seed=0)
    return _DATASETS[key]


def clear_data_cache() -> None:
    """Forget the datasets loaded so far (frees their memory)."""
    _DATASETS.clear()
