"""The output folder as optimlab's own store, through the command line: nothing a user wrote is
lost, no two runs or datasets are mixed, every failure is one line and exit code 2.

Each test is one case of issue 12, kept as a regression test.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import write_idx_dataset

from optimlab.lab import data, tune
from optimlab.lab.compare import CompareListener, compare
from optimlab.lab.errors import UserError
from optimlab.lab.outdir import LOCK, MANIFEST, open_for_write
from optimlab.lab.runspec import EpochRecord
from optimlab.lab.store import Store
from optimlab.lab.tasks import clear_data_cache

REPO = Path(__file__).resolve().parents[2]
ARGS = ["compare", "--task", "iris-softmax", "--optimizers", "sgd:lr=0.1", "--epochs", "2",
        "--seeds", "1", "--batch-size", "30", "--quiet"]


def one_line(code: int, out: str, err: str) -> str:
    """The error line of a refused command (asserting exit 2, one line, no traceback)."""
    assert code == 2, err
    assert out == "" and "Traceback" not in err and err.count("\n") == 1, err
    return err


def foreign_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, owner TEXT)")
    db.execute("INSERT INTO runs VALUES (1, 'another program')")
    db.commit()
    db.close()
    return path


class _StopInEpoch2(CompareListener):
    def run_progress(self, done: int, total: int) -> None:
        if done == total - 1:
            raise KeyboardInterrupt


def interrupt_in_epoch_2(out: Path) -> None:
    """A comparison of ARGS in ``out`` interrupted in its last epoch (its checkpoint is there)."""
    with pytest.raises(KeyboardInterrupt):
        compare(task="iris-softmax", optimizers="sgd:lr=0.1", epochs=2, seeds=1, batch_size=30,
                out=out, listener=_StopInEpoch2(), checkpoint_every=0)


def test_a_folder_optimlab_did_not_create_is_refused_and_kept(run_cli, snapshot, tmp_path):
    mine = tmp_path / "p"
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "checkpoints" / "mine.ckpt").write_text("x")
    foreign = tmp_path / "f"
    foreign.mkdir()
    foreign_db(foreign / "results.db")
    before = snapshot(tmp_path)
    err = one_line(*run_cli(*ARGS, "--out", str(mine)))
    assert "is not an optimlab output folder (it holds checkpoints" in err
    for argv in (["--out", str(foreign)], ["--out", str(foreign), "--resume"]):
        assert "results.db and no optimlab.json" in one_line(*run_cli(*ARGS, *argv))
    assert "no optimlab.json" in one_line(*run_cli("report", str(foreign)))
    assert snapshot(tmp_path) == before  # not a byte, not a table, not a lock file


def test_a_foreign_sqlite_storage_is_refused_and_left_byte_identical(run_cli, tmp_path):
    db = foreign_db(tmp_path / "theirs.db")
    before = db.read_bytes()
    err = one_line(*run_cli(
        "tune", "--task", "iris-softmax", "--optimizers", "sgd", "--budget", "1", "--epochs", "1",
        "--seeds", "1", "--quiet", "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "t"),
    ))
    assert "not an Optuna storage (its tables: runs); it is left as it is" in err
    assert db.read_bytes() == before


def test_a_users_file_in_an_optimlab_folder_survives_a_fresh_start(run_cli, tmp_path):
    out = tmp_path / "o"

    interrupt_in_epoch_2(out)
    ours = list((out / "checkpoints").glob("*.pt"))
    assert len(ours) == 1  # the interrupted run's checkpoint
    (out / "checkpoints" / "mine.ckpt").write_text("the user's")
    (out / "notes.txt").write_text("the user's too")
    code, _, err = run_cli(*ARGS, "--out", str(out))  # no --resume: a fresh start
    assert code == 0, err
    assert (out / "checkpoints" / "mine.ckpt").read_text() == "the user's"
    assert (out / "notes.txt").read_text() == "the user's too"
    assert not ours[0].exists()
    with Store.open(out) as store:
        assert [r.status for r in store.runs()] == ["finished"]


def test_a_report_of_a_live_comparison_shows_its_runs_unfinished(run_cli, tmp_path):
    out = tmp_path / "o"

    interrupt_in_epoch_2(out)
    with open_for_write(out, "compare", json.loads((out / MANIFEST).read_text())["config"],
                        json.loads((out / MANIFEST).read_text())["data"], resume=True):
        # as while a comparison runs: the folder is locked
        code, stdout, err = run_cli("report", str(out), "--json")
        assert code == 0, err
    (row,) = json.loads(stdout)["summary"]
    assert row["unfinished_runs"] == 1 and row["seeds"] == 1 and row["seeds_finished"] == 0


def test_jobs_0_keeps_the_results(run_cli, snapshot, tmp_path):
    out = tmp_path / "o"
    assert run_cli(*ARGS, "--out", str(out))[0] == 0
    before = snapshot(out)
    assert "Invalid jobs 0" in one_line(*run_cli(*ARGS, "--out", str(out), "--jobs", "0"))
    assert snapshot(out) == before


_MAIN = "import runpy; runpy.run_module('optimlab', run_name='__main__', alter_sys=True)"


def test_a_second_comparison_on_the_same_out_is_refused_while_the_first_runs(run_cli, tmp_path):
    out = tmp_path / "o"
    first = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "compare", "--task", "iris-softmax", "--optimizers", "sgd",
         "--epochs", "100000", "--batch-size", "1", "--seeds", "1", "--jobs", "1", "--quiet",
         "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300  # a busy machine starts a torch process slowly
        while not ((out / MANIFEST).exists() and (out / LOCK).read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first comparison never took its folder"
            time.sleep(0.05)
        err = one_line(*run_cli(*ARGS, "--out", str(out)))
        assert f"{out} is in use by pid {first.pid}; wait for it to finish" in err
        assert one_line(*run_cli(*ARGS, "--out", str(out), "--resume"))
        # the first one's configuration, as the first one wrote it
        assert json.loads((out / MANIFEST).read_text())["config"]["epochs"] == 100000
    finally:
        first.kill()
        first.wait(timeout=60)
    code, _, err = run_cli(*ARGS, "--out", str(out))  # the lock died with its process
    assert code == 0, err


def test_resume_with_other_data_is_refused_naming_what_changed(run_cli, snapshot, tmp_path):
    a = write_idx_dataset(tmp_path / "a", 40, 20, seed=1)
    b = write_idx_dataset(tmp_path / "b", 40, 20, seed=2)
    out = tmp_path / "o"
    mnist = ["compare", "--task", "mnist-mlp", "--optimizers", "sgd:lr=0.01", "--epochs", "1",
             "--seeds", "1", "--quiet", "--out", str(out)]
    assert run_cli(*mnist, "--data-dir", str(a))[0] == 0
    before = snapshot(out)
    err = one_line(*run_cli(*mnist, "--data-dir", str(b), "--resume"))
    assert f"the data changed (--data-dir: {a.resolve()} -> {b.resolve()}" in err
    err = one_line(*run_cli(*mnist, "--resume"))  # the embedded sample instead of the files
    assert f"--data-dir: {a.resolve()} -> None" in err
    write_idx_dataset(a, 40, 20, seed=3)  # same folder, other images
    clear_data_cache()  # as a new process would: this one has read the old images
    data.clear_cache()
    err = one_line(*run_cli(*mnist, "--data-dir", str(a), "--resume", "--force"))
    assert "the data changed (data content: " in err
    assert snapshot(out) == before


RAW = "postgresql://tuner2:ab@cd:ef/gh@127.0.0.1:{port}/db"
FRAGMENTS = ("ab@", "cd:ef", "ef/gh", "/gh@", "%40cd", "cd%3A")


@pytest.mark.parametrize("port", ["1", "notaport"])
def test_a_password_with_at_colon_and_slash_is_never_shown(run_cli, tmp_path, port):
    err = one_line(*run_cli(
        "tune", "--task", "iris-softmax", "--optimizers", "sgd", "--budget", "1", "--epochs", "1",
        "--seeds", "1", "--quiet", "--storage", RAW.format(port=port), "--out", str(tmp_path / "t"),
    ))
    assert f"tuner2:***@127.0.0.1:{port}/db" in err
    assert not any(f in err for f in FRAGMENTS), err


def test_a_full_disk_is_one_line_and_leaves_a_folder_that_resumes(run_cli, tmp_path, monkeypatch):
    out, reference = tmp_path / "o", tmp_path / "ref"
    assert run_cli(*ARGS, "--out", str(reference))[0] == 0
    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if self.name.endswith(".tmp") and ".pt." in self.name:  # a checkpoint being written
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    err = one_line(*run_cli(*ARGS, "--out", str(out), "--checkpoint-every", "0"))
    assert "No space left on device (" in err and ".pt); free some space, then run the same " \
        "command with --resume" in err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(Path, "write_bytes", real)
    code, _, err = run_cli(*ARGS, "--out", str(out), "--resume")
    assert code == 0, err
    with Store.open(out) as resumed, Store.open(reference) as uninterrupted:
        (run,) = uninterrupted.runs()
        assert resumed.steps(run.run_id)[1] == uninterrupted.steps(run.run_id)[1]
        assert [r.status for r in resumed.runs()] == ["finished"]


def test_a_full_disk_under_the_store_rolls_back_and_names_the_file(tmp_path):
    with Store.open(tmp_path) as store:
        store.begin_run("r", task="t", optimizer="o", seed=0, config={})
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own SQLITE_FULL
        with pytest.raises(OSError) as info:
            store.write_progress("r", steps=[(i, 1.0, 0.1) for i in range(1, 5000)],
                                 epochs=[EpochRecord(1, 1.0, 1.0, 0.5, 1.0, 4999)],
                                 wall_time_s=1.0, step_time_share=None)
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "results.db")
        assert store.count_rows("steps") == 0 and store.run_status("r") == "running"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


#: a coordinator as ``optimlab tune --workers 2`` starts its workers (parallel.start_processes,
#: which start_local_workers calls), the workers sleeping where they would tune
_COORDINATOR = """
import sys, time
from optimlab.lab import parallel
procs = parallel.start_processes(time.sleep, [(300,), (300,)], threads=1)
print(" ".join(str(p.pid) for p in procs), flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_worker_processes_end_when_their_coordinator_is_killed():
    coordinator = subprocess.Popen(
        [sys.executable, "-c", _COORDINATOR], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    workers: list[int] = []
    try:
        workers = [int(w) for w in coordinator.stdout.readline().split()]
        assert len(workers) == 2 and all(_running(w) for w in workers)
        time.sleep(1.0)  # let them start up (a kill before their start-up is caught too)
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _running(w)], "workers outlived their coordinator"
    finally:
        coordinator.kill()
        coordinator.wait()
        for w in workers:  # none should be left; if one is, it must not outlive the test
            if _running(w):
                os.kill(w, signal.SIGKILL)


def test_tune_refuses_to_continue_on_other_data(tmp_path):
    a = write_idx_dataset(tmp_path / "a", 40, 20, seed=1)
    out = tmp_path / "t"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({
        "format": "optimlab-output", "version": 1, "kind": "tune", "config": {},
        "data": {"mnist-mlp": {"data_dir": None}}, "files": [LOCK]}))
    with pytest.raises(UserError, match=r"the data changed \(mnist-mlp: .* -> .*\); resume with "
                                         r"the same data, or choose another --out"):
        tune(task="mnist-mlp", optimizers="sgd", budget=1, epochs=1, seeds=1,
                  data_dir=a, out=out)
    assert not (out / "tune.db").exists()


