"""Bad files a user may point optimlab at: each is one UserError line, never a traceback, and
nothing is written into a file that is not optimlab's."""

from __future__ import annotations

import gzip
import sqlite3
import struct

import pytest
import torch

from optimlab.lab import data
from optimlab.lab.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from optimlab.lab.errors import UserError
from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec
from optimlab.lab.store import Store


def _idx(path, dims, payload=b""):
    path.write_bytes(b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload)
    return path


def test_idx_with_zero_images_is_refused(tmp_path):
    images = _idx(tmp_path / "i", (0, 28, 28))
    labels = _idx(tmp_path / "l", (0,))
    with pytest.raises(UserError, match="holds 0 images"):
        data.read_idx_pair(images, labels)


@pytest.mark.parametrize(
    "dims",
    [(2**32 - 1,) * 3, (2**16,) * 4],  # the second multiplies to 2**64: 0 in int64 arithmetic
    ids=["huge", "wraps-int64"],
)
def test_idx_dimensions_beyond_the_bound_are_refused_before_reading(tmp_path, dims):
    with pytest.raises(UserError, match=r"declares dimensions .* bytes \(this reader loads at most"):
        data.read_idx(_idx(tmp_path / "i", dims, b"\x00" * 64))


def test_a_compressed_idx_file_is_decompressed_only_as_far_as_its_header_says(tmp_path, monkeypatch):
    path = tmp_path / "i.gz"
    header = b"\x00\x00\x08\x01" + struct.pack(">I", 10)
    path.write_bytes(gzip.compress(header + b"\x00" * 10_000_000))  # 10 MB of zeros, 10 KB on disk
    reads = []
    original = gzip.GzipFile.read

    def read(self, size=-1):
        reads.append(size)
        return original(self, size)

    monkeypatch.setattr(gzip.GzipFile, "read", read)
    with pytest.raises(UserError, match="longer than its header says"):
        data.read_idx(path)
    assert reads and all(0 <= size <= len(header) + 11 or size == 4 + 4 * 255 for size in reads)


def _interrupted_checkpoint(tmp_path):
    spec = RunSpec("iris-softmax", "adam:lr=0.01", epochs=2, batch_size=30)

    def stop(record):
        if record.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(spec, checkpoint_dir=tmp_path, checkpoint_every=0, on_epoch=stop)
    return spec, checkpoint_path(tmp_path, spec.run_id())


def test_a_flipped_byte_inside_a_weight_is_found(tmp_path):
    spec, ckpt = _interrupted_checkpoint(tmp_path)
    weight = next(iter(load_checkpoint(ckpt)["model"].values()))
    raw = bytearray(ckpt.read_bytes())
    at = raw.find(weight.numpy().tobytes()[:64])  # torch's zip stores it as it is, unchecked
    assert at > 0
    raw[at + 3] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=rf"Checkpoint .* is damaged .*; delete {ckpt} to restart"):
        run(spec, checkpoint_dir=tmp_path)


def test_a_checkpoint_with_the_right_run_but_wrong_shapes_says_how_to_restart(tmp_path):
    spec, ckpt = _interrupted_checkpoint(tmp_path)
    payload = load_checkpoint(ckpt)
    payload["model"] = {k: torch.zeros(*(s + 1 for s in v.shape)) for k, v in payload["model"].items()}
    save_checkpoint(ckpt, {k: v for k, v in payload.items() if k != "format_version"})
    with pytest.raises(UserError, match=rf"does not fit run .*size mismatch.*; delete {ckpt} to restart that run"
                       ) as info:
        run(spec, checkpoint_dir=tmp_path)
    assert "\n" not in str(info.value)
    payload["model"] = {}
    save_checkpoint(ckpt, {k: v for k, v in payload.items() if k != "format_version"})
    with pytest.raises(UserError, match="does not fit run .*Missing key"):
        run(spec, checkpoint_dir=tmp_path)
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated
    with pytest.raises(UserError, match=rf"Cannot read checkpoint .*; delete {ckpt} to restart that run"):
        run(spec, checkpoint_dir=tmp_path)
    ckpt.unlink()  # the hint works: the run starts over
    assert run(spec, checkpoint_dir=tmp_path).status == "finished"


def test_a_foreign_results_db_is_refused_and_left_byte_identical(tmp_path):
    path = tmp_path / "results.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, owner TEXT)")
    db.execute("INSERT INTO runs VALUES (1, 'another program')")
    db.commit()
    db.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for create in (True, False):
        with pytest.raises(UserError, match=r"not an optimlab results store \(its tables: runs\)"):
            Store.open(tmp_path, create=create)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    path.write_bytes(b"no database" * 50)
    with pytest.raises(UserError, match="Cannot open results store .*not an SQLite database.*left as it is"):
        Store.open(tmp_path)
