"""The command line: exit code 2 and one line for user mistakes, JSON output, list, report."""

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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "Unknown task 'nope' (expected one of"),
        (["--task", "digits-mlp", "--optimizers", "adamm"], "Unknown optimizer 'adamm'"),
        (["--task", "digits-mlp", "--optimizers", "adam:lr=-1"], "Invalid learning rate"),
        (["--task", "digits-mlp", "--optimizers", "adam:bogus=1"], "Unknown hyperparameter for adam: 'bogus'"),
        (["--task", "digits-mlp", "--schedule", "poly"], "Unknown schedule 'poly'"),
        (["--task", "digits-mlp", "--batch-size", "0"], "Invalid batch size '0'"),
        (["--task", "digits-mlp", "--optimizers", ","], "No optimizer in --optimizers"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(monkeypatch, capsys, tmp_path, args, message):
    code, out, err = _main(monkeypatch, capsys, "compare", *args, "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and out == ""
    assert err.startswith("optimlab: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_files_are_a_user_error(monkeypatch, capsys, tmp_path):
    code, _, err = _main(monkeypatch, capsys, "compare", "--task", "fashion-mlp", "--data-dir",
                         str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and err.startswith("optimlab: error: ") and err.count("\n") == 1


def test_compare_json_then_report_and_resume(monkeypatch, capsys, tmp_path):
    out = tmp_path / "o"
    args = ["compare", "--task", "digits-mlp", "--optimizers", "sgd:lr=0.05,adam:lr=1e-3,betas=0.9/0.99",
            "--epochs", "1", "--seeds", "2", "--out", str(out), "--json"]
    code, stdout, _ = _main(monkeypatch, capsys, *args)
    assert code == 0
    data = json.loads(stdout)
    assert [r["optimizer"] for r in data["summary"]] == ["sgd:lr=0.05", "adam:lr=0.001,betas=0.9/0.99"]
    assert all(r["seeds"] == 2 and r["diverged_runs"] == 0 for r in data["summary"])
    assert {"report.html", "summary.csv", "results.db", "loss.png"} <= {p.name for p in out.iterdir()}

    code, stdout, _ = _main(monkeypatch, capsys, "report", str(out), "--json")
    assert code == 0 and json.loads(stdout)["summary"] == data["summary"]

    code, stdout, _ = _main(monkeypatch, capsys, *args[:-1], "--epochs", "2", "--resume", "--json")
    assert code == 2  # changed configuration
    code, _, err = _main(monkeypatch, capsys, *args, "--resume", "--epochs", "2")
    assert code == 2 and "epochs: 1 -> 2" in err and "--force" in err

    code, _, err = _main(monkeypatch, capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and "No results store at" in err


def test_list_tasks_and_optimizers(monkeypatch, capsys):
    code, out, _ = _main(monkeypatch, capsys, "list", "tasks")
    assert code == 0 and "mnist-mlp" in out and "iris-softmax" in out
    code, out, _ = _main(monkeypatch, capsys, "list", "optimizers")
    assert code == 0 and "nadam" in out and "@keras" in out and "@optax" in out
    code, _, err = _main(monkeypatch, capsys, "list", "things")
    assert code == 2 and "expected one of tasks, optimizers" in err
