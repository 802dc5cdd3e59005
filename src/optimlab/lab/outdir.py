"""The output folder as a store optimlab owns: a manifest, a lock, and only its own files touched.

A folder optimlab writes into (``--out DIR`` of compare, tune, surface, and of ``report`` over
several comparisons) is one that it created
or one that carries its manifest ``DIR/optimlab.json``::

    {"format": "optimlab-output", "version": 1, "kind": "compare",
     "versions": {"optimlab": "0.1.0", "torch": "2.13.0", "python": "3.11.7"},
     "config": {...}, "data": {...}, "files": ["results.db", "checkpoints/", ...]}

Rules, in the order :func:`open_for_write` applies them:

1. ``DIR`` is a folder (created when missing); a file, or a folder that cannot be created,
   is refused with one line.
2. A folder without a manifest is optimlab's only while it is empty: a non-empty folder without
   one, or a manifest of another format or kind, is refused. Nothing is written there first.
3. An exclusive lock (``flock`` on ``DIR/.optimlab.lock``, held until :meth:`OutputFolder.close`)
   makes a second process fail with "DIR is in use by pid N" instead of mixing two runs' rows.
4. With ``resume``, the manifest's configuration and data fingerprint must equal the new ones;
   what changed is named. A changed configuration is accepted with ``force`` (the caller then
   drops the runs no longer planned); changed data never is: a resumed run would train its
   first epochs on one dataset and the rest on another.
5. Files are written only under names recorded in ``files`` (:meth:`OutputFolder.file` records a
   name before its first write) and removed only when recorded (:meth:`OutputFolder.remove`).
   Inside a recorded folder (``checkpoints/``) the writers name each file themselves (one
   checkpoint per run, named from the run's id and its hash) and remove only those names.
   A file that exists but was not recorded is refused, never overwritten; nothing is ever
   deleted by walking a folder, so a user's ``DIR/checkpoints/mine.ckpt`` survives.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import UserError
from .files import atomic_write_text

try:  # POSIX; elsewhere folders are not locked (documented in open_for_write)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "optimlab.json"
LOCK = ".optimlab.lock"
FORMAT = "optimlab-output"
FORMAT_VERSION = 1
KINDS = ("compare", "tune", "surface", "claims", "report")  # report: `optimlab report A B --out C`

#: how a data-fingerprint key is named in messages (the option that sets it)
DATA_KEY_NAMES = {"data_dir": "--data-dir", "source": "data source", "sha256": "data content",
                  "train": "training examples", "test": "test examples"}


def versions() -> dict[str, str]:
    """The versions a folder's results depend on (recorded in its manifest; a resume under
    others is logged as a warning: the numbers may differ in the last bits)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("optimlab", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            found[package] = "unknown"
    found["python"] = platform.python_version()
    return found


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256: its prefix names it
    return str(value)


def diff(old: Mapping[str, Any], new: Mapping[str, Any], names: Mapping[str, str] | None = None
         ) -> list[str]:
    """``"key: old -> new"`` for every key whose value differs (keys of both, in order)."""
    names = names or {}
    keys = list(old) + [k for k in new if k not in old]
    return [f"{names.get(k, k)}: {_show(old.get(k))} -> {_show(new.get(k))}"
            for k in keys if old.get(k) != new.get(k)]


def _clean_name(name: str) -> str:
    """A path relative to the folder, ``/``-separated, never leaving it."""
    parts = PurePosixPath(name.replace(os.sep, "/")).parts
    if not parts or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"Invalid output file name: {name!r} (expected a path inside the folder)")
    return "/".join(parts) + ("/" if name.endswith("/") else "")


