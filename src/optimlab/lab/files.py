"""Files the lab writes: atomically, or not at all.

Every output (checkpoints, reports, figures, CSV, animations, benchmark results) goes through
:func:`atomic_output`: the content is written to a temporary file in the target's folder, flushed
and fsync'd, given the usual mode (``0666 & ~umask``), then ``os.replace``'d over the target, and
the folder is fsync'd. A crash or a kill at any moment leaves either the old file or the new one,
never a torn one; the temporary file of an interrupted write is named ``.NAME.*.tmp`` and
:func:`remove_stale_temps` deletes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved over ``path`` when the block ends.

    On an exception the temporary file is deleted and ``path`` is left as it was. The folder is
    created if missing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # mkstemp creates files readable by the owner only; give them the usual mode
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            # a failed write (ENOSPC...) names no file: name the one being written
            raise OSError(e.errno, e.strerror or str(e), str(target)) from None
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete the temporary files that killed writes of ``path`` left (they are never read).

    Only this file's: runs trained at once share a folder, and another run's temporary file may
    be in the middle of its write.
    """
    path = Path(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back
    mask = os.umask(0)
    os.umask(mask)
    return mask