def test_out_on_a_read_only_file_system_is_one_line(run_cli, tmp_path, monkeypatch):
    existing = tmp_path / "ro"
    existing.mkdir()
    real_open, real_mkdir = os.open, Path.mkdir

    def read_only_open(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and args and args[0] & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    def read_only_mkdir(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path)) and not self.exists():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    err = one_line(*run_cli(*ARGS, "--out", str(existing)))
    assert f"Cannot write into {existing}: Read-only file system" in err
    err = one_line(*run_cli(*ARGS, "--out", str(tmp_path / "new")))
    assert f"Cannot create {tmp_path / 'new'}: Read-only file system" in err
    assert list(existing.iterdir()) == []


def test_an_unexpected_error_keeps_its_traceback(run_cli, tmp_path, monkeypatch):
    from optimlab.lab.compare import run as compare_run

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(compare_run, "_run", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        run_cli(*ARGS, "--out", str(tmp_path / "o"))


def test_sigterm_stops_at_a_consistent_point_and_the_folder_resumes(run_cli, tmp_path, monkeypatch):
    from optimlab.lab import bookkeeping

    out, reference = tmp_path / "o", tmp_path / "ref"
    assert run_cli(*ARGS, "--out", str(reference))[0] == 0
    real = bookkeeping.save_checkpoint

    def save_then_terminated(path, payload):  # SIGTERM lands between the checkpoint and the rows
        # unhandled, SIGTERM would end the test process itself
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), "SIGTERM unhandled"
        os.kill(os.getpid(), signal.SIGTERM)
        real(path, payload)

    monkeypatch.setattr(bookkeeping, "save_checkpoint", save_then_terminated)
    code, _, err = run_cli(*ARGS, "--out", str(out), "--checkpoint-every", "0")
    assert code == 143 and "interrupted: the runs in training saved at the end of their epoch" in err
    with Store.open(out) as store:
        (run,) = store.runs()
        assert store.count_rows("epochs", run.run_id) == 1  # the rows of the checkpointed epoch
    monkeypatch.setattr(bookkeeping, "save_checkpoint", real)
    code, _, err = run_cli(*ARGS, "--out", str(out), "--resume")
    assert code == 0, err
    with Store.open(out) as resumed, Store.open(reference) as uninterrupted:
        assert resumed.steps(run.run_id)[1] == uninterrupted.steps(run.run_id)[1]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the CLI put it back


