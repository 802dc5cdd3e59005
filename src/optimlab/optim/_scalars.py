"""Array-likes whose scalar arguments may be tensors: steps that never read a number on the host.

A compiled step (``torch.compile``) and a capturable one (CUDA graphs) must not turn the step
count, the learning rate or the bias corrections into Python floats: reading a tensor on the host
breaks dynamo's graph and bakes the value into it (a recompilation whenever a scheduler changes
``lr``), and cannot be captured in a CUDA graph; a differentiable step (autograd through the
step) must keep a tensor learning rate a tensor, or its gradient is lost. In those modes the
optimizer passes the rule tensors (the step count, so that every scalar the rule computes from it,
``1 - beta**step``, ``-lr/bc1``..., is a tensor too) and the rule runs on these array-likes
instead of :class:`TensorList` and :class:`Tensorwise`. The rule itself is the same function.

A scalar argument here is a Python number, a 0-d tensor (one value for every tensor), or, for
:class:`DeviceTensorList`, a 1-d tensor with one value per tensor of the list (each parameter has
its own step count).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._rules import TensorList, Tensorwise


def _values(x: Tensor) -> Tensor | list[Tensor]:
    """A tensor scalar as the ``other`` of a multi-tensor op: one 0-d tensor for all, or a list."""
    return x if x.dim() == 0 else list(x.unbind(0))


class DeviceTensorList(TensorList):
    """:class:`TensorList` whose scalar arguments may be tensors (0-d, or 1-d per tensor)."""

    __slots__ = ()

    def _scaled(self, x: TensorList, s: Tensor) -> list[Tensor]:
        return torch._foreach_mul(x.tensors, _values(s))

    def mul_(self, x: Any) -> DeviceTensorList:
        if isinstance(x, Tensor):
            torch._foreach_mul_(self.tensors, _values(x))
            return self
        return super().mul_(x)

    def div_(self, x: Any) -> DeviceTensorList:
        if isinstance(x, Tensor):
            torch._foreach_div_(self.tensors, _values(x))
            return self
        return super().div_(x)

    def add_(self, x: Any, alpha: Any = 1) -> DeviceTensorList:
        if isinstance(alpha, Tensor):
            if isinstance(x, TensorList):
                torch._foreach_add_(self.tensors, self._scaled(x, alpha))
            else:
                torch._foreach_add_(self.tensors, _values(x * alpha))
        elif isinstance(x, Tensor):
            torch._foreach_add_(self.tensors, _values(x * alpha if alpha != 1 else x))
        else:
            super().add_(x, alpha)
        return self

    def addcmul_(self, a: TensorList, b: TensorList, value: Any = 1) -> DeviceTensorList:
        if isinstance(value, Tensor):
            # (the overload with a ``scalars`` tensor has no fake-tensor kernel on the CPU)
            torch._foreach_addcmul_(self.tensors, self._scaled(a, value), b.tensors)
            return self
        return super().addcmul_(a, b, value)

    def addcdiv_(self, a: TensorList, b: TensorList, value: Any = 1) -> DeviceTensorList:
        if isinstance(value, Tensor):
            torch._foreach_addcdiv_(self.tensors, self._scaled(a, value), b.tensors)
            return self
        return super().addcdiv_(a, b, value)

    def lerp_(self, end: TensorList, weight: Any) -> DeviceTensorList:
        if isinstance(weight, Tensor):
            torch._foreach_lerp_(self.tensors, end.tensors, _values(weight))
            return self
        return super().lerp_(end, weight)

    def mul(self, x: Any) -> DeviceTensorList:
        if isinstance(x, Tensor):
            return DeviceTensorList(torch._foreach_mul(self.tensors, _values(x)))
        return DeviceTensorList(super().mul(x).tensors)

    def div(self, x: Any) -> DeviceTensorList:
        if isinstance(x, Tensor):
            return DeviceTensorList(torch._foreach_div(self.tensors, _values(x)))
        return DeviceTensorList(super().div(x).tensors)

    def add(self, x: Any, alpha: Any = 1) -> DeviceTensorList:
        out = DeviceTensorList([t.clone() for t in self.tensors])
        return out.add_(x, alpha)

    def addcmul(self, a: TensorList, b: TensorList, value: Any = 1) -> DeviceTensorList:
        out = DeviceTensorList([t.clone() for t in self.tensors])
        return out.addcmul_(a, b, value)

    def sqrt(self) -> DeviceTensorList:
        return DeviceTensorList(super().sqrt().tensors)

    def abs(self) -> DeviceTensorList:
        return DeviceTensorList(super().abs().tensors)

    def neg(self) -> DeviceTensorList:
        return DeviceTensorList(super().neg().tensors)

    def clone(self) -> DeviceTensorList:
        return DeviceTensorList(super().clone().tensors)


class DeviceTensorwise(Tensorwise):
    """:class:`Tensorwise` whose scalar arguments may be 0-d tensors, and that autograd can
    differentiate: an "in-place" operation on a tensor the rule made itself (``fresh``: an
    intermediate such as a denominator) computes a new tensor instead, so that no value an
    earlier operation saved for the backward pass is overwritten; the parameters and the state
    are still updated in place."""

    __slots__ = ("fresh",)

    def __init__(self, tensor: Tensor, fresh: bool = False) -> None:
        super().__init__(tensor)
        self.fresh = fresh

    def _apply(self, name: str, *args: Any, **kwargs: Any) -> DeviceTensorwise:
        if self.fresh:
            self.tensor = getattr(self.tensor, name)(*args, **kwargs)
        else:
            getattr(self.tensor, name + "_")(*args, **kwargs)
        return self

    def mul_(self, x: Any) -> DeviceTensorwise:
        return self._apply("mul", self._arg(x))

    def div_(self, x: Any) -> DeviceTensorwise:
        return self._apply("div", self._arg(x))

    def add_(self, x: Any, alpha: Any = 1) -> DeviceTensorwise:
        if isinstance(alpha, Tensor):
            return self._apply("add", self._arg(x) * alpha)
        return self._apply("add", self._arg(x), alpha=alpha)

    def addcmul_(self, a: Tensorwise, b: Tensorwise, value: Any = 1) -> DeviceTensorwise:
        if isinstance(value, Tensor):
            return self._apply("addcmul", a.tensor, b.tensor * value)
        return self._apply("addcmul", a.tensor, b.tensor, value=value)

    def addcdiv_(self, a: Tensorwise, b: Tensorwise, value: Any = 1) -> DeviceTensorwise:
        if isinstance(value, Tensor):
            return self._apply("addcdiv", a.tensor * value, b.tensor)
        return self._apply("addcdiv", a.tensor, b.tensor, value=value)

    def lerp_(self, end: Tensorwise, weight: Any) -> DeviceTensorwise:
        return self._apply("lerp", end.tensor, weight)

    def sqrt_(self) -> DeviceTensorwise:
        return self._apply("sqrt")

    def maximum_(self, other: Tensorwise) -> DeviceTensorwise:
        # where() keeps only the mask for the backward pass (maximum keeps both inputs, and
        # the state it writes into is one of them); NaNs propagate as maximum's do
        a, b = self.tensor, other.tensor
        larger = torch.where(a.isnan() | (a >= b), a, b)
        if self.fresh:
            self.tensor = larger
        else:
            a.copy_(larger)
        return self

    def copy_(self, other: Tensorwise) -> DeviceTensorwise:
        if self.fresh:
            self.tensor = other.tensor.clone()
        else:
            self.tensor.copy_(other.tensor)
        return self

    def _new(self, tensor: Tensor) -> DeviceTensorwise:
        return DeviceTensorwise(tensor, fresh=True)

    def mul(self, x: Any) -> DeviceTensorwise:
        return self._new(self.tensor.mul(self._arg(x)))

    def div(self, x: Any) -> DeviceTensorwise:
        return self._new(self.tensor.div(self._arg(x)))

    def add(self, x: Any, alpha: Any = 1) -> DeviceTensorwise:
        return self._new(self.tensor).add_(x, alpha)

    def addcmul(self, a: Tensorwise, b: Tensorwise, value: Any = 1) -> DeviceTensorwise:
        return self._new(self.tensor).addcmul_(a, b, value)

    def sqrt(self) -> DeviceTensorwise:
        return self._new(self.tensor.sqrt())

    def abs(self) -> DeviceTensorwise:
        return self._new(self.tensor.abs())

    def neg(self) -> DeviceTensorwise:
        return self._new(self.tensor.neg())

    def clone(self) -> DeviceTensorwise:
        return self._new(self.tensor.clone())
