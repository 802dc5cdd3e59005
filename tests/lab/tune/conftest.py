"""The tuner's tests: the synthetic tasks of ``synthetic.py``, registered for each test."""

from __future__ import annotations

import pytest
from synthetic import add_all


@pytest.fixture(autouse=True)
def synthetic_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    add_all(monkeypatch)