def test_a_fresh_start_removes_only_tensorboards_own_event_files(tmp_path):
    from optimlab.lab.compare.run import _remove_tensorboard_logs
    from optimlab.lab.trackers import run_folder

    root = tmp_path / "tensorboard"
    cleared, kept = (run_folder(root, f"iris-softmax/sgd:lr=0.1/seed={s}") for s in (0, 1))
    for folder in (cleared, kept):
        folder.mkdir(parents=True)
        (folder / "events.out.tfevents.1.host.1.0").write_bytes(b"events")
    (root / "iris-softmax" / "notes.txt").write_text("the user's")
    _remove_tensorboard_logs(root, ["iris-softmax/sgd:lr=0.1/seed=0"])
    assert not cleared.exists()  # its events gone, then the folder they left empty
    assert (kept / "events.out.tfevents.1.host.1.0").exists()  # another run's
    assert (root / "iris-softmax" / "notes.txt").read_text() == "the user's"


def _idx_files(folder: Path, images_dims: tuple[int, ...], n_labels: int) -> Path:
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            b"\x00\x00\x08" + bytes([len(images_dims)]) + struct.pack(f">{len(images_dims)}I", *images_dims))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            b"\x00\x00\x08\x01" + struct.pack(">I", n_labels) + bytes(n_labels))
    return folder


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "30000000"], "Invalid number of seeds 30000000 (at most 10,000)"),
        (["--optimizers", "adam@\u00b2"], "Invalid '@\u00b2' in 'adam@\u00b2'"),
        (["--optimizers", "adam:fused=true,foreach=true"], "cannot be `True` together"),
        (["--optimizers", "adam:lr=" + "9" * 5000], "is too long (at most 2,000 characters)"),
        (["--batch-size", "9" * 5000], "Invalid batch size 9999"),
        (["--out", "{file}"], "is a file, not a folder"),
        (["--task", "mnist-mlp", "--data-dir", "{zero}"], "holds 0 images"),
        (["--task", "mnist-mlp", "--data-dir", "{huge}"], "declares dimensions 4294967295x"),
    ],
    ids=["seeds", "superscript", "fused-foreach", "long-spec", "long-batch", "out-file",
         "idx-empty", "idx-huge"],
)
def test_the_issues_tracebacks_are_one_line_each(run_cli, tmp_path, argv, message):
    (tmp_path / "file").write_text("x")
    places = {"file": tmp_path / "file", "zero": _idx_files(tmp_path / "zero", (0, 28, 28), 0),
              "huge": _idx_files(tmp_path / "huge", (2**32 - 1,) * 3, 1)}
    argv = [a.format(**places) for a in argv]
    out = ["--out", str(tmp_path / "o")] if "--out" not in argv else []
    assert message in one_line(*run_cli(*ARGS, *out, *argv))


@pytest.mark.parametrize("command", [["surface", "--steps", "5", "--format", "none"],
                                     ["tune", "--task", "iris-softmax", "--optimizers", "sgd"],
                                     ["bench", "step", "--json"]])
def test_out_on_a_file_is_one_line_for_every_command(run_cli, tmp_path, command):
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "r.json" if command[0] == "bench" else tmp_path / "file"
    argv = [*command, str(target)] if command[-1] == "--json" else [*command, "--out", str(target)]
    assert "file" in one_line(*run_cli(*argv))
    assert (tmp_path / "file").read_text() == "x"
