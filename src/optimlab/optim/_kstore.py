"""The on-disk kernel cache as a safe store: shared objects are loaded into the process, so nothing
another user could have written is ever loaded.

A folder is used only if it is a real directory (not a symlink), owned by the current user and not
writable by group or others; it is opened once (``O_NOFOLLOW``) and every later file operation goes
through that descriptor, so renaming or swapping the path afterwards changes nothing. A shared
object is loaded only if it is a regular file (not a symlink), owned by the current user, not
writable by group or others, and its SHA-256 equals the one recorded in its sidecar
(``NAME.sha256``, written atomically when it was built); on Linux the verified descriptor itself is
loaded (``/proc/self/fd/N``), so the file checked is the file loaded. Builds and the tuning record
are written under the folder's lock (``fcntl.flock`` on ``.lock``).

Folders, in order: ``OPTIMLAB_KERNEL_CACHE`` (or ``$XDG_CACHE_HOME/optimlab/kernels``, default
``~/.cache/optimlab/kernels``); where that is unusable, ``optimlab-kernels-UID`` under the system
temporary folder, created with ``mkdir`` and refused if it already exists and is not ours (a
symlink planted there is never followed); where that is refused too, a fresh private folder for
this process (``mkdtemp``). A refused file that belongs to someone else is left alone and the
kernel is built in the next folder; one of ours that fails its hash is rebuilt in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no POSIX owners
    fcntl = None

#: whether a verified descriptor can be loaded by path (the file checked is the file loaded)
_PROC_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_lock = threading.Lock()
_folders: dict[str, list[Folder]] = {}
#: descriptors of the loaded shared objects, kept open: dlopen knows a library by the name it was
#: opened with, so a ``/proc/self/fd/N`` must never name another file later in the process
_loaded_fds: list[int] = []


class Refused(OSError):
    """A file or folder the store will not use, with the reason."""


def configured() -> Path:
    """The configured cache folder (``OPTIMLAB_KERNEL_CACHE``, else the user's cache folder)."""
    env = os.environ.get("OPTIMLAB_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optimlab" / "kernels"


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def check_private(st: os.stat_result, what: str, kind: Callable[[int], bool]) -> None:
    """Raise :class:`Refused` unless ``st`` is of ``kind``, ours, and not group/world-writable."""
    if not kind(st.st_mode):
        raise Refused(f"{what} is not a {'folder' if kind is stat.S_ISDIR else 'regular file'}")
    uid = _uid()
    if uid is not None and st.st_uid != uid:
        raise Refused(f"{what} belongs to uid {st.st_uid}, not {uid}")
    if uid is not None and st.st_mode & 0o022:
        raise Refused(f"{what} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")


class Folder:
    """A private kernel folder, held open by descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        try:
            check_private(os.fstat(fd), str(path), stat.S_ISDIR)
            if not os.access(path, os.W_OK):
                raise Refused(f"{path} is not writable")
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def where(self, name: str) -> str:
        """A path that names ``name`` inside this very folder, in this process and in child
        processes started with ``pass_fds=folder.pass_fds`` (the compiler)."""
        return f"/proc/self/fd/{self.fd}/{name}" if _PROC_FD else str(self.path / name)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.fd,) if _PROC_FD else ()

    @contextlib.contextmanager
    def locked(self, exclusive: bool = True) -> Iterator[None]:
        """The folder's lock: exclusive to write, shared to read."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(".lock", os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=self.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def open_verified(self, name: str) -> int | None:
        """A descriptor of ``name`` if it passes every check, None if it does not exist.

        Raises:
            Refused: it exists and fails a check (the reason says which).
        """
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as e:  # ELOOP: a symlink
            raise Refused(f"{name}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            check_private(st, name, stat.S_ISREG)
            recorded = self._recorded_hash(name)
            if recorded != _hash_fd(fd):
                raise Refused(f"{name} does not match the hash recorded when it was built")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def owner_of(self, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_uid
        except FileNotFoundError:
            return None

    def _recorded_hash(self, name: str) -> str:
        try:
            fd = os.open(name + ".sha256", os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        except OSError:
            raise Refused(f"{name} has no recorded hash") from None
        try:
            check_private(os.fstat(fd), name + ".sha256", stat.S_ISREG)
            return os.read(fd, 256).decode("ascii", "replace").strip()
        finally:
            os.close(fd)

    def publish(self, tmp: str, name: str) -> None:
        """Record the hash of the built file ``tmp``, then move it to ``name`` (both atomic)."""
        fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o700)  # whatever the umask: only we may write what is loaded
            digest = _hash_fd(fd)
        finally:
            os.close(fd)
        self.write_atomic(name + ".sha256", digest.encode())
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def write_atomic(self, name: str, data: bytes) -> None:
        tmp = f".{name}.{os.getpid()}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=self.fd
        )
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def read_json(self, name: str) -> dict[str, Any]:
        """A JSON record of ours in this folder, or ``{}`` (missing, foreign or unreadable)."""
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        except OSError:
            return {}
        try:
            check_private(os.fstat(fd), name, stat.S_ISREG)
            with os.fdopen(os.dup(fd), "rb") as f:
                data = json.loads(f.read(1 << 22))
            return data if isinstance(data, dict) else {}
        except (Refused, ValueError, OSError):
            return {}
        finally:
            os.close(fd)


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def _fallback_name() -> Path:
    uid = _uid()
    return Path(tempfile.gettempdir()) / f"optimlab-kernels-{uid if uid is not None else 'user'}"


def _open_configured(path: Path) -> Folder:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    return Folder(path)


def _open_fallback(path: Path) -> Folder:
    # created here with mkdir, or an existing one that passes every check (never a symlink)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    return Folder(path)


def folders() -> list[Folder]:
    """The usable kernel folders, best first (see the module docstring); at least one."""
    configured_path = configured()
    key = f"{configured_path}|{tempfile.gettempdir()}"
    with _lock:
        found = _folders.get(key)
        if found is None:
            found = []
            candidates = ((_open_configured, configured_path), (_open_fallback, _fallback_name()))
            for opener, path in candidates:
                with contextlib.suppress(OSError):  # refused or unusable: the next one
                    found.append(opener(path))
            if not found:
                found.append(Folder(Path(tempfile.mkdtemp(prefix="optimlab-kernels-"))))
            _folders[key] = found
    return found


def reset() -> None:
    """Forget the folders opened so far (after the configuration changed; for tests)."""
    with _lock:
        for found in _folders.values():
            for folder in found:
                with contextlib.suppress(OSError):
                    os.close(folder.fd)
        _folders.clear()


def load(name: str, build: Callable[[Folder, str], None], loader: Callable[[str], Any]) -> Any:
    """``loader(path)`` of the verified shared object ``name``, built first where needed.

    ``build(folder, tmp)`` writes the shared object to ``folder.where(tmp)``; it runs under the
    folder's lock. Refused files are never loaded (see the module docstring).
    """
    for folder in list(folders()):
        try:
            result = _load_or_build(folder, name, build, loader)
        except OSError:
            continue  # a lock file or folder that is not ours any more: the next folder
        if result is not None:
            return result
    # every folder refused the name: a private folder of this process's own
    private = Folder(Path(tempfile.mkdtemp(prefix="optimlab-kernels-")))
    with _lock:
        for found in _folders.values():
            found.append(private)
    tmp = f".{name}.tmp"
    build(private, tmp)
    private.publish(tmp, name)
    result = _try_load(private, name, loader)
    if result is None:  # pragma: no cover - our own fresh file failed its own checks
        raise RuntimeError(f"cannot load the kernel {name} just built")
    return result


def _load_or_build(
    folder: Folder, name: str, build: Callable[[Folder, str], None], loader: Callable[[str], Any]
) -> Any:
    with folder.locked(exclusive=False):
        result = _try_load(folder, name, loader)
    if result is not None:
        return result
    with folder.locked(exclusive=True):
        result = _try_load(folder, name, loader)  # built by another process meanwhile?
        if result is not None:
            return result
        owner = folder.owner_of(name)
        if owner is not None and owner != _uid():
            return None  # someone else's file: left alone, built in the next folder
        tmp = f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            build(folder, tmp)
            folder.publish(tmp, name)
        finally:
            folder.remove(tmp)
        return _try_load(folder, name, loader)


def _try_load(folder: Folder, name: str, loader: Callable[[str], Any]) -> Any:
    try:
        fd = folder.open_verified(name)
    except Refused:
        return None
    if fd is None:
        return None
    if not _PROC_FD:  # pragma: no cover - checked by path, loaded by path
        os.close(fd)
        return loader(str(folder.path / name))
    try:
        result = loader(f"/proc/self/fd/{fd}")
    except BaseException:
        os.close(fd)
        raise
    _loaded_fds.append(fd)
    return result
