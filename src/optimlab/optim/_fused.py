"""The fused path: one pass over memory per step, compiled from the same update rule, in place.

Every update rule in optimlab is written once over array-likes (:mod:`._ops`). The fused path
runs that same rule a third way:

1. **Record.** The rule is called with ``_ops.Recorder`` array-likes, which write each operation
   into a ``Tape`` together with the *values* of its scalar arguments, computed by the rule in
   Python exactly as on the other paths (bias corrections, ``-lr/bc1``...). The tape's structure
   does not change from step to step, only its slot values, which are passed as data: a new
   learning rate or step never rebuilds anything.
2. **Compile.** On CPU, for float32 and float64, the structure becomes one C loop (:mod:`._cc`;
   ~0.2 s to build, cached on disk in the kernel store, :mod:`._kstore`); elsewhere (CUDA, other
   dtypes, ``OPTIMLAB_FUSED_BACKEND=inductor``) a ``torch.fx`` graph compiled by Inductor
   (:mod:`._graph`). Kernels are cached per structure and dtype for the whole process and shared
   by every optimizer. A structure is compiled the first time it is seen: a compiled loop and the
   eager graph may round differently, and a run resumed in a new process must take the same path
   at every step as one that never stopped. Where compiling is impossible the eager graph runs,
   after one warning (``fused=True`` only: the default never picks a path it cannot compile).
3. **Run in place.** Kernels read and write each parameter's, gradient's and state tensor's own
   storage: the C loop takes one segment per parameter (a pointer per tape input, as torch's
   fused multi-tensor kernels take lists), the compiled graph runs once per parameter over 1-d
   views of that storage, and torch's kernels take the tensors themselves. ``p.data_ptr()``, the
   ``p.grad`` object and the state tensors never change; gradients are only read. A gradient
   laid out unlike its parameter (other strides) is read through a copy in the parameter's
   layout.

Where torch ships a fused CPU kernel whose arithmetic is the rule's for the group's settings
(``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``, ``_fused_adagrad_``), the optimizer
names it (``RuleOptimizer._torch_kernel``) and the route (:mod:`._route`, one pure function) may
pick it: below ``AUTO_C_MIN_NUMEL`` elements by default, or without a C compiler. Called per
parameter it is bit-identical to torch.optim's fused optimizers.

Each param group keeps a :class:`._inplace.FusedGroup`: its parameters sorted by (device, dtype),
and for each share the layout the kernels were last given (pointers, state tensors, step
counters). Each step checks that layout against the live tensors at C speed (``map`` over
identities and data pointers) and lays it out afresh when anything moved: ``p.data = ...``,
``Module.to()``, ``load_state_dict``, a replaced state entry, a gradient that appeared or vanished.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import _cc, _graph, _route, _tuning
from ._ops import Tape

#: how fused kernels are built: "auto" (the C backend on CPU for float32 and float64;
#: ``torch.compile`` with Inductor elsewhere), "inductor" (``torch.compile`` everywhere), or
#: "none" to run the graphs uncompiled (still the rule's one tape; for debugging and quick tests)
BACKEND = os.environ.get("OPTIMLAB_FUSED_BACKEND", "auto")

#: elements per share from which ``fused=None`` compiles the rule with Inductor
AUTO_FUSED_MIN_NUMEL = int(
    os.environ.get("OPTIMLAB_FUSED_MIN_NUMEL", str(_route.AUTO_GRAPH_MIN_NUMEL))
)

#: elements per CPU float32/float64 share from which ``fused=None`` compiles the rule in C
AUTO_C_MIN_NUMEL = int(os.environ.get("OPTIMLAB_FUSED_C_MIN_NUMEL", str(_route.AUTO_C_MIN_NUMEL)))

#: whether the fused path calls torch's own fused kernel where its arithmetic is the rule's
#: (``OPTIMLAB_FUSED_TORCH=0`` compiles the rule for those settings too)
TORCH_KERNELS = os.environ.get("OPTIMLAB_FUSED_TORCH", "1") != "0"

#: from this many elements a parameter gets a multi-threaded Inductor kernel (CPU)
PARALLEL_MIN_NUMEL = 1 << 16

#: the dtypes torch's fused CPU kernels compute in the parameters' own precision (bfloat16 and
#: float16 are computed in float32 there, unlike the rule), hence the ones they stand in for it
TORCH_KERNEL_DTYPES = (torch.float32, torch.float64)

_INDUCTOR = ("auto", "c", "inductor")


def c_serves(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the C backend builds the kernels of (``device``, ``dtype``) tensors."""
    return BACKEND in ("auto", "c") and _cc.usable(device, dtype)


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can build fused kernels for ``device`` here."""
    if BACKEND == "none":
        return False
    if BACKEND not in _INDUCTOR:
        return True
    return _inductor_serves(device.type)


@functools.cache
def _inductor_serves(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available()
    if device_type == "cpu":
        import shutil

        cxx = os.environ.get("CXX", "").strip()
        return any(shutil.which(c) for c in ([cxx] if cxx else ["g++", "c++", "clang++"]))
    return False


def fusable(p: Tensor) -> bool:
    """Parameters a fused kernel can step in place: dense (their elements fill ``numel``
    consecutive slots in some order of their dims), strided, real floating point."""
    if p.layout != torch.strided or not p.is_floating_point():
        return False
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(p.shape, p.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


# ---- kernels -----------------------------------------------------------------------------------


class KernelCache:
    """Process-wide kernels: C loops by (structure, dtype), graphs by (structure, dtype, device,
    size class); built on first use, as the route (:mod:`._route`) chose."""

    def __init__(self) -> None:
        self._kernels: dict[tuple, _graph.GraphKernel] = {}
        self._c: dict[tuple, _cc.CKernel | None] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def clear(self) -> None:
        """Forget every kernel (and which devices were warned about)."""
        with self._lock:
            self._kernels.clear()
            self._c.clear()
            self._warned.clear()

    def __len__(self) -> int:
        return len(self._kernels) + len(self._c)

    def compiled_count(self) -> int:
        """How many kernels have been built (not counting eager graphs)."""
        graphs = sum(k.compiled is not None for k in self._kernels.values())
        return graphs + sum(k is not None for k in self._c.values())

    def c_built(self) -> list[_cc.CKernel]:
        return [k for k in self._c.values() if k is not None]

    def c_kernel(self, structure: tuple, dtype: torch.dtype) -> _cc.CKernel | None:
        """The C loop of ``structure``, or None where it cannot be built (warned once)."""
        key = (structure, dtype)
        if key not in self._c:
            with self._lock:
                if key not in self._c:
                    try:
                        self._c[key] = _cc.build(structure, dtype)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        self._c[key] = None
                        self._warn("cpu", str(e).splitlines()[0][:200])
        return self._c[key]

    def graph(self, structure: tuple, dtype: torch.dtype, key: tuple) -> _graph.GraphKernel:
        kernel = self._kernels.get(key)
        if kernel is None:
            with self._lock:
                kernel = self._kernels.get(key)
                if kernel is None:
                    kernel = self._kernels[key] = _graph.GraphKernel(
                        _graph.build_graph(structure, dtype)
                    )
        return kernel

    def run_graph(
        self, structure: tuple, segments: Sequence[Sequence[Tensor]], scalars: Tensor,
        compile: bool = True,
    ) -> str:
        """Run ``structure``'s graph on each segment (the tape's inputs as 1-d tensors of one
        length), compiled by Inductor unless ``compile`` is false or compiling failed.

        Returns:
            ``"compiled"``, ``"eager"`` (not compiled, as asked), or ``"failed"`` (compiling is
            impossible here: the eager graph ran, after one warning).
        """
        result = "eager"
        for inputs in segments:
            result = self._run_one(structure, inputs, scalars, compile)
        return result

    def _run_one(self, structure, inputs, scalars, compile) -> str:
        device, dtype, numel = inputs[0].device, inputs[0].dtype, inputs[0].numel()
        # a size class of its own past 2**31 elements, where 32-bit indexing no longer holds
        size_class = (numel >= PARALLEL_MIN_NUMEL, numel >= 1 << 31)
        key = (structure, dtype, device.type, device.index, BACKEND, size_class)
        kernel = self.graph(structure, dtype, key)
        kernel.calls += 1
        if not compile or BACKEND == "none":
            kernel.graph(*inputs, scalars)
            return "failed" if kernel.failed and compile else "eager"
        if kernel.compiled is None and not kernel.failed:
            if compiler_available(device):
                kernel.compiled = torch.compile(
                    kernel.graph,
                    backend=kernel.capture if BACKEND in _INDUCTOR else BACKEND,
                    dynamic=True,
                    fullgraph=True,
                )
            else:
                self._fail(kernel, device, "no C++ compiler or unsupported device")
        if kernel.direct is not None:
            kernel.call_direct(inputs, scalars)
            return "compiled"
        if kernel.compiled is not None:
            try:
                self._call_compiled(kernel, inputs, scalars, size_class)
                return "compiled"
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to eager
                # compiling fails before the kernel writes anything: the eager replay below
                # starts from the same tensors
                kernel.compiled = None
                self._fail(kernel, device, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        kernel.graph(*inputs, scalars)
        return "failed" if kernel.failed else "eager"

    @staticmethod
    def _call_compiled(kernel, inputs, scalars, size_class) -> None:
        if kernel.calls > 1 or BACKEND not in _INDUCTOR:
            kernel.compiled(*inputs, scalars)
            return
        from torch._inductor import config as inductor_config

        # One small kernel per graph: compiling in this process is faster than starting
        # Inductor's pool of compile workers (seconds on a small machine). Sizes are dynamic, so
        # Inductor would decide on OpenMP from the first caller's size (and its disk cache would
        # hand that choice to every later size); the size class decides instead.
        chunk = 1 if size_class[0] else 1 << 62
        kernel.pending = (inputs, scalars)
        try:
            with inductor_config.patch(compile_threads=1, **{"cpp.min_chunk_size": chunk}):
                kernel.compiled(*inputs, scalars)
        finally:
            kernel.pending = None

    def _fail(self, kernel: _graph.GraphKernel, device: torch.device, reason: str) -> None:
        kernel.failed = True
        self._warn(device.type, reason)

    def _warn(self, device_type: str, reason: str) -> None:
        if device_type not in self._warned:
            self._warned.add(device_type)
            warnings.warn(
                f"optimlab: fused optimizer kernels cannot be compiled on {device_type} "
                f"({reason}); running the fused path without compilation",
                RuntimeWarning,
                stacklevel=5,
            )


KERNELS = KernelCache()


# ---- calling a C kernel --------------------------------------------------------------------------

_cfgs: dict[tuple[int, _cc.Variant], ctypes.Array] = {}


def _cfg(threads: int, variant: _cc.Variant) -> ctypes.Array:
    found = _cfgs.get((threads, variant))
    if found is None:
        found = _cfgs[(threads, variant)] = (ctypes.c_int64 * 4)(
            threads, variant.streams, variant.block, variant.split
        )
    return found


def call_c(
    kernel: _cc.CKernel,
    launch: Any,
    scalars: Sequence[float],
    variant: _cc.Variant | None = None,
    threads: int | None = None,
) -> None:
    """Run ``kernel`` over ``launch`` (a layout's pointer arrays, see ``_inplace.Run``) with
    ``variant``, or the one the tuner gives for the layout class (:mod:`._tuning`)."""
    threads = torch.get_num_threads() if threads is None else threads
    trial = tuner = None
    if variant is None:
        tuned = launch.tuned
        if tuned is None or tuned[0] is not kernel or tuned[1] != threads:
            found = None
            if launch.numel >= _tuning.TUNE_MIN_NUMEL:
                key = _tuning.layout_class(kernel.key, threads, launch.numel, launch.nseg)
                found = _tuning.tuner(key)
            tuned = launch.tuned = (kernel, threads, found)
        tuner = tuned[2]
        if tuner is not None:
            trial = tuner.next()
            variant = trial or tuner.chosen
        variant = variant or _tuning.DEFAULT
    args = (
        launch.nseg,
        launch.ptrs_addr,
        launch.starts_addr,
        (ctypes.c_double * max(1, len(scalars)))(*scalars),
        ctypes.addressof(_cfg(threads, variant)),
        launch.ncounters,
        launch.counters_addr,
        launch.counter_kind,
    )
    if trial is None:
        kernel.fn(*args)
        return
    start = time.perf_counter()
    kernel.fn(*args)
    tuner.report(trial, time.perf_counter() - start)


def record(
    opt: Any, group: dict[str, Any], names: tuple[str, ...], step: int, states: list
) -> Tape:
    """The tape of one call of ``opt``'s rule for ``group`` at ``step``."""
    tape = Tape(2 + len(names))
    params, grads, *bufs = tape.inputs()
    opt._update(
        group,
        step,
        params,
        grads.neg() if group["maximize"] else grads,
        dict(zip(names, bufs)),
        states,
    )
    return tape
