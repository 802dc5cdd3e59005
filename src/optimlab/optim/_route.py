"""Which path a (param group, device, dtype) share of parameters steps on: one pure function.

The optimizer gathers the facts (:class:`Facts`) and :func:`route` decides; the kernel cache
runs whatever it is told. Every input is something that stays the same from one step to the next
and from one process to the next on the same machine (sizes, flags, the rule's settings, which
compilers exist), never a timing, so a run resumed in a new process takes the same path at every
step as one that never stopped: the paths round differently, and exact resume depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

#: what :func:`route` returns
C = "c"  #: the rule's recorded tape as one C loop, in place over the tensors' own storage
TORCH = "torch"  #: torch's own fused kernel, where its arithmetic is the rule's
GRAPH = "graph"  #: the rule's graph, compiled by Inductor (or run uncompiled), per parameter
#: None: not fused; the multi-tensor (``foreach``) or per-tensor (``forloop``) path runs the rule

#: from this many elements ``fused=None`` compiles the rule in C (CPU, float32/float64); below,
#: torch's kernel where it serves (no build at all), else the multi-tensor path
AUTO_C_MIN_NUMEL = 16_384
#: from this many elements ``fused=None`` compiles the rule with Inductor (other devices and
#: dtypes; it costs seconds of imports per process)
AUTO_GRAPH_MIN_NUMEL = 1_000_000


class Facts(NamedTuple):
    """Everything the route depends on."""

    device: str  #: the device type (``"cpu"``, ``"cuda"``...)
    numel: int  #: elements of the share (the parameters that have a gradient)
    fused: bool | None  #: the group's ``fused`` flag
    foreach: bool | None  #: the group's ``foreach`` flag
    c: bool  #: the C backend builds loops for this device and dtype (a C compiler exists)
    torch_kernel: bool | Callable[[], bool]  #: torch's fused kernel has the rule's arithmetic for
    #: these settings, device and dtype (or a function that tells, asked only where it matters)
    graph_compiler: bool  #: ``torch.compile`` can build kernels for this device
    auto_c_min: int = AUTO_C_MIN_NUMEL
    auto_graph_min: int = AUTO_GRAPH_MIN_NUMEL


def route(f: Facts) -> str | None:
    """The path of one share: :data:`C`, :data:`TORCH`, :data:`GRAPH` or None (not fused).

    * ``fused=False``, or ``foreach`` given with ``fused`` not: not fused.
    * ``fused=True``: the C loop where it serves, else torch's kernel where its arithmetic is the
      rule's, else the rule's graph (which warns once where it cannot be compiled).
    * ``fused=None`` (the default): the C loop from ``auto_c_min`` elements; torch's kernel where
      it serves (any size: it needs no build); the compiled graph from ``auto_graph_min``
      elements where a compiler exists; otherwise not fused. It never warns: without any
      compiler it is torch's kernel or the multi-tensor path.
    """
    if f.fused is False or (f.fused is None and f.foreach is not None):
        return None
    if f.c and (f.fused or f.numel >= f.auto_c_min):
        return C
    torch_kernel = f.torch_kernel() if callable(f.torch_kernel) else f.torch_kernel
    if f.fused:
        return TORCH if torch_kernel else GRAPH
    if torch_kernel:
        return TORCH
    if f.graph_compiler and f.numel >= f.auto_graph_min:
        return GRAPH
    return None
