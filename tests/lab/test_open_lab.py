"""The open lab end to end: other packages' optimizers and users' tasks through the commands."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from optimlab.lab import cli


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
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


def test_torch_adam_beside_optimlab_adam_ends_at_the_same_loss(monkeypatch, capsys, tmp_path):
    code, out, err = _main(monkeypatch, capsys, "compare", "--task", "iris-softmax", "--optimizers",
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
def test_what_is_not_an_optimizer_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, spec, message):
    code, out, err = _main(monkeypatch, capsys, "compare", "--task", "iris-softmax", "--optimizers",
                           f"sgd,{spec}", "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and out == "" and not (tmp_path / "o").exists()
    assert err.startswith("optimlab: error: ") and message in err and err.count("\n") == 1
