"""The byte-level readers of the dataset file formats: IDX (MNIST, Fashion-MNIST) and CIFAR-10's
python batches (a restricted unpickler that builds numpy arrays and nothing else).

Every reader checks what it reads and turns a bad file into one :class:`UserError` line that names
the file and the problem. :mod:`optimlab.lab.data` finds the files and calls these.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

#: IDX element type codes (the third byte of the magic number) and their big-endian dtypes
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
#: the most data bytes one IDX file may declare (MNIST's training images are 47 MB)
MAX_IDX_BYTES = 1 << 32
#: columns of one CIFAR-10 row: 1024 red, then 1024 green, then 1024 blue values, row-major 32x32
CIFAR_ROW = 3 * 32 * 32
#: rows in each official CIFAR-10 batch file (smaller batches of the same layout are accepted)
CIFAR_BATCH_ROWS = 10_000

# --------------------------------------------------------------------------- IDX


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes (at most ``limit``), gunzipped when it starts with the gzip magic number."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    return g.read(-1 if limit is None else limit)
            return f.read(-1 if limit is None else limit)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"Cannot read {path}: {e}") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into a native-endian numpy array.

    The format: 2 zero bytes, 1 byte element type (see :data:`IDX_DTYPES`), 1 byte number of
    dimensions ``d``, then ``d`` big-endian uint32 sizes, then ``prod(sizes)`` elements,
    big-endian, row-major. The data must have exactly that many bytes, at most
    :data:`MAX_IDX_BYTES`; no more than that is ever read or decompressed.

    Raises:
        UserError: unreadable file, bad magic number, unknown type code, truncated header,
            dimensions beyond :data:`MAX_IDX_BYTES`, or a byte count that does not match them.
    """
    path = Path(path)
    raw = _read_bytes(path, 4 + 4 * 255)
    if len(raw) < 4:
        raise UserError(
            f"{path} is not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic"
        )
    zero, code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        magic = struct.unpack(">I", raw[:4])[0]
        codes = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise UserError(
            f"{path} is not an IDX file: magic number 0x{magic:08X} (expected 0x0000TTDD with "
            f"type TT one of {codes} and DD >= 1 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: {len(raw)} bytes, the header alone needs {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: never overflows
    shape = "x".join(map(str, dims))
    if expected > MAX_IDX_BYTES:
        raise UserError(
            f"{path} declares dimensions {shape} of {dtype.name}, {expected:,} bytes (this reader "
            f"loads at most {MAX_IDX_BYTES:,}); the file is damaged or not a dataset of images"
        )
    raw = _read_bytes(path, header + expected + 1)
    got = len(raw) - header
    if got != expected:
        state = "truncated" if got < expected else "longer than its header says"
        raise UserError(
            f"{path} is {state}: {got if got <= expected else 'more than ' + str(expected)} data "
            f"bytes, expected {expected} for dimensions {shape} of {dtype.name}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    # a native-endian, writable copy (frombuffer over bytes is read-only)
    return array.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- CIFAR-10


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickled numpy array (or a Python 2 str) needs, under their old and new
    module names. ``_reconstruct`` and ``_frombuffer`` are taken from numpy's own reductions,
    so no private module is imported by name."""
    probe = np.zeros(1, dtype=np.uint8)
    reconstruct = probe.__reduce__()[0]
    frombuffer = probe.__reduce_ex__(5)[0]
    import codecs

    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1")
        ("_codecs", "encode"): codecs.encode,
    }


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, numbers, strings and numpy arrays.

    ``find_class`` answers only the numpy array constructors of :func:`_numpy_globals`; any
    other global (a class, ``os.system``...) raises ``pickle.UnpicklingError``, so loading a
    hostile file cannot run code.
    """

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if ArrayUnpickler._allowed is None:
            ArrayUnpickler._allowed = _numpy_globals()
        try:
            return ArrayUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only numpy arrays are allowed)"
            ) from None


def _field(batch: dict[Any, Any], name: str) -> Any:
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise KeyError(name)


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: ``(n, 3072)`` uint8 rows and ``(n,)`` int64 labels.

    The official files are Python 2 pickles of ``{b"data": uint8 array n x 3072,
    b"labels": list of n ints, ...}`` with n = 10,000; they are read with
    :class:`ArrayUnpickler` (``encoding="bytes"``, as the dataset's page advises).

    Raises:
        UserError: unreadable or not a pickle, a forbidden global, missing keys, wrong shape or
            type, label count different from the row count, or a label outside 0..9.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = ArrayUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise UserError(f"Cannot read CIFAR-10 batch {path}: {e}") from None
    except (OSError, EOFError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise UserError(f"Cannot read CIFAR-10 batch {path}: not a valid pickle ({e})") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path} holds a {type(batch).__name__} (expected a CIFAR-10 batch dict)")
    try:
        data, labels = _field(batch, "data"), _field(batch, "labels")
    except KeyError as e:
        raise UserError(
            f"{path} has no {e.args[0]!r} entry (expected 'data' and 'labels')"
        ) from None
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != CIFAR_ROW
    ):
        shape = getattr(data, "shape", type(data).__name__)
        raise UserError(
            f"{path}: 'data' is {getattr(data, 'dtype', '')} {shape} "
            f"(expected uint8 of shape {CIFAR_BATCH_ROWS} x {CIFAR_ROW})"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{path}: 'labels' is not a list of integers") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise UserError(
            f"{path}: {len(data)} images but {labels.size} labels (expected one label per row)"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise UserError(f"{path}: label {int(labels.max())} outside 0..9")
    return data, labels
