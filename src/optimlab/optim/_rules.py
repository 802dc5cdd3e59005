"""Shared maths of every update rule, and the two array backends the rules run on.

Each update rule in optimlab is one Python function over *array-likes*: objects that offer the small
in-place arithmetic vocabulary below (``mul_``, ``add_``, ``addcmul_``, ``addcdiv_``, ``lerp_``,
``sqrt``, ``maximum_``...). Two backends implement that vocabulary:

* :class:`TensorList` runs every operation as one ``torch._foreach_*`` call over a list of tensors
  (the multi-tensor path);
* :class:`Tensorwise` runs it with ordinary tensor operations on a single tensor (the per-tensor
  path).

A third, ``_fused.Recorder``, records the operations instead, and the fused path compiles the
record into one loop (C on CPU, Inductor elsewhere). The rule is therefore written once and is the
single source of truth for every path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

Scalar = float | int


class TensorList:
    """A list of tensors whose arithmetic runs as ``torch._foreach_*`` multi-tensor ops."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self):
        return iter(self.tensors)

    @staticmethod
    def _arg(x: Any) -> Any:
        return x.tensors if isinstance(x, TensorList) else x

    # in place -----------------------------------------------------------------------------
    def mul_(self, x: Any) -> TensorList:
        torch._foreach_mul_(self.tensors, self._arg(x))
        return self

    def div_(self, x: Any) -> TensorList:
        torch._foreach_div_(self.tensors, self._arg(x))
        return self

    def add_(self, x: Any, alpha: Scalar = 1) -> TensorList:
        if isinstance(x, TensorList):
            torch._foreach_add_(self.tensors, x.tensors, alpha=alpha)
        else:
            torch._foreach_add_(self.tensors, x * alpha if alpha != 1 else x)
        return self

    def addcmul_(self, a: TensorList, b: TensorList, value: Scalar = 1) -> TensorList:
        torch._foreach_addcmul_(self.tensors, a.tensors, b.tensors, value=value)
        return self

    def addcdiv_(self, a: TensorList, b: TensorList, value: Scalar = 1) -> TensorList:
        torch._foreach_addcdiv_(self.tensors, a.tensors, b.tensors, value=value)
        return self

    def lerp_(self, end: TensorList, weight: Scalar) -> TensorList:
        torch._foreach_lerp_(self.tensors, end.tensors, weight)
        return self

    def sqrt_(self) -> TensorList:
        torch._foreach_sqrt_(self.tensors)
        return self

    def maximum_(self, other: TensorList) -> TensorList:
        torch._foreach_maximum_(self.tensors, other.tensors)
        return self

    def copy_(self, other: TensorList) -> TensorList:
        torch._foreach_copy_(self.tensors, other.tensors)
        return self

    # out of place -------------------------------------------------------------------------
    def mul(self, x: Any) -> TensorList:
        return TensorList(torch._foreach_mul(self.tensors, self._arg(x)))

    def div(self, x: Any) -> TensorList:
        return TensorList(torch._foreach_div(self.tensors, self._arg(x)))

    def add(self, x: Any, alpha: Scalar = 1) -> TensorList:
        if isinstance(x, TensorList):
            return TensorList(torch._foreach_add(self.tensors, x.tensors, alpha=alpha))
        return TensorList(torch._foreach_add(self.tensors, x * alpha if alpha != 1 else x))

    def addcmul(self, a: TensorList, b: TensorList, value: Scalar = 1) -> TensorList:
        return TensorList(torch._foreach_addcmul(self.tensors, a.tensors, b.tensors, value=value))

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.tensors))

    def abs(self) -> TensorList:
        return TensorList(torch._foreach_abs(self.tensors))

    def neg(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))

    def clone(self) -> TensorList:
        return TensorList([t.clone() for t in self.tensors])


class Tensorwise:
    """One tensor with the same vocabulary as :class:`TensorList`, using ordinary tensor ops."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Tensor):
        self.tensor = tensor

    @staticmethod
    def _arg(x: Any) -> Any:
        return x.tensor if isinstance(x, Tensorwise) else x

    def mul_(self, x: Any) -> Tensorwise:
        self.tensor.mul_(self._arg(x))
        return self

    def div_(self, x: Any) -> Tensorwise:
        self.tensor.div_(self._arg(x))
        return self

    def add_(self, x: Any, alpha: Scalar = 1) -> Tensorwise:
        if isinstance(x, Tensorwise):
            self.tensor.add_(x.tensor, alpha=alpha)
        else:
            self.tensor.add_(x * alpha if alpha != 1 else x)
        return self

    def addcmul_(self, a: Tensorwise, b: Tensorwise, value: Scalar = 1) -> Tensorwise:
        self.tensor.addcmul_(a.tensor, b.tensor, value=value)
        return self

    def addcdiv_(self, a: Tensorwise, b: Tensorwise, value: Scalar = 1) -> Tensorwise:
        self.tensor.addcdiv_(a.tensor, b.tensor, value=value)
        return self

    def lerp_(self, end: Tensorwise, weight: Scalar) -> Tensorwise:
        self.tensor.lerp_(end.tensor, weight)
        return self

    def sqrt_(self) -> Tensorwise:
        self.tensor.sqrt_()
        return self

    def maximum_(self, other: Tensorwise) -> Tensorwise:
        torch.maximum(self.tensor, other.tensor, out=self.tensor)
        return self

    def copy_(self, other: Tensorwise) -> Tensorwise:
        self.tensor.copy_(other.tensor)
        return self

    def mul(self, x: Any) -> Tensorwise:
        return Tensorwise(self.tensor.mul(self._arg(x)))

    def div(self, x: Any) -> Tensorwise:
        return Tensorwise(self.tensor.div(self._arg(x)))

    def add(self, x: Any, alpha: Scalar = 1) -> Tensorwise:
        if isinstance(x, Tensorwise):
            return Tensorwise(self.tensor.add(x.tensor, alpha=alpha))
        return Tensorwise(self.tensor.add(x * alpha if alpha != 1 else x))

    def addcmul(self, a: Tensorwise, b: Tensorwise, value: Scalar = 1) -> Tensorwise:
        return Tensorwise(self.tensor.addcmul(a.tensor, b.tensor, value=value))

    def sqrt(self) -> Tensorwise:
        return Tensorwise(self.tensor.sqrt())

    def abs(self) -> Tensorwise:
        return Tensorwise(self.tensor.abs())

    def neg(self) -> Tensorwise:
        return Tensorwise(self.tensor.neg())

    def clone(self) -> Tensorwise:
        return Tensorwise(self.tensor.clone())


ArrayLike = TensorList | Tensorwise


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
