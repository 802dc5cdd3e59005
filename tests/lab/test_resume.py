"""Checkpoints and --resume: bitwise continuation after an exception, Ctrl-C or kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import summary_rows

from optimlab.lab.checkpoint import checkpoint_path, load_checkpoint
from optimlab.lab.compare import compare
from optimlab.lab.compare.report import render_report
from optimlab.lab.errors import UserError
from optimlab.lab.files import atomic_write_bytes
from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec
from optimlab.lab.store import Store

REPO = Path(__file__).resolve().parents[2]


class Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("optimizer", "schedule"),
    [("adam:lr=0.002@1+nag:lr=0.05", "warmup:steps=10+cosine"), ("rmsprop:lr=0.001", "exp:gamma=0.7"),
     # optimizers named by class: the same guarantees
     ("torch.optim:Adam:lr=0.002@1+torch.optim:SGD:lr=0.05,momentum=0.9", "warmup:steps=10+cosine")],
)
def test_resume_after_an_interruption_is_bitwise_identical(tmp_path, optimizer, schedule):
    spec = RunSpec("digits-mlp", optimizer, seed=1, epochs=3, batch_size=64, schedule=schedule)
    reference = run(spec)

    def stop_in_epoch_3(steps_done: int, total: int) -> None:
        if steps_done == total - 5:
            raise Stop

    ckpt_dir = tmp_path / "checkpoints"
    with Store.open(tmp_path) as store:
        with pytest.raises(Stop):
            run(spec, store=store, checkpoint_dir=ckpt_dir, checkpoint_every=0, progress=stop_in_epoch_3)
        ckpt = checkpoint_path(ckpt_dir, spec.run_id())
        payload = load_checkpoint(ckpt)  # weights_only=True inside
        assert payload["epoch"] == 2 and payload["run_id"] == spec.run_id()
        assert store.run_status(spec.run_id()) == "running"
        resumed = run(spec, store=store, checkpoint_dir=ckpt_dir)
        steps, losses, _ = store.steps(spec.run_id())
        assert steps == list(range(1, len(reference.step_losses) + 1))
        assert store.run_status(spec.run_id()) == "finished"
    assert resumed.step_losses == reference.step_losses == losses
    assert [(e.train_loss, e.test_loss, e.test_accuracy) for e in resumed.epochs] == [
        (e.train_loss, e.test_loss, e.test_accuracy) for e in reference.epochs
    ]
    assert not ckpt.exists()  # removed once the run ended


def test_checkpoint_of_another_run_or_corrupt_file_is_refused(tmp_path):
    spec = RunSpec("digits-mlp", "sgd:lr=0.05", epochs=2)
    with pytest.raises(Stop):
        run(spec, checkpoint_dir=tmp_path, checkpoint_every=0,
            on_epoch=lambda r: (_ for _ in ()).throw(Stop) if r.epoch == 2 else None)
    ckpt = checkpoint_path(tmp_path, spec.run_id())
    other = RunSpec("digits-mlp", "sgd:lr=0.05", seed=5, epochs=2)
    os.replace(ckpt, checkpoint_path(tmp_path, other.run_id()))
    with pytest.raises(UserError, match="belongs to run"):
        run(other, checkpoint_dir=tmp_path)
    atomic_write_bytes(ckpt, b"\x00" * 64)
    with pytest.raises(UserError, match="Cannot read checkpoint .*" + ckpt.name):
        run(spec, checkpoint_dir=tmp_path)


def test_changed_configuration_is_refused_unless_forced(tmp_path):
    compare(task="digits-mlp", optimizers=("sgd:lr=0.05",), seeds=1, epochs=1, out=tmp_path,
            report=False)
    changed = {"task": "digits-mlp", "optimizers": ("sgd:lr=0.05", "adam"), "seeds": 2,
               "epochs": 1, "batch_size": "full", "out": tmp_path, "report": False}
    with pytest.raises(UserError, match=r"optimizers: .* -> .*; seeds: 1 -> 2; batch_size: 32 -> full"):
        compare(**changed, resume=True)
    outcome = compare(**changed, resume=True, force=True)
    assert len(outcome.results) == 4 and not outcome.skipped
    again = compare(**changed, resume=True)
    assert again.results == [] and len(again.skipped) == 4
    with Store.open(tmp_path) as store:
        assert {r.status for r in store.runs()} == {"finished"} and len(store.runs()) == 4


#: epochs and batch size of the interrupted comparison: enough work (about 3 s of training) that
#: the signals land mid-comparison even on a busy machine, now that the fused steps make a
#: digits-mlp epoch of batch 32 last about 15 ms
EPOCHS, BATCH = 12, 8


#: ``python -m optimlab`` with Ctrl-C handled as from a terminal: a process started with SIGINT
#: ignored keeps ignoring it (Python then installs no KeyboardInterrupt handler), and so do the
#: test workers of a suite started in the background (``make test &`` from a script)
_MAIN = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "runpy.run_module('optimlab', run_name='__main__', alter_sys=True)")


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", _MAIN, "compare", "--task", "digits-mlp",
            "--optimizers", "adam:lr=0.001,sgd:lr=0.05,rmsprop:lr=0.001", "--epochs", str(EPOCHS),
            "--batch-size", str(BATCH), "--seeds", "2", "--out", str(out), "--quiet",
            "--checkpoint-every", "0.1", *extra]


def _epochs_stored(out: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{out / 'results.db'}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _interrupt_when(out: Path, args: list[str], sig: int, min_epochs: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (seen := _epochs_stored(out)) < min_epochs:
        assert proc.poll() is None, f"compare ended before it could be interrupted: {proc.stderr.read()!r}"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if proc.returncode not in (130, -signal.SIGKILL):
        # what happened, for the failure message
        print(f"signal {sig} after {seen} stored epochs; now {_epochs_stored(out)}; "
              f"exit {proc.returncode}; stderr: {proc.stderr.read()[-2000:]!r}")
    return proc.returncode



@pytest.mark.slow
def test_ctrl_c_then_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    out = tmp_path / "interrupted"
    total_epochs = 3 * 2 * EPOCHS
    # 1. Ctrl-C: exits 130 after leaving checkpoint and rows consistent
    rc = _interrupt_when(out, _cli(out), signal.SIGINT, min_epochs=3)
    assert rc == 130
    assert _epochs_stored(out) < total_epochs
    for ckpt in (out / "checkpoints").glob("*.pt"):
        load_checkpoint(ckpt)
    # 2. kill -9 in the middle of the resumed comparison
    rc = _interrupt_when(out, _cli(out, "--resume"), signal.SIGKILL, min_epochs=_epochs_stored(out) + 4)
    assert rc == -signal.SIGKILL
    assert _epochs_stored(out) < total_epochs, "the comparison finished before the kill"
    # 3. resume to the end
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(_cli(out, "--resume"), env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr

    reference = tmp_path / "reference"
    outcome = compare(task="digits-mlp", optimizers=("adam:lr=0.001", "sgd:lr=0.05", "rmsprop:lr=0.001"),
                      seeds=2, epochs=EPOCHS, batch_size=BATCH, out=reference, report=False)
    render_report(reference, figures=False)
    assert summary_rows(out) == summary_rows(reference)

    db = sqlite3.connect(out / "results.db")
    rows = db.execute("SELECT run_id, COUNT(*), COUNT(DISTINCT step), MIN(step), MAX(step) FROM steps "
                      "GROUP BY run_id").fetchall()
    assert len(rows) == 6
    expected = {r.spec.run_id(): r.step_losses for r in outcome.results}
    for run_id, count, distinct, first, last in rows:
        assert count == distinct == last == len(expected[run_id]) and first == 1
        losses = [v for (v,) in db.execute("SELECT loss FROM steps WHERE run_id = ? ORDER BY step", (run_id,))]
        assert losses == expected[run_id]
    assert db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == total_epochs
    db.close()
    assert not list((out / "checkpoints").glob("*")) if (out / "checkpoints").exists() else True


class _Stop(Exception):
    pass


@pytest.mark.parametrize("spec", ["nadam:lr=0.002", "adam:lr=0.001", "momentum:lr=0.01,momentum=0.9"])
def test_resume_in_a_new_process_is_exact_on_the_fused_paths(tmp_path, spec):
    """mnist-mlp's 159k parameters take the fused path by default (the C loop, in place). A
    resumed run lays out the loaded state afresh and, in a new process, loads its kernels again:
    every step must still round as in the run that never stopped."""
    from optimlab.optim import _fused

    run_spec = RunSpec("mnist-mlp", spec, seed=0, epochs=3)
    reference = run(run_spec).step_losses

    def stop_after_first_epoch(record):
        if record.epoch == 2:  # epoch 2's checkpoint is never written: resume from epoch 1
            raise _Stop

    with pytest.raises(_Stop), Store.open(tmp_path) as store:
        run(run_spec, store=store, checkpoint_dir=tmp_path / "ck", checkpoint_every=0,
            on_epoch=stop_after_first_epoch)
    _fused.KERNELS.clear()  # what a new process starts with
    with Store.open(tmp_path) as store:
        resumed = run(run_spec, store=store, checkpoint_dir=tmp_path / "ck")
    assert resumed.step_losses == reference
