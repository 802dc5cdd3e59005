"""Constructor checks shared by every optimizer; each message names the argument and its value."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a real number or 0-d tensor, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element")
        if value.is_complex() or not value.is_floating_point():
            raise TypeError(f"{name} must be a real number or 0-d tensor, got {value.dtype}")
        return float(value)
    return float(value)


def check_lr(value: Any) -> None:
    v = _number("lr", value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"Invalid learning rate: {v!r} (expected a finite number >= 0)")


def check_non_negative(name: str, value: Any, label: str | None = None) -> None:
    """``label`` is the wording torch.optim uses (``epsilon`` for ``eps``)."""
    v = _number(name, value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(
            f"Invalid {label or name} value: {value!r} (expected a finite number >= 0)"
        )


def check_unit_interval(name: str, value: Any) -> None:
    v = _number(name, value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"Invalid {name} value: {value!r} (expected 0 <= {name} < 1)")


def check_betas(value: Any) -> None:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"betas must be a pair of numbers, got {type(value).__name__}")
    if len(value) != 2:
        raise ValueError(f"betas must have length 2, got {len(value)}")
    if isinstance(value[0], torch.Tensor) != isinstance(value[1], torch.Tensor):
        raise ValueError("betas must be either both floats or both Tensors")
    for i, b in enumerate(value):
        v = _number(f"betas[{i}]", b)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b!r} (expected 0 <= beta < 1)")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Invalid {name}: {value!r} (expected one of {valid})")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
