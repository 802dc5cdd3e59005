"""Checkpoints of a run: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors, numbers, strings, lists, tuples and dicts, so that the safe
unpickler loads it. The write is atomic (:func:`optimlab.lab.files.atomic_write_bytes`): a crash
at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import signal
import threading
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError
from .files import atomic_write_bytes

FORMAT_VERSION = 1


def checkpoint_path(checkpoint_dir: Path, run_id: str) -> Path:
    """The checkpoint file of ``run_id``: a readable prefix plus a hash of the full id."""
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", run_id)[:80]
    digest = sha256(run_id.encode("utf-8")).hexdigest()[:12]
    return Path(checkpoint_dir) / f"{slug}-{digest}.pt"


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) until the block ends, then raise ``KeyboardInterrupt``.

    Used around "write checkpoint, then commit the epoch's rows" so that an interrupt can never
    leave the two out of step. Outside the main thread it does nothing (signals go to the main
    thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.getsignal(signal.SIGINT)

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def rng_state(data_generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a run touches, as tensors and primitives (safe for ``weights_only``)."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(mt), gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
    }
    if data_generator is not None:
        state["data"] = data_generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], data_generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    if data_generator is not None and "data" in state:
        data_generator.set_state(state["data"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialize ``payload`` (plus the format version) and write it atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with the safe unpickler.

    Raises:
        UserError: the file cannot be read (truncated, corrupted, another format), naming it.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means an unusable file; name it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"Cannot read checkpoint {path}: {first}") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"Cannot read checkpoint {path}: format version "
            f"{payload.get('format_version') if isinstance(payload, dict) else '?'} "
            f"(expected {FORMAT_VERSION})"
        )
    return payload
