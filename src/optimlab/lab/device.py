"""The device a run trains on: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

``auto`` is the first CUDA device when torch sees one, else the CPU (Apple's ``mps`` is used only
when asked for: not every operation has an MPS kernel). A device that is not there is a
:class:`UserError` naming what is, before anything is written.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

from .errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"

_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(text: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` that ``text`` names, checked to exist on this machine.

    Raises:
        UserError: unknown name, or a device this machine does not have.
    """
    if isinstance(text, torch.device):
        text = str(text)
    name = "auto" if text is None else str(text).strip().lower()
    if not _PATTERN.match(name):
        raise UserError(f"Invalid device {text!r} (expected {DEVICE_CHOICES})")
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError("Device 'mps' is not available on this machine (use --device cpu)")
        return torch.device("mps")
    if not torch.cuda.is_available():
        why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA device found"
        raise UserError(f"Device {name!r} is not available: {why} (use --device cpu)")
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        names = ", ".join(f"cuda:{i}" for i in range(count))
        raise UserError(f"Device {name!r} is not available ({count} CUDA device(s): {names})")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """What the device is, for the record: the GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return cpu_name()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
