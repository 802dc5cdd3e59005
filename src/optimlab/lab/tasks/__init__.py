"""The task registry: the built-in tasks (one module each), tasks that installed packages add
under the entry-point group ``optimlab.tasks``, and tasks named by reference (``pkg.module:attr``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..errors import UserError
from ..refs import is_reference, resolve, split_reference
from .base import DataOptions, Dataset, Task, accuracy

#: the entry-point group through which an installed package adds tasks: each entry's name is
#: the task's name and its value ``pkg.module:attr`` a Task or a function returning one
ENTRY_POINT_GROUP = "optimlab.tasks"

_TASKS: dict[str, Task] = {}
_REFERENCED: dict[str, Task] = {}  # reference or entry-point name -> task, loaded once per process


def register(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task ``name``: a built-in or registered name, an entry point's name, or a reference
    ``pkg.module:attr`` to a :class:`Task` or a zero-argument function returning one.

    Raises:
        UserError: unknown name, a reference that does not import, or an object that is not a
            Task (one line each).
    """
    _load_all()
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
    """The catalog's names in its order, then any registered elsewhere, then the entry points'."""
    order = _load_all()
    names = [n for n in order if n in _TASKS] + [n for n in _TASKS if n not in order]
    return names + sorted(n for n in _entry_points() if n not in names)


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
    """Keep a task loaded by reference or entry point; its name must not shadow another task's."""
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


def _load_all() -> tuple[str, ...]:
    # task modules register themselves on import; imported lazily to keep start-up fast
    from . import catalog

    return catalog.ORDER


__all__ = [
    "ENTRY_POINT_GROUP",
    "DataOptions",
    "Dataset",
    "Task",
    "accuracy",
    "as_task",
    "get_task",
    "register",
    "task_names",
]
