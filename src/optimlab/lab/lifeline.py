"""Worker processes that end when their coordinator dies, ``kill -9`` included.

A coordinator (``optimlab compare --jobs N``, ``optimlab tune --workers N``) starts workers that
write into its store. Orphaned by a ``kill -9`` of the coordinator, they would go on training
while a ``--resume`` trains the same runs again. A worker calls :func:`die_with_parent` first:

* on Linux the kernel sends it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
* everywhere a daemon thread checks every ``poll_s`` seconds that its parent is still the
  coordinator (``os.getppid()`` changes when the parent dies) and ends the process if not;
* a parent that died before either was set up is caught by comparing ``os.getppid()`` with the
  coordinator's pid, which the coordinator passes to its workers (:mod:`optimlab.lab.parallel`).

The parent-death signal fires when the *thread* that started the worker ends, so coordinators
start workers from their main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

#: exit status of a worker that ended because its coordinator died
ORPHAN_EXIT = 3


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel for ``signum`` when the parent dies; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    return False


def _orphaned(parent: int) -> bool:
    return os.getppid() != parent


def _watch(parent: int, poll_s: float) -> None:
    while True:
        time.sleep(poll_s)
        if _orphaned(parent):
            os._exit(ORPHAN_EXIT)


def die_with_parent(parent: int, *, poll_s: float = 1.0, use_signal: bool = True) -> None:
    """Make this worker end when its coordinator ``parent`` (a pid) dies.

    Args:
        parent: the coordinator's pid, as the coordinator saw it (``os.getpid()`` there).
        poll_s: seconds between the fallback thread's checks.
        use_signal: also ask for the parent-death signal (Linux); the thread always runs.
    """
    if use_signal:
        set_parent_death_signal()
    if _orphaned(parent):  # the coordinator died before the signal was set up
        os._exit(ORPHAN_EXIT)
    threading.Thread(target=_watch, args=(parent, poll_s), name="optimlab-lifeline",
                     daemon=True).start()
