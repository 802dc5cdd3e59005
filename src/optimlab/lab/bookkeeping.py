"""When a run saves: its checkpoint and its store rows together, on a time interval.

Writing a checkpoint (serialise, write, fsync the file and its folder) and committing the store
(an fsync of SQLite's write-ahead log) cost milliseconds; an epoch of seed 001's Iris model costs
about one. So a run does not save after every epoch: it keeps the rows of the epochs since its
last save in memory and saves when :attr:`Saver.every_s` seconds have passed since then, when it
ends (finished or diverged), and when Ctrl-C asks it to stop. A save writes the checkpoint first,
then commits the rows up to that checkpoint in one transaction, so the store never holds rows past
the newest checkpoint of an unfinished run; a crash between the two leaves the checkpoint ahead,
and the resumed run writes the rows it holds again (``INSERT OR REPLACE`` keyed by run and step).

What a kill -9 loses is what was trained since the last save: at most ``every_s`` seconds plus the
epoch in progress, trained again, to the same numbers, on ``--resume``.

Ctrl-C and SIGTERM (:func:`stop_requests`): the first one asks the run to stop at the end of the
epoch in progress, after saving; a second one at least :data:`SECOND_INTERRUPT_S` later stops it at
once (then the epoch in progress and everything since the last save is trained again on resume).
Signals closer together are one request: a terminal's Ctrl-C reaches a worker process both
directly and forwarded by its parent.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import HELD_SIGNALS, save_checkpoint
from .errors import UserError
from .runspec import EpochRecord

if TYPE_CHECKING:
    from .store import Store

#: default seconds between two saves of a run (``optimlab compare --checkpoint-every``)
CHECKPOINT_EVERY_S = 30.0

#: a second Ctrl-C at least this long after the first stops a run at once
SECOND_INTERRUPT_S = 1.0


def check_interval(seconds: float) -> float:
    """A checkpoint interval in seconds (``>= 0``, finite), or one :class:`UserError` line."""
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds) or seconds < 0):
        raise UserError(f"Invalid checkpoint interval: {seconds!r} (expected seconds >= 0)")
    return float(seconds)


class StopRequest:
    """Whether Ctrl-C (or SIGTERM) asked the run to stop at the end of its epoch."""

    def __init__(self, previous: dict[int, Any] | None = None) -> None:
        self.signum: int | None = None
        self.first_at: float | None = None
        self.previous = previous or {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def deliver(self) -> None:
        """Hand the signal that asked to stop to the handler it would have reached (Ctrl-C's
        raises ``KeyboardInterrupt``, the CLI's SIGTERM handler
        :class:`~optimlab.lab.errors.Terminated`)."""
        if self.signum is None:
            return
        for s, h in self.previous.items():  # the block's own handler no longer holds them back
            signal.signal(s, h)
        handler = self.previous.get(self.signum, signal.SIG_DFL)
        if callable(handler):
            handler(self.signum, None)
        elif handler != signal.SIG_IGN:
            signal.raise_signal(self.signum)
        raise KeyboardInterrupt  # a handler that returned: still stop the run


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Turn Ctrl-C (SIGINT) and SIGTERM into a :class:`StopRequest` for the block (see the
    module docstring); a signal its process ignores stays ignored.

    Outside the main thread it does nothing (signals go to the main thread only): the request is
    never set there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()
        return
    previous = {s: signal.getsignal(s) for s in HELD_SIGNALS}
    request = StopRequest(previous)

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    def handle(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if request.signum is None:
            request.signum, request.first_at = signum, now
        elif now - (request.first_at or now) >= SECOND_INTERRUPT_S:
            restore()
            request.signum = signum
            request.deliver()

    for s, handler in previous.items():
        if handler != signal.SIG_IGN:
            signal.signal(s, handle)
    try:
        yield request
    finally:
        restore()


class Saver:
    """The saves of one run: rows gathered since the last save, written with its checkpoint.

    Args:
        run_id: the run's key in the store.
        store: where the rows go (None: nowhere).
        checkpoint: the run's checkpoint file (None: none is written).
        every_s: seconds between saves (0: after every epoch).
        begin: store writes that open the run (its row, rows past its checkpoint dropped), made in
            the first save's transaction: a run shorter than ``every_s`` commits once.
        clock: the time source in seconds (default: ``time.monotonic``).
    """

    def __init__(self, run_id: str, store: Store | None, checkpoint: Path | None, every_s: float,
                 begin: Callable[[], None] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.run_id, self.store, self.checkpoint = run_id, store, checkpoint
        self.every_s, self.clock, self.begin = every_s, clock or time.monotonic, begin
        self.last_save = self.clock()
        self.steps: list[tuple[int, float, float]] = []
        self.epochs: list[EpochRecord] = []
        self.saves = 0

    @property
    def active(self) -> bool:
        """Whether there is anything to save to."""
        return self.store is not None or self.checkpoint is not None

    def add(self, steps: list[tuple[int, float, float]], epoch: EpochRecord | None) -> None:
        """Keep one epoch's step rows and its record (None: a diverged epoch has none)."""
        if self.store is not None:
            self.steps.extend(steps)
            if epoch is not None:
                self.epochs.append(epoch)

    def due(self) -> bool:
        """Whether ``every_s`` has passed since the last save."""
        return self.clock() - self.last_save >= self.every_s

    def save(self, payload: Callable[[], dict[str, Any]] | None, *, wall_time_s: float,
             step_time_share: float | None, status: str = "running",
             diverged_step: int | None = None, skipped_steps: int = 0) -> None:
        """Write the checkpoint (``payload()``; None: no checkpoint, the run has ended), then
        commit the rows gathered since the last save with the run's totals and ``status``."""
        if self.checkpoint is not None and payload is not None:
            save_checkpoint(self.checkpoint, payload())
        if self.store is not None:
            with self.store.transaction():
                if self.begin is not None:
                    self.begin()
                self.store.write_progress(self.run_id, steps=self.steps, epochs=self.epochs,
                                          wall_time_s=wall_time_s, step_time_share=step_time_share,
                                          status=status, diverged_step=diverged_step,
                                          skipped_steps=skipped_steps)
            self.begin = None
        self.steps, self.epochs = [], []
        self.last_save = self.clock()
        self.saves += 1
