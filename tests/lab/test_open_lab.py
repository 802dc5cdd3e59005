"""The open lab end to end: other packages' optimizers and users' tasks through the commands."""

from __future__ import annotations

import json

import pytest


def test_torch_adam_beside_optimlab_adam_ends_at_the_same_loss(run_cli, tmp_path):
    code, out, err = run_cli("compare", "--task", "iris-softmax", "--optimizers",
                           "adam:lr=0.05,torch.optim:Adam:lr=0.05", "--seeds", "1", "--epochs", "20",
                           "--jobs", "1", "--out", str(tmp_path), "--json")
    assert code == 0, err
    rows = json.loads(out)["summary"]
    assert [r["optimizer"] for r in rows] == ["adam:lr=0.05", "torch.optim:Adam:lr=0.05"]
    ours, theirs = (r["final_train_loss_mean"] for r in rows)
    assert ours == pytest.approx(theirs, abs=1e-6) and ours < 0.1


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
    code, out, err = run_cli("compare", "--task", "iris-softmax", "--optimizers",
                           f"sgd,{spec}", "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and out == "" and not (tmp_path / "o").exists()
    assert err.startswith("optimlab: error: ") and message in err and err.count("\n") == 1