class OutputFolder:
    """An open output folder: its manifest, and the lock held until :meth:`close`.

    Attributes:
        path: the folder.
        kind: ``compare``, ``tune`` or ``surface``.
        manifest: the manifest as written (``config``, ``data``, ``files``...).
        created: True when this call created the folder (or adopted an empty one).
    """

    def __init__(self, path: Path, kind: str, manifest: dict[str, Any], lock_fd: int | None,
                 created: bool) -> None:
        self.path, self.kind, self.manifest, self.created = path, kind, manifest, created
        self._lock_fd = lock_fd

    # ---- what optimlab wrote --------------------------------------------------------------------
    def written(self) -> list[str]:
        """The names optimlab recorded in this folder (folders end in ``/``)."""
        return list(self.manifest["files"])

    def owns(self, name: str) -> bool:
        """Whether ``name`` (a path inside the folder) was recorded as optimlab's."""
        return _clean_name(name) in self.manifest["files"]

    def file(self, name: str) -> Path:
        """The path of ``name``, recorded as optimlab's before anything is written to it.

        Parent folders that do not exist are created and recorded (``"checkpoints/"``).

        Raises:
            UserError: ``name`` exists but optimlab did not write it (it is never overwritten).
        """
        name = _clean_name(name)
        path = self.path / name
        if name in self.manifest["files"]:
            return path
        if path.exists() or path.is_symlink():
            raise UserError(
                f"{path} exists and was not written by optimlab; move it out of {self.path} "
                "or choose another --out"
            )
        parts = name.rstrip("/").split("/")
        added = [f"{'/'.join(parts[:i])}/" for i in range(1, len(parts))
                 if not (self.path / "/".join(parts[:i])).exists()]
        self.manifest["files"] = [*self.manifest["files"], *added, name]
        self._save()
        for folder in added:
            _mkdir(self.path / folder)
        if name.endswith("/"):
            _mkdir(path)
        return path

    def remove(self, name: str) -> bool:
        """Delete ``name`` if optimlab recorded it (a folder only when empty); True if removed.

        A name optimlab did not record is left alone, whatever it holds.
        """
        name = _clean_name(name)
        if name not in self.manifest["files"]:
            return False
        path = self.path / name
        try:
            if name.endswith("/"):
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):  # a user's file is inside: keep both
                return False
            raise
        self.manifest["files"] = [f for f in self.manifest["files"] if f != name]
        self._save()
        return True

    # ---- configuration ------------------------------------------------------------------------
    def update(self, *, config: Mapping[str, Any] | None = None,
               data: Mapping[str, Any] | None = None) -> None:
        """Record a new configuration and/or data fingerprint (a fresh start in the folder)."""
        if config is not None:
            self.manifest["config"] = dict(config)
        if data is not None:
            self.manifest["data"] = dict(data)
        self._save()

    def _save(self) -> None:
        self.manifest["updated"] = time.time()
        _write_manifest(self.path, self.manifest)

    # ---- lock ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the lock (the lock file stays: it is optimlab's and holds no data)."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a handle dropped without close() must not keep the folder locked
        with contextlib.suppress(Exception):
            self.close()


def check_writable_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check, before any work, that a file can be written atomically at ``path``.

    A temporary file is created beside it and removed at once: this is what the atomic write
    will do, so a missing folder, a read-only file system or a folder given as file fails now,
    in one line, instead of after the work that would have been written.

    Raises:
        UserError: ``path`` is a folder, its folder is missing, or nothing can be written there.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder (expected a file name)")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: the folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
    except OSError as e:
        raise UserError(f"{option} {path} cannot be written: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create {path}: {e.strerror or e}") from None


