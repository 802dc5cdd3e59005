"""The command line: exit code 2 and one line for user mistakes, JSON output, list, report."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "Unknown task 'nope' (expected one of"),
        (["--task", "digits-mlp", "--optimizers", "adamm"], "Unknown optimizer 'adamm'"),
        (["--task", "digits-mlp", "--optimizers", "adam:lr=-1"], "Invalid learning rate"),
        (["--task", "digits-mlp", "--optimizers", "adam:bogus=1"], "Unknown hyperparameter for adam: 'bogus'"),
        (["--task", "digits-mlp", "--schedule", "poly"], "Unknown schedule 'poly'"),
        (["--task", "digits-mlp", "--batch-size", "0"], "Invalid batch size '0'"),
        (["--task", "digits-mlp", "--optimizers", ","], "No optimizers given"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(run_cli, tmp_path, args, message):
    code, out, err = run_cli("compare", *args, "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and out == ""
    assert err.startswith("optimlab: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_files_are_a_user_error(run_cli, tmp_path):
    code, _, err = run_cli("compare", "--task", "fashion-mlp", "--data-dir",
                         str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and err.startswith("optimlab: error: ") and err.count("\n") == 1


def test_compare_json_then_report_and_resume(run_cli, tmp_path):
    out = tmp_path / "o"
    args = ["compare", "--task", "digits-mlp", "--optimizers", "sgd:lr=0.05,adam:lr=1e-3,betas=0.9/0.99",
            "--epochs", "1", "--seeds", "2", "--out", str(out), "--json"]
    code, stdout, _ = run_cli(*args)
    assert code == 0
    data = json.loads(stdout)
    assert [r["optimizer"] for r in data["summary"]] == ["sgd:lr=0.05", "adam:lr=0.001,betas=0.9/0.99"]
    assert all(r["seeds"] == 2 and r["diverged_runs"] == 0 for r in data["summary"])
    assert {"report.html", "summary.csv", "results.db", "loss.png"} <= {p.name for p in out.iterdir()}

    code, stdout, _ = run_cli("report", str(out), "--json")
    assert code == 0 and json.loads(stdout)["summary"] == data["summary"]

    code, stdout, _ = run_cli(*args[:-1], "--epochs", "2", "--resume", "--json")
    assert code == 2  # changed configuration
    code, _, err = run_cli(*args, "--resume", "--epochs", "2")
    assert code == 2 and "epochs: 1 -> 2" in err and "--force" in err

    code, _, err = run_cli("report", str(tmp_path / "missing"))
    assert code == 2 and "No optimlab output folder at" in err


def test_list_tasks_and_optimizers(run_cli):
    code, out, _ = run_cli("list", "tasks")
    assert code == 0 and "mnist-mlp" in out and "iris-softmax" in out
    code, out, _ = run_cli("list", "optimizers")
    assert code == 0 and "nadam" in out and "@keras" in out and "@optax" in out
    code, _, err = run_cli("list", "things")
    assert code == 2 and "expected one of tasks, optimizers" in err
