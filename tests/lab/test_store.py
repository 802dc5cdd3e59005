"""The SQLite results store: keyed rows, replayed writes, WAL, schema version, non-finite values."""

from __future__ import annotations

import math
import sqlite3

import pytest

from optimlab.lab.errors import UserError
from optimlab.lab.runspec import EpochRecord
from optimlab.lab.store import SCHEMA_VERSION, Store


def _begin(store: Store, run_id: str = "t|sgd|seed=0", seed: int = 0) -> str:
    store.begin_run(run_id, task="t", optimizer="sgd", seed=seed, config={"seed": seed}, source="src")
    return run_id


def test_replayed_writes_never_duplicate_rows(tmp_path):
    with Store.open(tmp_path) as store:
        rid = _begin(store)
        steps = [(1, 2.0, 0.1), (2, 1.5, 0.2)]
        epoch = EpochRecord(1, 1.75, 1.6, 0.5, 0.2, 2)
        for _ in range(3):
            store.write_progress(rid, steps=steps, epochs=[epoch], wall_time_s=0.2, step_time_share=0.3)
        assert store.count_rows("steps", rid) == 2
        assert store.count_rows("epochs", rid) == 1
        store.write_progress(rid, steps=[(2, 9.0, 0.3)], epochs=[], wall_time_s=0.3, step_time_share=0.3)
        assert store.steps(rid) == ([1, 2], [2.0, 9.0], [0.1, 0.3])
        run = store.runs()[0]
        assert (run.status, run.steps_done, run.epochs_done, run.source) == ("running", 2, 1, "src")


def test_primary_keys_reject_duplicates_at_the_sql_level(tmp_path):
    with Store.open(tmp_path) as store:
        rid = _begin(store)
        store.write_progress(rid, steps=[(1, 1.0, 0.0)], epochs=[], wall_time_s=0, step_time_share=None)
    db = sqlite3.connect(tmp_path / "results.db")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO steps VALUES (?, 1, 2.0, 0.0)", (rid,))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    db.close()


def test_truncate_drops_rows_past_a_checkpoint(tmp_path):
    with Store.open(tmp_path) as store:
        rid = _begin(store)
        store.write_progress(
            rid, steps=[(s, 1.0 / s, 0.1 * s) for s in range(1, 7)],
            epochs=[EpochRecord(e, 1.0, 1.0, 0.5, e, 3 * e) for e in (1, 2)],
            wall_time_s=0.6, step_time_share=0.2,
        )
        store.truncate(rid, after_step=3, after_epoch=1)
        assert store.steps(rid)[0] == [1, 2, 3]
        assert [e.epoch for e in store.epochs(rid)] == [1]


def test_non_finite_losses_read_back_as_nan_and_status_is_kept(tmp_path):
    with Store.open(tmp_path) as store:
        rid = _begin(store)
        store.write_progress(rid, steps=[(1, 3.0, 0.1), (2, math.inf, 0.2), (3, math.nan, 0.3)], epochs=[],
                             wall_time_s=0.3, step_time_share=0.5, status="diverged", diverged_step=3)
        _, losses, _ = store.steps(rid)
        assert losses[0] == 3.0 and all(math.isnan(v) for v in losses[1:])
        run = store.runs()[0]
        assert (run.status, run.diverged_step) == ("diverged", 3)
        with pytest.raises(ValueError, match="Invalid status: 'done'"):
            store.write_progress(rid, steps=[], epochs=[], wall_time_s=0, step_time_share=None, status="done")


def test_runs_keep_their_order_and_experiment_round_trips(tmp_path):
    with Store.open(tmp_path) as store:
        for i, name in enumerate(("b", "a", "c")):
            store.begin_run(name, task="t", optimizer=name, seed=0, config={}, position=None)
            assert store.runs()[-1].position == i
        _begin(store, "a")  # begin again: same position, rows kept
        assert [r.run_id for r in store.runs()] == ["b", "a", "c"]
        store.set_experiment({"task": "t", "optimizers": ["x", "y"]})
        assert store.get_experiment() == {"task": "t", "optimizers": ["x", "y"]}
        store.delete_run("a")
        assert [r.run_id for r in store.runs()] == ["b", "c"]
        store.clear()
        assert store.runs() == [] and store.get_experiment() is None


def test_other_schema_versions_and_missing_stores_are_refused(tmp_path):
    with pytest.raises(UserError, match="No results store at"):
        Store.open(tmp_path / "none", create=False)
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "results.db")
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="schema version 99"):
        Store.open(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "results.db").write_bytes(b"not a database" * 100)
    with pytest.raises(UserError, match="Cannot open results store"):
        Store.open(tmp_path / "junk")


def test_failed_transaction_rolls_back(tmp_path):
    with Store.open(tmp_path) as store:
        rid = _begin(store)
        bad = [(1, 1.0, 0.1), (2, 1.0, None)]  # time_s NOT NULL: the second row fails
        with pytest.raises(sqlite3.IntegrityError):
            store.write_progress(rid, steps=bad, epochs=[], wall_time_s=0, step_time_share=None)
        assert store.count_rows("steps", rid) == 0
