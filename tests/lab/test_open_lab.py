"""The open lab end to end: another package's optimizer beside optimlab's, a user's task through
compare and tune, the runs in TensorBoard, MLflow and optuna-dashboard, and their provenance."""

from __future__ import annotations

import html
import io
import json
import platform
import sys
from wsgiref.util import setup_testing_defaults

import pytest
import torch

from optimlab import __version__, lab
from optimlab.lab.store import Store
from optimlab.lab.tasks.registry import _REFERENCED
from optimlab.lab.trackers import TrackedRun, TrackerConfig

TASK_MODULE = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset
from optimlab.lab import Task

g = torch.Generator().manual_seed(0)
x = torch.randn(120, 2, generator=g)
y = (x[:, 0] * x[:, 1] > 0).long()

TASK = Task(name="quadrants",
            model=lambda seed: nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)),
            loss=nn.functional.cross_entropy, train=TensorDataset(x[:90], y[:90]),
            test=TensorDataset(x[90:], y[90:]), batch_size=30, epochs=2)
'''


def test_torch_adam_beside_optimlab_adam_logged_to_tensorboard_and_mlflow_with_provenance(
        run_cli, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # MLflow's file store, through the environment as a user points MLflow anywhere (the default,
    # <out>/mlflow.db, costs MLflow's schema migrations: seconds that say nothing about optimlab)
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    out = tmp_path / "iris"
    code, stdout, err = run_cli(
        "compare", "--task", "iris-softmax", "--optimizers", "adam:lr=0.05,torch.optim:Adam:lr=0.05",
        "--seeds", "1", "--epochs", "20", "--jobs", "1", "--out", str(out), "--json",
        "--log-to", "tensorboard", "--log-to", "mlflow")
    assert code == 0, err

    # the same algorithm, optimlab's and torch's: the same final loss
    rows = json.loads(stdout)["summary"]
    assert [r["optimizer"] for r in rows] == ["adam:lr=0.05", "torch.optim:Adam:lr=0.05"]
    ours, theirs = (r["final_train_loss_mean"] for r in rows)
    assert ours == pytest.approx(theirs, abs=1e-6) and ours < 0.1

    # TensorBoard: one loss/train scalar per step (120 rows / 32 = 4 steps an epoch) for every run
    for label in ("adam:lr=0.05", "torch.optim:Adam:lr=0.05"):
        events = EventAccumulator(str(out / "tensorboard" / "iris-softmax" / label / "seed=0"))
        events.Reload()
        assert [e.step for e in events.Scalars("loss/train")] == list(range(1, 81))
        assert [e.step for e in events.Scalars("accuracy/test")] == list(range(4, 81, 4))

    # MLflow: one run per (optimizer, seed), with its hyperparameters
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("iris")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.run_name ASC"])
    assert [r.info.run_name for r in runs] == ["iris-softmax/adam:lr=0.05/seed=0",
                                                "iris-softmax/torch.optim:Adam:lr=0.05/seed=0"]
    for r, label in zip(runs, ("adam:lr=0.05", "torch.optim:Adam:lr=0.05")):
        assert r.info.status == "FINISHED"
        params = r.data.params
        assert (params["optimizer"], params["seed"], params["lr"], params["task"]) == (
            label, "0", "0.05", "iris-softmax")
        assert params["betas"] == "0.9/0.999" and params["epochs"] == "20"
        assert len(client.get_metric_history(r.info.run_id, "loss/train")) == 80
    # an interrupted run, resumed after its checkpoint at step 2, continues its MLflow run
    config = TrackerConfig(("mlflow",), out)
    for resume_step, steps, status in ((0, range(1, 4), "interrupted"), (2, range(3, 5), "finished")):
        tracker = config.open()
        tracker.on_run_start(TrackedRun("iris|x|seed=5", "x/seed=5", resume_step), {"seed": 5})
        for step in steps:
            tracker.on_step(step, 1.0 / step)
        tracker.on_epoch(1, steps[-1], {"loss/test": 0.5, "accuracy/test": 0.5})
        tracker.on_run_end(status)
    (resumed,) = client.search_runs([experiment.experiment_id], "tags.`optimlab.run_id` = 'iris|x|seed=5'")
    assert resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(resumed.info.run_id, "loss/train")) == [
        1, 2, 3, 3, 4]  # step 3 twice: logged before the interruption and again after the resume

    # provenance: stored with the results, shown in the report with the command to reproduce it
    with Store.open(out, create=False) as store:
        (record,) = store.provenance()
    assert record["optimlab"] == __version__ and record["torch"] == torch.__version__
    assert record["python"] == platform.python_version() and record["device"] == "cpu"
    assert record["threads"] >= 1 and record["cpu"] and record["platform"]
    assert record["command"].startswith("optimlab compare --task iris-softmax --optimizers ")
    page = (out / "report.html").read_text()
    assert '<section class="card provenance">' in page
    assert html.escape(record["command"]) in page
    assert f"<dd>{torch.__version__}</dd>" in page and f"<dd>{platform.python_version()}</dd>" in page


def _get(app, path: str) -> tuple[str, bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


@pytest.fixture
def task_module(tmp_path, monkeypatch):
    """A user's task module, importable here and in worker processes (PYTHONPATH)."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "quadrant_tasks.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    yield "quadrant_tasks:TASK"
    sys.modules.pop("quadrant_tasks", None)
    _REFERENCED.pop("quadrant_tasks:TASK", None)


def test_a_task_in_a_module_runs_through_compare_in_two_processes_and_through_tune(
        run_cli, tmp_path, task_module):
    from optuna_dashboard import wsgi

    code, stdout, err = run_cli("compare", "--task", task_module, "--optimizers", "sgd:lr=0.1,adam",
                                "--seeds", "1", "--jobs", "2", "--out", str(tmp_path / "cmp"), "--json")
    assert code == 0, err
    rows = json.loads(stdout)["summary"]
    assert [(r["optimizer"], r["seeds"]) for r in rows] == [("sgd:lr=0.1", 1), ("adam", 1)]
    assert all(0.0 <= r["test_accuracy_mean"] <= 1.0 for r in rows)

    result = lab.tune(task=task_module, optimizers="sgd,torch.optim:Adam", space="lr=log:1e-3:1e-1",
                      budget=2, epochs=1, seeds=1, out=tmp_path / "tune")
    table = result.table()
    assert [r["optimizer"] for r in table] == ["sgd", "torch.optim:Adam"]
    assert all(0.0 <= float(r["test_accuracy_mean"]) <= 1.0 for r in table)

    # the study opens in optuna-dashboard as `optuna-dashboard sqlite:///<out>/tune.db` serves it
    app = wsgi(f"sqlite:///{tmp_path / 'tune' / 'tune.db'}")
    status, body = _get(app, "/api/studies")
    assert status.startswith("200")
    studies = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
    subs = [f"optimlab-tune/{task_module}/sgd", f"optimlab-tune/{task_module}/torch.optim:Adam"]
    assert sorted(studies) == ["optimlab-tune", *subs]
    for name in subs:
        status, body = _get(app, f"/api/studies/{studies[name]['study_id']}")
        trials = json.loads(body)["trials"]
        assert status.startswith("200") and len(trials) == 2
        assert all(t["state"] in ("Complete", "Pruned") for t in trials)
        assert all([p["name"] for p in t["params"]] == ["lr"] for t in trials)
    status, body = _get(app, "/dashboard")
    assert status.startswith("200") and b"<html" in body.lower()


@pytest.mark.parametrize(("spec", "message"), [
    ("os:system", "os:system is not a torch.optim.Optimizer subclass"),
    ("builtins:eval", "builtins:eval is not a torch.optim.Optimizer subclass"),
    ("torch.nn:Linear", "torch.nn:Linear is not a torch.optim.Optimizer subclass"),
    ("no_such_pkg_q.optim:Fast", "No module named 'no_such_pkg_q'"),
    ("torch.optim:Adamm:lr=0.1", "Module 'torch.optim' has no attribute 'Adamm'"),
    ("torch.optim:Adam:lr=-1", "torch.optim:Adam: Invalid learning rate: -1"),
    ("torch.optim:Adam@keras", "conventions apply to optimlab's optimizers, not to torch.optim:Adam"),
])
def test_what_is_not_an_optimizer_is_one_line_and_exit_2(run_cli, tmp_path, spec, message):
    code, out, err = run_cli("compare", "--task", "iris-softmax", "--optimizers", f"sgd,{spec}",
                             "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and out == "" and not (tmp_path / "o").exists()
    assert err.startswith("optimlab: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "tpu"], "Invalid device 'tpu' (expected auto, cpu, cuda, cuda:N or mps)"),
    (["--clip-grad-norm", "0"], "Invalid clip_grad_norm 0.0 (expected a number > 0)"),
    (["--accumulate", "0"], "Invalid accumulate 0 (expected a whole number >= 1)"),
    (["--log-to", "wandb"], "Unknown tracker 'wandb' in --log-to (expected tensorboard, mlflow)"),
])
def test_bad_device_loop_and_tracker_options_are_one_line(run_cli, tmp_path, args, message):
    for command in ("compare", "tune"):
        code, _, err = run_cli(command, "--task", "iris-softmax", "--optimizers", "sgd", *args,
                               "--out", str(tmp_path / command), "--quiet")
        assert code == 2 and message in err and err.count("\n") == 1, (command, err)
        assert not (tmp_path / command).exists()
