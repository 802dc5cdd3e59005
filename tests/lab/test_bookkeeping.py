"""Saves on a time interval: checkpoint and rows together, never rows past the checkpoint; kill -9
at random points of an iris comparison, then --resume, gives the uninterrupted numbers and repeats
at most one interval of training."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from fixtures import summary_rows

from optimlab.lab import bookkeeping
from optimlab.lab.checkpoint import checkpoint_path, load_checkpoint
from optimlab.lab.compare import compare
from optimlab.lab.errors import UserError
from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec
from optimlab.lab.store import Store

REPO = Path(__file__).resolve().parents[2]


class _Stop(Exception):
    pass


class _StepClock:
    """A clock that advances one second per training step (read through ``progress``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, done: int, total: int) -> None:
        self.now += 1.0


def test_a_run_saves_on_its_interval_and_its_rows_never_pass_its_checkpoint(tmp_path, monkeypatch):
    clock = _StepClock()
    monkeypatch.setattr(bookkeeping, "time", SimpleNamespace(monotonic=clock))
    spec = RunSpec("iris-softmax", "adam:lr=0.1", seed=1, epochs=12)  # 4 steps an epoch
    reference = run(spec)
    saved: list[int] = []
    real_save = bookkeeping.save_checkpoint
    monkeypatch.setattr(bookkeeping, "save_checkpoint",
                        lambda path, payload: (saved.append(payload["epoch"]), real_save(path, payload)))

    def stop_in_epoch_10(done: int, total: int) -> None:
        clock.tick(done, total)
        if done == 38:
            raise _Stop

    ckpt_dir = tmp_path / "ck"
    with Store.open(tmp_path) as store:
        with pytest.raises(_Stop):
            run(spec, store=store, checkpoint_dir=ckpt_dir, checkpoint_every=10, progress=stop_in_epoch_10)
        # a save once 10 s (steps) have passed, at the end of that epoch: epochs 3, 6, 9
        assert saved == [3, 6, 9]
        assert load_checkpoint(checkpoint_path(ckpt_dir, spec.run_id()))["epoch"] == 9
        assert store.count_rows("epochs") == 9 and store.count_rows("steps") == 36
        resumed = run(spec, store=store, checkpoint_dir=ckpt_dir, checkpoint_every=10, progress=clock.tick)
        assert store.steps(spec.run_id())[1] == reference.step_losses
        assert store.count_rows("epochs") == 12 and store.run_status(spec.run_id()) == "finished"
    assert resumed.step_losses == reference.step_losses
    assert saved == [3, 6, 9]  # the resumed run's end commits rows and writes no checkpoint


def test_a_short_run_commits_once_and_writes_no_checkpoint(tmp_path, monkeypatch):
    commits = []
    real = Store.write_progress
    monkeypatch.setattr(Store, "write_progress", lambda self, *a, **k: (
        commits.append(k.get("status", "running")), real(self, *a, **k)))
    with Store.open(tmp_path) as store:
        run(RunSpec("iris-softmax", "sgd:lr=0.1", epochs=5), store=store, checkpoint_dir=tmp_path / "ck",
            checkpoint_every=3600)
        assert store.count_rows("epochs") == 5 and store.count_rows("steps") == 20
    # the run's opening writes (its row, the rows of a checkpoint) and its end: one transaction
    assert commits == ["running", "finished"]
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "30"])
def test_a_bad_interval_is_one_clear_line(bad):
    with pytest.raises(UserError, match="Invalid checkpoint interval"):
        run(RunSpec("iris-softmax", "sgd"), checkpoint_every=bad)


# ---- kill -9 at random points ---------------------------------------------------------------------
OPTIMIZERS = "sgd:lr=0.1,momentum:lr=0.1,adam:lr=0.1"
SEEDS, EPOCHS, INTERVAL = 2, 60, 25  # 4 steps an epoch; INTERVAL in steps of the step clock

#: ``optimlab compare`` in one process that kills itself (SIGKILL) before its KILL_AT-th step,
#: with the saver's clock advancing one "second" per step, so that the work lost is countable
_MAIN = """
import os, runpy, signal, sys
from optimlab.lab import bookkeeping, runner
kill_at, steps = int(os.environ["KILL_AT"]), [0]
class Clock:
    monotonic = staticmethod(lambda: float(steps[0]))
bookkeeping.time = Clock
loss = runner.Batches.loss
def counted(self, *args):
    steps[0] += 1
    if steps[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return loss(self, *args)
runner.Batches.loss = counted
runpy.run_module("optimlab", run_name="__main__", alter_sys=True)
"""


def _compare(out: Path, kill_at: int, *extra: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "KILL_AT": str(kill_at)}
    args = [sys.executable, "-c", _MAIN, "compare", "--task", "iris-softmax", "--optimizers", OPTIMIZERS,
            "--seeds", str(SEEDS), "--epochs", str(EPOCHS), "--jobs", "1", "--quiet",
            "--checkpoint-every", str(INTERVAL), "--out", str(out), *extra]
    return subprocess.run(args, env=env, capture_output=True, timeout=300, check=False).returncode


def _stored_steps(out: Path) -> int:
    if not (out / "results.db").is_file():
        return 0
    db = sqlite3.connect(out / "results.db")
    try:
        return db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    finally:
        db.close()



@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_same_summary(tmp_path):
    total = 3 * SEEDS * EPOCHS * 4
    out = tmp_path / "killed"
    rng = random.Random(14)
    first = rng.randrange(total // 4, total // 2)
    for kill_at, extra in ((first, ()), (rng.randrange(total // 4, total // 2), ("--resume",))):
        before = _stored_steps(out)
        assert _compare(out, kill_at, *extra) == -signal.SIGKILL
        trained = kill_at - 1  # the killing step never ran
        lost = trained - (_stored_steps(out) - before)
        # what the next resume trains again: at most one interval and the epoch it ended in
        assert 0 <= lost <= INTERVAL + 4, (kill_at, lost)
    assert _compare(out, 10**9, "--resume") == 0
    reference = tmp_path / "reference"
    compare(task="iris-softmax", optimizers=OPTIMIZERS, seeds=SEEDS, epochs=EPOCHS, out=reference,
            jobs=1)
    assert summary_rows(out) == summary_rows(reference)
    db = sqlite3.connect(out / "results.db")
    counts = db.execute("SELECT COUNT(*), COUNT(DISTINCT run_id || '/' || step) FROM steps").fetchone()
    db.close()
    assert counts == (total, total)  # no step stored twice


def test_ctrl_c_saves_the_epoch_in_progress_then_stops(tmp_path):
    spec = RunSpec("iris-softmax", "sgd:lr=0.1", seed=2, epochs=8)  # 4 steps an epoch

    def ctrl_c_in_epoch_3(done: int, total: int) -> None:
        if done == 9:
            os.kill(os.getpid(), signal.SIGINT)

    with Store.open(tmp_path) as store:
        with pytest.raises(KeyboardInterrupt):
            run(spec, store=store, checkpoint_dir=tmp_path / "ck", checkpoint_every=3600,
                progress=ctrl_c_in_epoch_3)
        # not after step 9: at the end of epoch 3, with its checkpoint and its rows
        assert load_checkpoint(checkpoint_path(tmp_path / "ck", spec.run_id()))["epoch"] == 3
        assert store.count_rows("epochs") == 3 and store.count_rows("steps") == 12
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
