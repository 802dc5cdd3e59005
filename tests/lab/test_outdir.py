"""The output folder as a store optimlab owns: manifest, lock, own files only, resume checks."""

from __future__ import annotations

import errno
import json
import os

import pytest

from optimlab.lab import outdir
from optimlab.lab.errors import UserError
from optimlab.lab.outdir import (
    LOCK,
    MANIFEST,
    check_writable_file,
    open_existing,
    open_for_write,
    verify,
)

CONFIG = {"task": "iris-softmax", "optimizers": ["sgd"], "epochs": 2}
DATA = {"data_dir": None, "source": "sample", "train": 120, "test": 30, "sha256": "ab" * 32}


def _tree(folder):
    """Every file under ``folder`` with its bytes (the lock file's pid aside)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def test_a_new_folder_gets_a_manifest_and_records_what_optimlab_writes(tmp_path):
    out = tmp_path / "a" / "b"
    with open_for_write(out, "compare", CONFIG, DATA) as folder:
        assert folder.created
        folder.file("results.db").write_text("x")
        ckpt = folder.file("checkpoints/run-1.pt")
        ckpt.write_text("y")
        assert folder.written() == [LOCK, "results.db", "checkpoints/", "checkpoints/run-1.pt"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format"] == "optimlab-output" and manifest["kind"] == "compare"
    assert manifest["config"] == CONFIG and manifest["data"] == DATA
    assert verify(out, "compare")["files"] == manifest["files"]
    with pytest.raises(UserError, match="optimlab compare output, not a tune output"):
        verify(out, "tune")


def test_a_foreign_non_empty_folder_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "mine.ckpt").write_text("x")
    before = _tree(tmp_path)
    with pytest.raises(UserError, match="is not an optimlab output folder .*checkpoints"):
        open_for_write(tmp_path, "compare", CONFIG, DATA)
    assert _tree(tmp_path) == before and not (tmp_path / LOCK).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    open_for_write(empty, "compare", CONFIG, DATA).close()  # an empty folder is adopted


def test_out_on_a_file_or_another_kind_or_a_foreign_manifest_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        open_for_write(tmp_path / "file", "compare", CONFIG, DATA)
    with pytest.raises(UserError, match="Cannot create"):
        open_for_write(tmp_path / "file" / "below", "compare", CONFIG, DATA)
    open_for_write(tmp_path / "t", "tune", CONFIG, DATA).close()
    with pytest.raises(UserError, match="holds an optimlab tune output"):
        open_for_write(tmp_path / "t", "compare", CONFIG, DATA)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / MANIFEST).write_text('{"name": "some other tool"}')
    with pytest.raises(UserError, match="is not an optimlab manifest"):
        open_for_write(tmp_path / "m", "compare", CONFIG, DATA)


def test_files_optimlab_did_not_write_are_never_overwritten_or_removed(tmp_path):
    with open_for_write(tmp_path / "o", "compare", CONFIG, DATA) as folder:
        folder.file("checkpoints/ours.pt").write_text("ours")
        (tmp_path / "o" / "checkpoints" / "mine.ckpt").write_text("user")
        (tmp_path / "o" / "report.html").write_text("user's own page")
        with pytest.raises(UserError, match="report.html exists and was not written by optimlab"):
            folder.file("report.html")
        assert not folder.remove("report.html") and not folder.remove("checkpoints/mine.ckpt")
        assert folder.remove("checkpoints/ours.pt")
        assert not folder.remove("checkpoints/")  # the user's file is inside: the folder stays
        with pytest.raises(ValueError, match="inside the folder"):
            folder.file("../escape")
    assert (tmp_path / "o" / "checkpoints" / "mine.ckpt").read_text() == "user"
    assert (tmp_path / "o" / "report.html").read_text() == "user's own page"
    assert not (tmp_path / "o" / "checkpoints" / "ours.pt").exists()


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    with (open_for_write(tmp_path / "o", "compare", CONFIG, DATA),
          pytest.raises(UserError, match=rf"is in use by pid {os.getpid()}\b")):
        open_for_write(tmp_path / "o", "compare", CONFIG, DATA)
    open_for_write(tmp_path / "o", "compare", CONFIG, DATA).close()  # free again once closed
    with (open_existing(tmp_path / "o", "compare") as folder,
          pytest.raises(UserError, match="is in use by pid")):
        assert folder.manifest["config"] == CONFIG
        open_for_write(tmp_path / "o", "compare", CONFIG, DATA)
    with pytest.raises(UserError, match="not an optimlab output folder"):
        open_existing(tmp_path, "compare")


def test_resume_refuses_other_data_always_and_another_configuration_unless_forced(tmp_path):
    open_for_write(tmp_path, "compare", CONFIG, DATA).close()
    other = {**DATA, "data_dir": "/data/mnist", "sha256": "cd" * 32}
    before = _tree(tmp_path)
    with pytest.raises(UserError, match=r"the data changed \(--data-dir: None -> /data/mnist; "
                                        r"data content: abababababab -> cdcdcdcdcdcd\)"):
        open_for_write(tmp_path, "compare", CONFIG, other, resume=True, force=True)
    changed = {**CONFIG, "epochs": 3}
    with pytest.raises(UserError, match=r"configuration changed \(epochs: 2 -> 3\); pass --force"):
        open_for_write(tmp_path, "compare", changed, DATA, resume=True)
    assert _tree(tmp_path) == before
    with open_for_write(tmp_path, "compare", changed, DATA, resume=True, force=True) as folder:
        assert folder.manifest["config"] == changed
    with open_for_write(tmp_path, "compare", CONFIG, other) as folder:  # a fresh start may
        assert folder.manifest["data"] == other


def test_resume_under_other_versions_is_logged(tmp_path, caplog):
    open_for_write(tmp_path, "compare", CONFIG, DATA).close()
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["versions"]["torch"] = "1.0.0"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="optimlab.lab.outdir"):
        open_for_write(tmp_path, "compare", CONFIG, DATA, resume=True).close()
    assert "under other versions (torch: 1.0.0 -> " in caplog.text
    assert json.loads((tmp_path / MANIFEST).read_text())["versions"] == outdir.versions()


def test_check_writable_file_fails_before_any_work(tmp_path, monkeypatch):
    assert check_writable_file(tmp_path / "r.json", "--json") == tmp_path / "r.json"
    assert list(tmp_path.iterdir()) == []  # the probe is gone
    with pytest.raises(UserError, match="--json .* is a folder"):
        check_writable_file(tmp_path, "--json")
    with pytest.raises(UserError, match="the folder .*missing does not exist"):
        check_writable_file(tmp_path / "missing" / "r.json", "--json")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(outdir.tempfile, "mkstemp", read_only)
    with pytest.raises(UserError, match="cannot be written: Read-only file system"):
        check_writable_file(tmp_path / "r.json", "--json")
