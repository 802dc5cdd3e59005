"""Fixtures every lab test may use: one torch thread, the command line, temporary tasks.

This folder is on ``sys.path`` for every test under it (pytest inserts a conftest's folder), so
``from fixtures import write_task_data`` works from the sub-folders too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from optimlab.lab import cli
from optimlab.lab.tasks import Task, registry


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: torch's intra-op threads only contend with the other test worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
            ) -> Callable[..., tuple[int, str, str]]:
    """``code, out, err = run_cli("compare", "--task", ...)``: ``optimlab ARGS`` in this process."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["optimlab", *args])
        threads = torch.get_num_threads()
        try:
            cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            torch.set_num_threads(threads)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def add_task(monkeypatch: pytest.MonkeyPatch) -> Callable[[Task], Task]:
    """``add_task(task)``: register ``task`` until the test ends (the registry stays clean for
    the other tests of this process)."""

    def add(task: Task) -> Task:
        monkeypatch.setitem(registry._TASKS, task.name, task)
        return task

    return add


def folder_state(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and sub-folder (None) under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(Path(folder).rglob("*"))
    }


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, bytes | None]]:
    """``snapshot(folder)``: its files' bytes and its sub-folders, to compare before and after."""
    return folder_state
