"""Comparisons end to end in-process: plan, store, skip finished runs, divergence, report files."""

from __future__ import annotations

import csv

import pytest

from optimlab.lab.compare import CompareConfig, CompareListener, compare
from optimlab.lab.compare.summary import SUMMARY_COLUMNS
from optimlab.lab.errors import UserError
from optimlab.lab.store import Store
from optimlab.optim import SEED_OPTIMIZERS


def test_plan_is_optimizer_major_with_seeds_from_zero():
    plan = CompareConfig.create(task="digits-mlp", optimizers=("sgd:lr=0.05", "adam"), seeds=2,
                                epochs=1).runs()
    assert [(s.optimizer_label(), s.seed) for s in plan] == [
        ("sgd:lr=0.05", 0), ("sgd:lr=0.05", 1), ("adam", 0), ("adam", 1)]
    defaults = CompareConfig.create(task="mnist-mlp").stored()
    assert tuple(o.split(":")[0] for o in defaults["optimizers"]) == SEED_OPTIMIZERS
    assert (defaults["epochs"], defaults["seeds"]) == (5, 3)


def test_diverged_run_is_recorded_while_the_others_finish(tmp_path):
    events = []

    class Listener(CompareListener):
        def run_finished(self, index, spec, result):
            events.append((index, None if result is None else result.status))

    config = {"task": "digits-mlp", "optimizers": ("adam:lr=0.001", "sgd:lr=1e6"), "seeds": 2,
              "epochs": 2, "out": tmp_path}
    outcome = compare(**config, listener=Listener())
    assert events == [(0, "finished"), (1, "finished"), (2, "diverged"), (3, "diverged")]
    diverged = [r for r in outcome.results if r.status == "diverged"]
    with Store.open(tmp_path) as store:
        for r in diverged:
            assert store.runs()[2 + r.spec.seed].diverged_step == r.diverged_step
            assert store.count_rows("steps", r.spec.run_id()) == r.diverged_step
    rows = {r.optimizer: r for r in outcome.summary}
    assert rows["sgd:lr=1000000.0"].diverged_runs == 2 and rows["sgd:lr=1000000.0"].seeds == 2
    assert rows["adam:lr=0.001"].diverged_runs == 0
    with open(tmp_path / "summary.csv", newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == SUMMARY_COLUMNS
    sgd = dict(zip(table[0], table[2]))
    # never averaged in: no finished run of sgd, so its means are empty, not nan or a number
    assert (sgd["final_train_loss_mean"], sgd["test_accuracy_mean"], sgd["diverged_runs"]) == ("", "", "2")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for r in diverged:
        assert f"seed {r.spec.seed} at step {r.diverged_step}" in page
    for name in ("loss.png", "loss_time.png", "accuracy.png", "step_share.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = compare(**config, resume=True, report=False)
    assert again.results == [] and len(again.skipped) == 4  # finished and diverged runs are skipped


def test_a_new_comparison_replaces_the_folder(tmp_path):
    compare(task="digits-mlp", optimizers="sgd:lr=0.05", seeds=1, epochs=1, out=tmp_path,
            report=False)
    compare(task="digits-mlp", optimizers="adam", seeds=1, epochs=1, out=tmp_path, report=False)
    with Store.open(tmp_path) as store:
        assert [r.optimizer for r in store.runs()] == ["adam"]
        assert store.get_experiment()["optimizers"] == ["adam"]


def test_parallel_runs_give_the_numbers_of_sequential_runs(tmp_path):
    import sqlite3

    config = {"task": "digits-mlp", "optimizers": ("sgd:lr=0.05", "adam", "nag:lr=0.02"),
              "seeds": 2, "epochs": 2, "report": False}
    one = compare(**config, out=tmp_path / "one", jobs=1)
    two = compare(**config, out=tmp_path / "two", jobs=2)
    assert [r.spec for r in one.results] == [r.spec for r in two.results]
    for a, b in zip(one.results, two.results):
        assert a.step_losses == b.step_losses
        assert [(e.test_loss, e.test_accuracy) for e in a.epochs] == [
            (e.test_loss, e.test_accuracy) for e in b.epochs
        ]

    def rows(folder):
        with sqlite3.connect(folder / "results.db") as db:
            return db.execute("SELECT run_id, step, loss FROM steps ORDER BY run_id, step").fetchall()

    assert rows(tmp_path / "one") == rows(tmp_path / "two")
    with Store.open(tmp_path / "two") as store:
        assert [r.run_id for r in store.runs()] == [r.spec.run_id() for r in one.results]
    assert len(rows(tmp_path / "two")) == sum(len(r.step_losses) for r in two.results)


def test_one_comparison_parses_each_spec_once_and_builds_only_the_runs_optimizers(
    tmp_path, monkeypatch
):
    """2 specs x 2 seeds x 2 epochs: each spec's phase is parsed once and validated once
    (without an optimizer), and the only optimizers built are the four runs' own."""
    import torch

    from optimlab.lab import spec as spec_module
    from optimlab.optim import registry

    counts = {"parsed": 0, "checked": 0, "built": 0}
    parse, check, init = spec_module._phase, registry.check, torch.optim.Optimizer.__init__

    def counted_parse(*args, **kwargs):
        counts["parsed"] += 1
        return parse(*args, **kwargs)

    def counted_check(*args, **kwargs):
        counts["checked"] += 1
        return check(*args, **kwargs)

    def counted_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        counts["built"] += 1  # only constructions that finish: an optimizer exists

    monkeypatch.setattr(spec_module, "_phase", counted_parse)
    monkeypatch.setattr(spec_module, "check", counted_check)
    monkeypatch.setattr(torch.optim.Optimizer, "__init__", counted_init)
    result = compare(task="iris-softmax", optimizers="sgd:lr=0.1,adam", seeds=2, epochs=2,
                     out=tmp_path, report=False)
    assert len(result.results) == 4 and all(r.status == "finished" for r in result.results)
    assert counts == {"parsed": 2, "checked": 2, "built": 4}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A finished comparison's folder (store, checkpoints folder gone, report, figures)."""
    out = tmp_path_factory.mktemp("compared")
    compare(task="iris-softmax", optimizers="sgd:lr=0.1,adam", seeds=1, epochs=2, out=out)
    return out


#: every option compare() checks, each given a bad value (and a resume of another configuration)
BAD_OPTIONS = [
    ({"jobs": 0}, "Invalid jobs 0"),
    ({"jobs": -2}, "Invalid jobs -2"),
    ({"nproc": 0}, "Invalid --nproc 0"),
    ({"threads": 0}, "Invalid threads 0"),
    ({"seeds": 0}, "Invalid number of seeds 0"),
    ({"epochs": 0}, "Invalid epochs 0"),
    ({"batch_size": "half"}, "Invalid batch size 'half'"),
    ({"batch_size": 0}, "Invalid batch size 0"),
    ({"schedule": "poly"}, "Unknown schedule 'poly'"),
    ({"optimizers": "adamm"}, "Unknown optimizer 'adamm'"),
    ({"optimizers": "adam:lr=-1"}, "Invalid learning rate"),
    ({"optimizers": "adam,adam"}, "listed twice"),
    ({"optimizers": ","}, "No optimizers given"),
    ({"task": "nope"}, "Unknown task 'nope'"),
    ({"task": "fashion-mlp", "data_dir": "/nonexistent/optimlab"}, "Fashion-MNIST files not found"),
    ({"nproc": 2, "schedule": "cosine"}, "--nproc runs take one optimizer"),
    ({"resume": True, "epochs": 3}, "Cannot resume .*epochs: 2 -> 3"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_a_bad_option_leaves_an_existing_output_folder_byte_identical(
    compared, snapshot, options, message
):
    before = snapshot(compared)
    assert "results.db" in before and "report.html" in before
    args = {"task": "iris-softmax", "optimizers": "sgd:lr=0.1,adam", "seeds": 1, "epochs": 2,
            **options}
    with pytest.raises(UserError, match=message):
        compare(**args, out=compared)
    assert snapshot(compared) == before


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(UserError, match="it is a file"):
        compare(task="iris-softmax", optimizers="sgd", seeds=1, epochs=1, out=tmp_path / "out")
    assert (tmp_path / "out").read_text() == "mine"