def _write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, default=str) + "\n"  # keys in the order given
    atomic_write_text(folder / MANIFEST, text)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none.

    Raises:
        UserError: a manifest that is not optimlab's, is unreadable, or is of a newer version.
    """
    path = Path(folder) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    try:
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file")
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not an optimlab manifest ({e}); choose another --out") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not an optimlab manifest; choose another --out")
    version = manifest.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{path} has format version {version!r}; this optimlab reads version "
            f"{FORMAT_VERSION} (upgrade optimlab, or choose another --out)"
        )
    if not isinstance(manifest.get("files"), list):
        raise UserError(f"{path} is not an optimlab manifest (no file list); choose another --out")
    return manifest


def verify(folder: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """The manifest of an output folder optimlab wrote (of ``kind``, when given), for readers.

    Raises:
        UserError: no such folder, no manifest, a foreign manifest, or another kind.
    """
    path = Path(folder)
    if not path.is_dir():
        raise UserError(f"No optimlab output folder at {path} (its command writes one with --out)")
    manifest = read_manifest(path)
    if manifest is None:
        raise UserError(f"{path} is not an optimlab output folder (no {MANIFEST})")
    if kind is not None and manifest.get("kind") != kind:
        raise UserError(f"{path} holds an optimlab {manifest.get('kind')} output, not a {kind} output")
    return manifest


def open_existing(folder: str | os.PathLike[str], kind: str) -> OutputFolder:
    """Lock an output folder optimlab wrote, to rewrite its own files (``optimlab report``).

    The configuration and data stay as recorded.

    Raises:
        UserError: not an optimlab folder of ``kind`` (:func:`verify`), or in use.
    """
    path = Path(folder)
    verify(path, kind)
    fd = _lock(path)
    try:
        manifest = verify(path, kind)  # again, under the lock
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    return OutputFolder(path, kind, manifest, fd, created=False)


def _foreign_entries(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if e.name != LOCK)
    except OSError as e:
        raise UserError(f"Cannot read {folder}: {e.strerror or e}") from None


def _refuse_foreign(folder: Path, entries: list[str]) -> None:
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise UserError(
        f"{folder} is not an optimlab output folder (it holds {shown} and no {MANIFEST}); "
        "optimlab writes only into folders it created: choose another --out"
    )


def _lock(folder: Path) -> int | None:
    """Take the folder's exclusive lock and write this pid into the lock file."""
    if fcntl is None:  # pragma: no cover - no flock on this platform
        return None
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(folder / LOCK, flags, 0o644)
    except OSError as e:
        raise UserError(f"Cannot write into {folder}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise UserError(f"Cannot lock {folder}: {e.strerror or e}") from None
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = (folder / LOCK).read_text().strip()
        who = f"pid {int(holder)}" if holder.isdigit() else "another process"
        raise UserError(
            f"{folder} is in use by {who}; wait for it to finish, or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:
        os.close(fd)
        raise UserError(f"Cannot write into {folder}: {e.strerror or e}") from None
    return fd


def open_for_write(
    folder: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    resume: bool = False,
    force: bool = False,
    restart: str = "drop --resume to start over",
) -> OutputFolder:
    """Open (or create) ``folder`` as ``kind``'s output folder and lock it for this process.

    Args:
        folder: the ``--out`` folder.
        kind: ``compare``, ``tune`` or ``surface``.
        config: the configuration, JSON-ready (what ``--resume`` must find unchanged).
        data: the data fingerprint (:func:`optimlab.lab.tasks.data_fingerprint`).
        resume: continue the folder's work: the configuration and data must be unchanged.
        force: with ``resume``, accept a changed configuration (never changed data).
        restart: how to start over instead, for the messages that refuse to resume.

    Without ``resume`` the manifest takes the new configuration; the caller then removes the
    files it wrote before (:meth:`OutputFolder.remove`). On platforms without ``flock`` the
    folder is not locked.

    Raises:
        UserError: the rules of the module docstring, each as one line.
    """
    if kind not in KINDS:
        raise ValueError(f"Invalid kind: {kind!r} (expected one of {', '.join(KINDS)})")
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, not a folder; choose another --out")
    created = False
    try:
        if not path.is_dir():
            path.mkdir(parents=True)
            created = True
    except FileExistsError:
        if not path.is_dir():
            raise UserError(f"--out {path} is a file, not a folder; choose another --out") from None
    except OSError as e:
        raise UserError(f"Cannot create {path}: {e.strerror or e}") from None
    # refuse a foreign folder before the lock file is written into it
    if read_manifest(path) is None and not created and _foreign_entries(path):
        _refuse_foreign(path, _foreign_entries(path))
    fd = _lock(path)
    handle = None
    try:
        manifest = read_manifest(path)  # again, under the lock: another process may have won
        if manifest is None:
            entries = _foreign_entries(path)
            if entries:
                _refuse_foreign(path, entries)
            manifest = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind,
                        "versions": versions(), "created": time.time(), "config": dict(config),
                        "data": dict(data), "files": [LOCK]}
            created = True
        elif manifest.get("kind") != kind:
            raise UserError(
                f"{path} holds an optimlab {manifest.get('kind')} output; a {kind} needs "
                "another --out"
            )
        elif resume:
            data_changes = diff(manifest.get("data") or {}, data, DATA_KEY_NAMES)
            if data_changes:
                raise UserError(
                    f"Cannot resume {path}: the data changed ({'; '.join(data_changes)}); resume "
                    f"with the same data, or {restart}"
                )
            config_changes = diff(manifest.get("config") or {}, config)
            if config_changes and not force:
                raise UserError(
                    f"Cannot resume {path}: the configuration changed "
                    f"({'; '.join(config_changes)}); pass --force to resume anyway, or {restart}"
                )
            changed = diff(manifest.get("versions") or {}, versions())
            if changed:
                log.warning("resuming %s under other versions (%s)", path, "; ".join(changed))
            manifest["config"] = dict(config)
        else:
            manifest["config"], manifest["data"] = dict(config), dict(data)
        manifest["versions"] = versions()
        handle = OutputFolder(path, kind, manifest, fd, created)
        handle._save()
        return handle
    except BaseException:
        if handle is None and fd is not None:
            os.close(fd)
        elif handle is not None:
            handle.close()
        raise
