"""Shared maths of every update rule.

Each update rule in optimlab is one Python function over *array-likes*: objects that offer the small
arithmetic vocabulary of :data:`._ops.OPS` (``mul_``, ``add_``, ``addcmul_``, ``addcdiv_``,
``lerp_``, ``sqrt``, ``maximum_``...). Its backends, all generated from that one table: the
multi-tensor :class:`TensorList` (``torch._foreach_*``), the per-tensor :class:`Tensorwise`, and
``_ops.Recorder``, whose record the fused path compiles into one loop (C on CPU, Inductor
elsewhere). The rule is therefore written once and is the single source of truth for every path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._ops import ArrayLike, Scalar, TensorList, Tensorwise

__all__ = [
    "ArrayLike",
    "TensorList",
    "Tensorwise",
    "apply_weight_decay",
    "bias_correction",
    "ema_",
    "ema_scalar",
    "ema_sq_",
    "full_state_like",
    "sqrt_denominator",
]


# Shared maths ----------------------------------------------------------------------------------


def ema_(avg: Any, x: Any, beta: Scalar) -> Any:
    """Exponentially weighted average in place: ``avg = beta*avg + (1-beta)*x``.

    Written as ``lerp`` (``avg + (1-beta)*(x-avg)``), which is how torch.optim and Keras compute
    it; works on tensors, array-likes and (through :func:`ema_scalar`) floats.
    """
    return avg.lerp_(x, 1 - beta)


def ema_sq_(avg: Any, x: Any, beta: Scalar) -> Any:
    """EWMA of the element-wise square in place: ``avg = beta*avg + (1-beta)*x*x``."""
    return avg.mul_(beta).addcmul_(x, x, value=1 - beta)


def ema_scalar(avg: float, x: float, beta: float) -> float:
    """The same EWMA for plain Python numbers."""
    return avg + (1 - beta) * (x - avg)


def full_state_like(p: Tensor, value: float) -> Tensor:
    """A state tensor shaped like ``p`` whose every element starts at ``value``.

    A complex parameter is optimized as its real and imaginary parts (``view_as_real``), so both
    parts start at ``value``: ``value + value*1j``. (torch.optim.Adagrad fills ``value + 0j``,
    which starts the imaginary parts' accumulators at zero.)
    """
    fill = complex(value, value) if p.is_complex() else value
    return torch.full_like(p, fill, memory_format=torch.preserve_format)


def bias_correction(beta: float, step: int) -> float:
    """``1 - beta**step``: the mass an EWMA started at zero has gathered after ``step`` updates
    (a tensor where ``step`` is one: see :mod:`._scalars`)."""
    return 1 - beta**step


def sqrt_scalar(x: Any) -> Any:
    """The square root of a scalar that may be a tensor (never read on the host)."""
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)


def is_zero(x: Any) -> bool:
    """Whether ``x`` is the number 0; a tensor never counts, since reading it would leave the
    device (its zero then costs an operation, not a wrong result)."""
    return not isinstance(x, Tensor) and x == 0


def apply_weight_decay(
    params: ArrayLike, grads: ArrayLike, *, lr: float, weight_decay: float, decoupled: bool
) -> ArrayLike:
    """Weight decay in its two forms; returns the gradient the rule should use.

    L2 (coupled, torch.optim's default): ``g = g + weight_decay*theta``.
    Decoupled (Loshchilov & Hutter; AdamW, Keras's ``weight_decay``, optax's
    ``add_decayed_weights`` before ``scale(-lr)``): ``theta = theta*(1 - lr*weight_decay)``.
    """
    if is_zero(weight_decay):
        return grads
    if decoupled:
        params.mul_(1 - lr * weight_decay)
        return grads
    return grads.add(params, alpha=weight_decay)


def sqrt_denominator(
    v: ArrayLike, *, eps: float, eps_inside_sqrt: bool, bias_correction2: float = 1.0
) -> ArrayLike:
    """The adaptive denominator ``sqrt(v_hat) + eps`` or ``sqrt(v_hat + eps)``.

    ``v_hat = v / bias_correction2``; outside the root it is computed as
    ``sqrt(v) / sqrt(bias_correction2)``, the order torch.optim.Adam uses. With
    ``bias_correction2 == 1`` no division is spent.
    """
    divide = isinstance(bias_correction2, Tensor) or bias_correction2 != 1.0
    if eps_inside_sqrt:
        d = v.div(bias_correction2) if divide else v.clone()
        return d.add_(eps).sqrt_()
    d = v.sqrt()
    if divide:
        d.div_(sqrt_scalar(bias_correction2))
    return d.add_(eps)
