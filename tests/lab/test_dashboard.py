"""A tuning study opens in optuna-dashboard, as the README shows: its studies, trials and page."""

from __future__ import annotations

import io
import json
import sys
from wsgiref.util import setup_testing_defaults

import pytest

from optimlab.lab.tasks.registry import _REFERENCED

TASK_MODULE = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset
from optimlab.lab import Task

g = torch.Generator().manual_seed(0)
x = torch.randn(120, 2, generator=g)
y = (x[:, 0] * x[:, 1] > 0).long()

TASK = Task(name="dash-quadrants",
            model=lambda seed: nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)),
            loss=nn.functional.cross_entropy, train=TensorDataset(x[:90], y[:90]),
            test=TensorDataset(x[90:], y[90:]), batch_size=30, epochs=1)
'''


def _get(app, path: str) -> tuple[str, bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


@pytest.fixture
def task_module(tmp_path, monkeypatch):
    (tmp_path / "dash_tasks_mod.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "dash_tasks_mod:TASK"
    sys.modules.pop("dash_tasks_mod", None)
    _REFERENCED.pop("dash_tasks_mod:TASK", None)


def test_optuna_dashboard_reads_the_tuning_study(tmp_path, task_module, run_cli):
    from optuna_dashboard import wsgi

    out = tmp_path / "tune"
    code, _, err = run_cli("tune", "--task", task_module, "--optimizers", "sgd,adam", "--budget", "2",
                           "--epochs", "1", "--seeds", "1", "--out", str(out), "--quiet")
    assert code == 0, err

    # what `optuna-dashboard sqlite:///<out>/tune.db` serves
    app = wsgi(f"sqlite:///{out / 'tune.db'}")
    status, body = _get(app, "/api/studies")
    assert status.startswith("200")
    studies = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
    # the study holding the configuration, and one study per (task, optimizer)
    assert sorted(studies) == ["optimlab-tune", "optimlab-tune/dash_tasks_mod:TASK/adam",
                               "optimlab-tune/dash_tasks_mod:TASK/sgd"]
    for name in ("optimlab-tune/dash_tasks_mod:TASK/adam", "optimlab-tune/dash_tasks_mod:TASK/sgd"):
        study = studies[name]
        status, body = _get(app, f"/api/studies/{study['study_id']}")
        assert status.startswith("200")
        trials = json.loads(body)["trials"]
        assert len(trials) == 2 and all(t["state"] in ("Complete", "Pruned") for t in trials)
        assert all("lr" in {p["name"] for p in t["params"]} for t in trials)
    status, body = _get(app, "/dashboard")
    assert status.startswith("200") and b"<html" in body.lower()
