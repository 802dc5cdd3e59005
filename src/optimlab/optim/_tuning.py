"""Choosing how a C kernel walks memory on the machine it runs on, as autotuning compilers do.

The fastest way to stream a step through memory differs between CPUs: how many interleaved
streams a core keeps in flight, how far each advances at a time, whether the threads split the
parameters laid end to end or each large parameter (the loop tuned on one Xeon reached 36-77% of
the axpy bandwidth on an AMD EPYC). Every :class:`._cc.Variant` rounds every element identically,
so the choice can be made by measuring, without changing any result:

* a kernel call over a layout of :data:`TUNE_MIN_NUMEL` elements or more looks up its *layout
  class*: the kernel (its source, compiler, flags and CPU), the thread count, and the number of
  elements and of segments to the nearest power of two;
* where the kernel store (:mod:`._kstore`) holds a choice for that class, it is used from the
  first call; otherwise the calls after the first run each :data:`CANDIDATES` in turn,
  :data:`ROUNDS` times, timed (these are real steps: nothing extra is computed, and the first
  step costs nothing more). A variant replaces :data:`DEFAULT` only if it beat it by
  :data:`MARGIN` in every round (each round times every candidate back to back, so a change of
  load between rounds does not decide); of those, the fastest wins. The choice is recorded in
  the store (``tuning.json``, written under its lock) and used from then on, in this process and
  the next ones. On a busy machine (some candidate's own times spread by more than
  :data:`NOISE`) up to :data:`MAX_ROUNDS` rounds are timed, and a choice made in that noise is
  used in this process only, never recorded;
* smaller layouts sit in the caches, where the variants differ by less than a call's overhead:
  they use :data:`DEFAULT` and are never timed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from . import _kstore
from ._cc import Variant

#: the variants tried; :data:`DEFAULT` first
CANDIDATES: tuple[Variant, ...] = (
    Variant(1, 256, 0),
    Variant(2, 256, 0),
    Variant(4, 256, 0),
    Variant(4, 1024, 0),
    Variant(8, 128, 0),
    Variant(1, 256, 1),
    Variant(4, 256, 1),
)
DEFAULT = CANDIDATES[0]

#: layouts from this many elements are tuned
TUNE_MIN_NUMEL = 1 << 18

#: timed calls per candidate
ROUNDS = 3
#: timed calls per candidate at most, on a busy machine
MAX_ROUNDS = 6
#: how much faster than the default a variant must be to replace it
MARGIN = 0.05
#: the spread (slowest over fastest of one candidate's timed calls) above which the machine is
#: deemed too busy to record a choice
NOISE = 1.3

RECORD = "tuning.json"
_VERSION = 1

_lock = threading.Lock()
_tuners: dict[str, Tuner] = {}
_record: dict[str, Any] | None = None


def layout_class(kernel_key: str, threads: int, numel: int, segments: int) -> str:
    return f"{kernel_key}|t{threads}|n{numel.bit_length()}|g{segments.bit_length()}"


class Tuner:
    """The variant of one layout class: recorded, or being measured."""

    __slots__ = ("calls", "chosen", "key", "samples")

    def __init__(self, key: str, chosen: Variant | None) -> None:
        self.key = key
        self.chosen = chosen
        self.calls = 0
        self.samples: dict[Variant, list[float]] = {v: [] for v in CANDIDATES}

    def next(self) -> Variant | None:
        """The variant to time on this call, or None where the choice is made (``chosen``)."""
        if self.chosen is not None:
            return None
        self.calls += 1
        if self.calls == 1:
            return None  # the first call warms caches and page tables: not timed
        i = (self.calls - 2) % len(CANDIDATES)
        return CANDIDATES[i]

    def report(self, variant: Variant, seconds: float) -> None:
        """One timed call; after :data:`ROUNDS` rounds the fastest candidate is chosen."""
        self.samples[variant].append(seconds)
        rounds = min(len(s) for s in self.samples.values())
        if rounds < ROUNDS:
            return
        timed = {v: s[:rounds] for v, s in self.samples.items()}
        noisy = any(max(s) > NOISE * min(s) for s in timed.values())
        if noisy and rounds < MAX_ROUNDS:
            return
        default = timed[DEFAULT]
        winners = [
            v
            for v in CANDIDATES
            if v != DEFAULT and all(a < (1 - MARGIN) * b for a, b in zip(timed[v], default))
        ]
        best = min(winners, key=lambda v: min(timed[v])) if winners else DEFAULT
        self.chosen = best
        if not noisy:
            _save(self.key, best, {v.label(): min(s) * 1e3 for v, s in self.samples.items()})


def tuner(key: str) -> Tuner:
    """The process-wide tuner of a layout class (shared by every optimizer)."""
    found = _tuners.get(key)
    if found is None:
        with _lock:
            found = _tuners.get(key)
            if found is None:
                found = _tuners[key] = Tuner(key, _recorded(key))
    return found


def pending() -> int:
    """How many layout classes are still being measured in this process."""
    return sum(t.chosen is None for t in _tuners.values())


def forget() -> None:
    """Forget every choice made or read in this process (the store keeps its record)."""
    global _record
    with _lock:
        _tuners.clear()
        _record = None


def _recorded(key: str) -> Variant | None:
    global _record
    if _record is None:
        _record = _kstore.folders()[0].read_json(RECORD)
    entry = _record.get("variants", {}).get(key) if _record.get("version") == _VERSION else None
    try:
        variant = Variant(*entry["variant"])
    except (TypeError, KeyError, ValueError):
        return None
    return variant if variant in CANDIDATES else None


def _save(key: str, variant: Variant, ms: dict[str, float]) -> None:
    folder = _kstore.folders()[0]
    try:
        with folder.locked(exclusive=True):
            record = folder.read_json(RECORD)
            if record.get("version") != _VERSION:
                record = {"version": _VERSION, "variants": {}}
            record.setdefault("variants", {})[key] = {
                "variant": list(variant),
                "ms": ms,
                "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            folder.write_atomic(RECORD, json.dumps(record, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # an unwritable store only means measuring again in the next process
