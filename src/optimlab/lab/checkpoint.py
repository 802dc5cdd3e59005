"""Checkpoints of a run: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors, numbers, strings, lists, tuples and dicts, so that the safe
unpickler loads it, and its content's SHA-256 (:func:`content_digest`), checked on load. The
write is atomic (:func:`optimlab.lab.files.atomic_write_bytes`): a crash
at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import hashlib
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


#: the signals held back by :func:`deferred_interrupt` (SIGTERM where the platform has it)
HELD_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) and SIGTERM until the block ends, then deliver them to the
    handlers they would have reached (Ctrl-C's raises ``KeyboardInterrupt``, the CLI's SIGTERM
    handler :class:`~optimlab.lab.errors.Terminated`; an ignored signal stays ignored).

    Used around "write checkpoint, then commit the epoch's rows" so that an interrupt can never
    leave the two out of step. Outside the main thread it does nothing (signals go to the main
    thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in HELD_SIGNALS}

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    for s in HELD_SIGNALS:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for signum in dict.fromkeys(received):  # in the order they came, once each
        handler = previous[signum]
        if handler == signal.SIG_IGN:
            continue
        if callable(handler):
            handler(signum, None)
        else:  # the default action (or a handler set outside Python): as if it came now
            signal.raise_signal(signum)


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


def content_digest(obj: Any) -> str:
    """SHA-256 of a checkpoint's content: every tensor's dtype, shape and bytes, every other
    value's type and ``repr``, dicts in key order.

    It is computed on the values, not the file: the zip container torch writes checks no
    checksum, so a flipped byte inside a tensor would load as a silently different weight.
    """
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(b"{")
        for key in sorted(obj, key=repr):
            _feed(digest, key)
            _feed(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)):
        digest.update(b"[" if isinstance(obj, list) else b"(")
        for item in obj:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialize ``payload`` (plus the format version and its :func:`content_digest`) and write it
    atomically to ``path``."""
    content = {"format_version": FORMAT_VERSION, **payload}
    buffer = io.BytesIO()
    torch.save({**content, "sha256": content_digest(content)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with the safe unpickler.

    A checkpoint that records its :func:`content_digest` must match it (older ones, without
    one, load as they are).

    Raises:
        UserError: the file cannot be read (truncated, corrupted, another format) or its content
            does not match its digest, naming it and how to restart the run.
    """
    hint = f"delete {path} to restart that run"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means an unusable file; name it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"Cannot read checkpoint {path}: {first[:300]}; {hint}") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"Cannot read checkpoint {path}: format version "
            f"{payload.get('format_version') if isinstance(payload, dict) else '?'} "
            f"(expected {FORMAT_VERSION}); {hint}"
        )
    recorded = payload.pop("sha256", None)
    if recorded is not None and recorded != content_digest(payload):
        raise UserError(
            f"Checkpoint {path} is damaged (its content does not match the sha256 it was saved "
            f"with); {hint}"
        )
    return payload
