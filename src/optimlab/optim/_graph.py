"""The rule's tape as a ``torch.fx`` graph, and the kernel ``torch.compile`` (Inductor) makes of it.

This is the fused path off the C backend's ground (CUDA, bfloat16/float16, or
``OPTIMLAB_FUSED_BACKEND=inductor``), and its fallback where nothing can be compiled (the graph runs
uncompiled, one eager operation at a time). A graph takes the tape's inputs as 1-d tensors of one
length (one parameter's storage, its gradient's and its state's, in memory order) and the scalar
slots as a float64 vector, so a new learning rate or step never rebuilds anything and one kernel
serves every parameter of its size class.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, fx

from ._ops import ONE, evaluate


class _GraphArith:
    """The :class:`._ops.Arith` of graph nodes."""

    def __init__(self, g: fx.Graph, dtype: torch.dtype) -> None:
        self.g, self.dtype = g, dtype

    @staticmethod
    def v(a: Any) -> Any:
        return 1 if a is ONE else a

    def _fn(self, fn: Callable[..., Any], *args: Any) -> fx.Node:
        return self.g.call_function(fn, tuple(map(self.v, args)))

    def add(self, a: Any, b: Any) -> fx.Node:
        return self._fn(operator.add, a, b)

    def sub(self, a: Any, b: Any) -> fx.Node:
        return self._fn(operator.sub, a, b)

    def mul(self, a: Any, b: Any) -> Any:
        if a is ONE or b is ONE:
            return self.v(b if a is ONE else a)
        return self._fn(operator.mul, a, b)

    def div(self, a: Any, b: Any) -> fx.Node:
        return self._fn(operator.truediv, a, b)

    def sqrt(self, a: Any) -> fx.Node:
        return self._fn(torch.sqrt, a)

    def abs(self, a: Any) -> fx.Node:
        return self._fn(torch.abs, a)

    def neg(self, a: Any) -> fx.Node:
        return self._fn(torch.neg, a)

    def maximum(self, a: Any, b: Any) -> fx.Node:
        return self._fn(torch.maximum, a, b)

    def weight(self, a: Any) -> Any:
        # lerp's weight in the tensors' dtype, as torch's lerp kernels take it
        return self.g.call_method("to", (a, self.dtype)) if isinstance(a, fx.Node) else a

    def bind(self, a: Any) -> Any:
        return a


def build_graph(structure: tuple, dtype: torch.dtype) -> fx.GraphModule:
    """An FX graph ``forward(x0, ..., x{n-1}, scalars)`` that replays ``structure``.

    Operations are written out of place (the op table's expressions, :data:`._ops.OPS`); each
    input the rule mutated receives its final value with one ``copy_`` at the end, which Inductor
    turns into the store of a single fused loop.
    """
    n_inputs = structure[0]
    g = fx.Graph()
    inputs = [g.placeholder(f"x{i}") for i in range(n_inputs)]
    scalars = g.placeholder("scalars")
    slots: dict[int, fx.Node] = {}

    def slot(k: int) -> fx.Node:
        if k not in slots:
            slots[k] = g.call_function(operator.getitem, (scalars, k))
        return slots[k]

    values, mutated = evaluate(structure, _GraphArith(g, dtype), inputs, slot)
    for i in mutated:
        # the only writes to memory: each mutated input once, with its final value
        g.call_method("copy_", (inputs[i], values[i]))
    g.output(None)
    return fx.GraphModule(torch.nn.Module(), g)


class GraphKernel:
    """The compiled (or, until compiled, eager) replay of one structure for one dtype/device.

    ``compiled`` is the ``torch.compile`` wrapper: every call goes through dynamo's frame and
    guards. Compiling also captures what Inductor returned for the graph (``direct``) and how
    dynamo fed it (``arg_spec``): from then on the kernel is called straight, without the
    ~0.1-0.3 ms of dynamo's per-call work. The guards that skips are ours by construction: the
    cache key fixes structure, dtype, device and size class, and the inputs are always 1-d
    contiguous tensors of one length and the scalar vector of the structure's length.
    """

    __slots__ = (
        "arg_spec", "calls", "ckernel", "compiled", "direct", "failed", "graph", "pending"
    )

    def __init__(self, graph: fx.GraphModule) -> None:
        self.graph = graph
        self.ckernel: Any = None
        self.compiled: Callable[..., Any] | None = None
        self.direct: Callable[..., Any] | None = None
        self.arg_spec: tuple[tuple[str, int], ...] | None = None
        self.pending: tuple[Sequence[Tensor], Tensor] | None = None
        self.calls = 0
        self.failed = False

    def capture(self, gm: fx.GraphModule, example_inputs: Sequence[Any]) -> Callable[..., Any]:
        """The ``torch.compile`` backend of this kernel: Inductor, keeping what it returns."""
        from torch._inductor.compile_fx import compile_fx

        compiled = compile_fx(gm, example_inputs)
        if self.direct is not None or self.pending is None:
            # a second graph for one kernel (a guard failed): keep to dynamo's dispatch
            self.direct = self.arg_spec = None
            return compiled
        inputs, scalars = self.pending
        self.arg_spec = _arg_spec(example_inputs, [*inputs, scalars])
        if self.arg_spec is not None:
            self.direct = compiled
        return compiled

    def call_direct(self, inputs: Sequence[Tensor], scalars: Tensor) -> None:
        values = [*inputs, scalars]
        sizes = (inputs[0].numel(), scalars.numel())
        self.direct(*[values[i] if kind == "t" else sizes[i] for kind, i in self.arg_spec])


def _arg_spec(example_inputs: Sequence[Any], values: list[Tensor]) -> tuple | None:
    """How to rebuild the compiled graph's arguments from the inputs: ``("t", i)`` for input
    ``i``, ``("n", 0)`` for the inputs' length, ``("n", 1)`` for the scalars' length. None where
    an argument cannot be told apart (then every call goes through dynamo)."""
    numel, n_scalars = values[0].numel(), values[-1].numel()
    spec = []
    for e in example_inputs:
        if isinstance(e, Tensor):
            found = [i for i, v in enumerate(values) if v is e]
            if len(found) != 1:
                return None
            spec.append(("t", found[0]))
            continue
        hint = e if isinstance(e, int) else getattr(getattr(e, "node", None), "hint", None)
        if not isinstance(hint, int) or numel == n_scalars or hint not in (numel, n_scalars):
            return None
        spec.append(("n", 0 if hint == numel else 1))
    return tuple(spec)


def memory_order(t: Tensor) -> Tensor:
    """A dense tensor's elements as a 1-d view, in memory order (its own storage)."""
    return t.as_strided((t.numel(),), (1,), t.storage_offset())
