"""Comparisons end to end in-process: plan, store, skip finished runs, divergence, report files."""

from __future__ import annotations

import csv

from optimlab.lab.compare import CompareConfig, CompareListener, compare
from optimlab.lab.compare.summary import SUMMARY_COLUMNS
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
