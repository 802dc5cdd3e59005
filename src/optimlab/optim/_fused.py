"""The fused path: one pass over memory per step, compiled from the same update rule.

Every update rule in optimlab is written once over array-likes (:mod:`._rules`). The fused path
runs that same rule a third way:

1. **Record.** The rule is called with :class:`Recorder` array-likes. They do no arithmetic: they
   write each operation into a :class:`Tape`, together with the *values* of its scalar
   arguments, which the rule computes in Python exactly as on the other paths (bias corrections,
   ``-lr/bc1``...). A float argument becomes a runtime *slot*; an ``int`` literal of the rule
   (``value=1``, ``alpha=-1``) is part of the structure. The tape's structure (operations and
   their wiring) does not change from step to step, only the slot values do.
2. **Compile.** On CPU, for float32 and float64, the structure is written out as one C loop and
   built by the system C compiler (:mod:`._cc`; ~0.2 s, cached on disk, called through
   ``ctypes``). Elsewhere (CUDA, other dtypes, or ``OPTIMLAB_FUSED_BACKEND=inductor``) it becomes
   a ``torch.fx`` graph over flat buffers ``(param, grad, *state, scalars)`` compiled with
   ``torch.compile`` (Inductor: a C++/OpenMP loop on CPU, a Triton kernel on CUDA). Either way
   the changing scalars are passed as data, so a new learning rate or step count never rebuilds
   anything. Kernels are cached per (structure, dtype, device[, size class]) for the whole
   process and shared by every optimizer; sizes are dynamic, so one kernel serves every model
   (for Inductor: of its size class, below ``PARALLEL_MIN_NUMEL`` elements a single-threaded
   loop, from there an OpenMP one). Inductor's FX graph cache (``TORCHINDUCTOR_CACHE_DIR``,
   default under the system temporary directory) keeps its kernels across processes. Once
   compiled, the kernel Inductor returned is called directly, without dynamo's per-call frame
   and guard evaluation (see :class:`_Kernel`).
3. **Run on flat storage.** :class:`FlatBucket` keeps the parameters, gradients and each state
   buffer of a (param group, device, dtype) in contiguous buffers: ``p.data``, ``p.grad`` and
   ``state[p][name]`` become views into them, so ``state_dict`` still shows per-parameter
   tensors and autograd accumulates straight into the flat gradient buffer. Gradients autograd
   allocates afresh each step are read where they lie by the kernels that take one segment per
   parameter (C and torch's); Inductor's kernels get them copied into the flat buffer.

A structure is compiled the first time it is seen (also one used once, such as SGD's first
step, which copies the gradient into the momentum buffer): a compiled loop and the eager graph
may round differently, and a run resumed in a new process must take the same path at every step
as one that never stopped. Where compiling is impossible (no C compiler, a device Inductor does
not support) the eager graph is used from then on, after one warning.

Where torch ships a fused CPU kernel whose arithmetic is the rule's for the group's settings
(``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_`` and ``_fused_adagrad_``: Adam, AdamW,
AMSGrad, SGD with or without heavy-ball momentum or Nesterov, Adagrad, in torch's conventions),
the optimizer names it (``RuleOptimizer._torch_kernel``) and the fused path calls it once over
the same buffers instead (``"fused-torch"``) where no C kernel is built: with ``fused=True``
and no C compiler, and with ``fused=None`` below ``AUTO_C_MIN_NUMEL`` elements (it needs no build
at all). The tests hold it to the rule like the compiled kernels.
"""

from __future__ import annotations

import operator
import os
import shutil
import subprocess
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, fx

from . import _cc

#: how fused kernels are built: "auto" (the C backend, :mod:`._cc`, on CPU for float32 and
#: float64; ``torch.compile`` with Inductor elsewhere), "inductor" (``torch.compile`` everywhere),
#: or "none" to run the graphs uncompiled (still one pass per operation over flat buffers; for
#: debugging and quick tests)
BACKEND = os.environ.get("OPTIMLAB_FUSED_BACKEND", "auto")

#: elements per (device, dtype) bucket from which ``fused=None`` compiles the rule with Inductor
AUTO_FUSED_MIN_NUMEL = int(os.environ.get("OPTIMLAB_FUSED_MIN_NUMEL", "1000000"))

#: elements per CPU float32/float64 bucket from which ``fused=None`` compiles the rule in C
AUTO_C_MIN_NUMEL = int(os.environ.get("OPTIMLAB_FUSED_C_MIN_NUMEL", "16384"))

#: whether the fused path calls torch's own fused kernel where its arithmetic is the rule's
#: (``OPTIMLAB_FUSED_TORCH=0`` compiles the rule for those settings too)
TORCH_KERNELS = os.environ.get("OPTIMLAB_FUSED_TORCH", "1") != "0"

#: flat buffers from this many elements get a multi-threaded (OpenMP) kernel on CPU
PARALLEL_MIN_NUMEL = 1 << 16

_ALIGN_BYTES = 64  # each parameter starts on a cache line inside the flat buffer
_STEP = operator.itemgetter("step")


# ---- recording ---------------------------------------------------------------------------------


class Tape:
    """The operations one call of an update rule performed, and its scalar arguments.

    ``ops`` holds tuples ``(op, out, arg, ...)``: ``out`` and tensor arguments are value ids
    (ids ``0..n_inputs-1`` are the flat inputs), scalar arguments are ``("s", slot)`` for a
    runtime float or ``("c", value)`` for a constant of the rule. ``scalars[slot]`` is the value
    of each slot for this call.
    """

    __slots__ = ("n_inputs", "n_values", "ops", "scalars")

    def __init__(self, n_inputs: int) -> None:
        self.n_inputs = n_inputs
        self.n_values = n_inputs
        self.ops: list[tuple] = []
        self.scalars: list[float] = []

    def inputs(self) -> list[Recorder]:
        return [Recorder(self, i) for i in range(self.n_inputs)]

    def structure(self) -> tuple:
        """What the compiled kernel depends on: everything but the slot values."""
        return (self.n_inputs, len(self.scalars), tuple(self.ops))

    # helpers used by Recorder ------------------------------------------------------------------
    def scalar(self, x: Any) -> tuple:
        if isinstance(x, Recorder):
            if x.tape is not self:
                raise RuntimeError("an array-like of another tape was used in an update rule")
            return ("v", x.index)
        if isinstance(x, Tensor):
            raise TypeError("update rules pass hyperparameters as Python numbers, not tensors")
        if isinstance(x, int) and not isinstance(x, bool):
            return ("c", x)
        self.scalars.append(float(x))
        return ("s", len(self.scalars) - 1)

    def record(self, op: str, out: int | None, *args: Any) -> Recorder:
        if out is None:
            out = self.n_values
            self.n_values += 1
        self.ops.append((op, out, *args))
        return Recorder(self, out)


class Recorder:
    """An array-like that records the rule's operations on a :class:`Tape` (see ``_rules``)."""

    __slots__ = ("index", "tape")

    def __init__(self, tape: Tape, index: int) -> None:
        self.tape = tape
        self.index = index

    def _v(self) -> tuple:
        return ("v", self.index)

    def _in_place(self, op: str, *args: Any) -> Recorder:
        return self.tape.record(op, self.index, self._v(), *args)

    def _new(self, op: str, *args: Any) -> Recorder:
        return self.tape.record(op, None, self._v(), *args)

    # in place, with the semantics of ``TensorList`` / ``Tensorwise`` ---------------------------
    def mul_(self, x: Any) -> Recorder:
        return self._in_place("mul", self.tape.scalar(x))

    def div_(self, x: Any) -> Recorder:
        return self._in_place("div", self.tape.scalar(x))

    def add_(self, x: Any, alpha: Any = 1) -> Recorder:
        if isinstance(x, Recorder):
            return self._in_place("add", self.tape.scalar(x), self.tape.scalar(alpha))
        return self._in_place("add", self.tape.scalar(x * alpha if alpha != 1 else x), ("c", 1))

    def addcmul_(self, a: Recorder, b: Recorder, value: Any = 1) -> Recorder:
        t = self.tape
        return self._in_place("addcmul", t.scalar(a), t.scalar(b), t.scalar(value))

    def addcdiv_(self, a: Recorder, b: Recorder, value: Any = 1) -> Recorder:
        t = self.tape
        return self._in_place("addcdiv", t.scalar(a), t.scalar(b), t.scalar(value))

    def lerp_(self, end: Recorder, weight: Any) -> Recorder:
        # torch's lerp switches formula at |weight| = 0.5; the branch is part of the structure
        op = "lerp_lo" if abs(weight) < 0.5 else "lerp_hi"
        return self._in_place(op, self.tape.scalar(end), self.tape.scalar(weight))

    def sqrt_(self) -> Recorder:
        return self._in_place("sqrt")

    def maximum_(self, other: Recorder) -> Recorder:
        return self._in_place("maximum", self.tape.scalar(other))

    def copy_(self, other: Recorder) -> Recorder:
        return self._in_place("copy", self.tape.scalar(other))

    # out of place ------------------------------------------------------------------------------
    def mul(self, x: Any) -> Recorder:
        return self._new("mul", self.tape.scalar(x))

    def div(self, x: Any) -> Recorder:
        return self._new("div", self.tape.scalar(x))

    def add(self, x: Any, alpha: Any = 1) -> Recorder:
        if isinstance(x, Recorder):
            return self._new("add", self.tape.scalar(x), self.tape.scalar(alpha))
        return self._new("add", self.tape.scalar(x * alpha if alpha != 1 else x), ("c", 1))

    def addcmul(self, a: Recorder, b: Recorder, value: Any = 1) -> Recorder:
        t = self.tape
        return self._new("addcmul", t.scalar(a), t.scalar(b), t.scalar(value))

    def sqrt(self) -> Recorder:
        return self._new("sqrt")

    def abs(self) -> Recorder:
        return self._new("abs")

    def neg(self) -> Recorder:
        return self._new("neg")

    def clone(self) -> Recorder:
        return self._new("clone")


# ---- from a tape to a graph --------------------------------------------------------------------


def _is_one(arg: tuple) -> bool:
    return arg == ("c", 1)


def build_graph(structure: tuple, dtype: torch.dtype) -> fx.GraphModule:
    """An FX graph ``forward(x0, ..., x{n-1}, scalars)`` that replays ``structure``.

    Operations are written out of place; each input the rule mutated receives its final value
    with one ``copy_`` at the end, which Inductor turns into the store of a single fused loop.

    Each operation is written with the arithmetic order of torch's eager CPU kernels
    (``addcdiv``: ``self + value*a/b``; ``addcmul``: ``self + value*a*b``; ``lerp``: its two
    branches), so the compiled kernel and the multi-tensor path agree to rounding.
    """
    n_inputs, _, ops = structure
    g = fx.Graph()
    inputs = [g.placeholder(f"x{i}") for i in range(n_inputs)]
    values: dict[int, Any] = dict(enumerate(inputs))
    mutated: set[int] = set()
    scalars = g.placeholder("scalars")
    slots: dict[int, fx.Node] = {}

    def arg(a: tuple) -> Any:
        kind, v = a
        if kind == "v":
            return values[v]
        if kind == "c":
            return v
        if v not in slots:
            slots[v] = g.call_function(operator.getitem, (scalars, v))
        return slots[v]

    def mul(x: Any, y: Any) -> Any:
        return g.call_function(operator.mul, (x, y))

    def scaled(v: tuple, x: Any) -> Any:
        return x if _is_one(v) else mul(arg(v), x)

    for op, out, *args in ops:
        x = values[args[0][1]]
        rest = args[1:]
        in_place = out == args[0][1]
        if op in ("mul", "div"):
            fn = operator.mul if op == "mul" else operator.truediv
            y = g.call_function(fn, (x, arg(rest[0])))
        elif op == "add":
            y = g.call_function(operator.add, (x, scaled(rest[1], arg(rest[0]))))
        elif op == "addcmul":
            a, b = arg(rest[0]), arg(rest[1])
            prod = mul(a, b) if _is_one(rest[2]) else mul(mul(arg(rest[2]), a), b)
            y = g.call_function(operator.add, (x, prod))
        elif op == "addcdiv":
            a, b = arg(rest[0]), arg(rest[1])
            num = a if _is_one(rest[2]) else mul(arg(rest[2]), a)
            y = g.call_function(operator.add, (x, g.call_function(operator.truediv, (num, b))))
        elif op in ("lerp_lo", "lerp_hi"):
            end, w = arg(rest[0]), arg(rest[1])
            if isinstance(w, fx.Node):
                w = g.call_method("to", (w, dtype))
            diff = g.call_function(operator.sub, (end, x))
            if op == "lerp_lo":
                y = g.call_function(operator.add, (x, mul(w, diff)))
            else:
                one_minus = g.call_function(operator.sub, (1, w))
                y = g.call_function(operator.sub, (end, mul(diff, one_minus)))
        elif op == "maximum":
            y = g.call_function(torch.maximum, (x, arg(rest[0])))
        elif op == "copy":
            y = arg(rest[0])
        elif op in ("sqrt", "abs", "neg"):
            y = g.call_function(getattr(torch, op), (x,))
        elif op == "clone":
            y = g.call_method("clone", (x,))
        else:  # pragma: no cover - Recorder only writes the names above
            raise ValueError(f"unknown tape operation {op!r}")
        values[out] = y
        if in_place and out < n_inputs:
            mutated.add(out)
    for i in sorted(mutated):
        # the only writes to memory: each mutated buffer once, with its final value
        g.call_method("copy_", (inputs[i], values[i]))
    g.output(None)
    return fx.GraphModule(torch.nn.Module(), g)


# ---- kernels -----------------------------------------------------------------------------------


def c_serves(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the C backend builds the kernels of (``device``, ``dtype``) buffers."""
    return BACKEND in ("auto", "c") and _cc.usable(device, dtype)


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can build fused kernels for ``device`` here."""
    if BACKEND == "none":
        return False
    if BACKEND not in ("auto", "c", "inductor"):
        return True
    if device.type == "cuda":
        return torch.cuda.is_available()
    if device.type == "cpu":
        cxx = os.environ.get("CXX") or "g++"
        return any(shutil.which(c) for c in (cxx, "g++", "c++", "clang++"))
    return False


class _Kernel:
    """The compiled (or, until compiled, eager) replay of one structure for one dtype/device.

    ``compiled`` is the ``torch.compile`` wrapper: every call goes through dynamo's frame and
    guards. Compiling also captures what Inductor returned for the graph (``direct``) and how
    dynamo fed it (``arg_spec``): from the third call on, the kernel is called straight, without
    the ~0.1-0.3 ms of dynamo's per-call work. The guards that skips are ours by construction:
    the cache key fixes structure, dtype, device and size class, and the inputs are always 1-d
    contiguous flat buffers of one length and the scalar vector of the structure's length.
    """

    __slots__ = (
        "arg_spec", "calls", "ckernel", "compiled", "direct", "failed", "graph", "pending"
    )

    def __init__(self, graph: fx.GraphModule) -> None:
        self.graph = graph
        self.ckernel: _cc.CKernel | None = None
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
    """How to rebuild the compiled graph's arguments from the flat inputs: ``("t", i)`` for
    input ``i``, ``("n", 0)`` for the buffers' length, ``("n", 1)`` for the scalars' length.
    None where an argument cannot be told apart (then every call goes through dynamo)."""
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


class KernelCache:
    """Process-wide kernels keyed by (structure, dtype, device); compiled on first use."""

    def __init__(self) -> None:
        self._kernels: dict[tuple, _Kernel] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def clear(self) -> None:
        """Forget every kernel (and which devices were warned about)."""
        with self._lock:
            self._kernels.clear()
            self._warned.clear()

    def __len__(self) -> int:
        return len(self._kernels)

    def compiled_count(self) -> int:
        """How many kernels have been compiled (not counting eager ones)."""
        return sum(
            k.compiled is not None or k.ckernel is not None for k in self._kernels.values()
        )

    def run(self, structure: tuple, segments: Sequence[Sequence[Tensor]], scalars: list[float]) -> str:
        """Run ``structure`` on ``segments`` (each: the tape's inputs, tensors of one length)
        with the scalar slot values ``scalars``.

        Several segments (one per parameter) only where :func:`c_serves`; otherwise one (the
        flat buffers).

        Returns:
            ``"compiled"``, or ``"failed"`` where compiling is impossible (the eager graph ran).
        """
        first = segments[0][0]
        device, dtype = first.device, first.dtype
        if c_serves(device, dtype):
            return self._run_c(structure, segments, scalars, device, dtype)
        (inputs,) = segments
        scalar_tensor = torch.tensor(scalars, dtype=torch.float64)
        if device.type == "cuda":
            scalar_tensor = scalar_tensor.to(device, non_blocking=True)
        return self._run_compiled(structure, inputs, scalar_tensor)

    def _kernel(self, key: tuple, structure: tuple, dtype: torch.dtype) -> _Kernel:
        with self._lock:
            kernel = self._kernels.get(key)
            if kernel is None:
                kernel = self._kernels[key] = _Kernel(build_graph(structure, dtype))
        kernel.calls += 1
        return kernel

    def _run_c(self, structure, segments, scalars, device, dtype) -> str:
        kernel = self._kernel((structure, dtype, "c"), structure, dtype)
        if kernel.ckernel is None and not kernel.failed:
            try:
                kernel.ckernel = _cc.build(structure, dtype)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                self._fail(kernel, device, str(e).splitlines()[0][:200])
        if kernel.ckernel is not None:
            kernel.ckernel(segments, scalars)
            return "compiled"
        scalar_tensor = torch.tensor(scalars, dtype=torch.float64)
        for inputs in segments:
            kernel.graph(*inputs, scalar_tensor)
        return "failed" if kernel.failed else "eager"

    def _run_compiled(self, structure: tuple, inputs: Sequence[Tensor], scalars: Tensor) -> str:
        device, dtype = inputs[0].device, inputs[0].dtype
        numel = inputs[0].numel()
        # a size class of its own past 2**31 elements, where 32-bit indexing no longer holds
        size_class = (numel >= PARALLEL_MIN_NUMEL, numel >= 1 << 31)
        key = (structure, dtype, device.type, device.index, BACKEND, size_class)
        kernel = self._kernel(key, structure, dtype)
        if (
            kernel.compiled is None
            and not kernel.failed
            and BACKEND != "none"
        ):
            if compiler_available(device):
                inductor = BACKEND in ("auto", "c", "inductor")
                kernel.compiled = torch.compile(
                    kernel.graph,
                    backend=kernel.capture if inductor else BACKEND,
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
                if kernel.calls == 1 and BACKEND in ("auto", "c", "inductor"):
                    from torch._inductor import config as inductor_config

                    # One small kernel per graph: compiling in this process is faster than
                    # starting Inductor's pool of compile workers (seconds on a small machine).
                    # Sizes are dynamic, so Inductor would decide on OpenMP from the first
                    # caller's size (and its disk cache would hand that choice to every later
                    # size); the size class decides instead, and is part of the cache key.
                    chunk = 1 if size_class[0] else 1 << 62
                    kernel.pending = (inputs, scalars)
                    try:
                        with inductor_config.patch(
                            compile_threads=1, **{"cpp.min_chunk_size": chunk}
                        ):
                            kernel.compiled(*inputs, scalars)
                    finally:
                        kernel.pending = None
                else:
                    kernel.compiled(*inputs, scalars)
                return "compiled"
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to eager
                # Compilation fails before the kernel writes anything, so the eager replay below
                # starts from the same buffers.
                kernel.compiled = None
                self._fail(kernel, device, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        kernel.graph(*inputs, scalars)
        return "failed" if kernel.failed else "eager"

    def _fail(self, kernel: _Kernel, device: torch.device, reason: str) -> None:
        kernel.failed = True
        if device.type not in self._warned:
            self._warned.add(device.type)
            warnings.warn(
                f"optimlab: fused optimizer kernels cannot be compiled on {device.type} "
                f"({reason}); running the fused path without compilation",
                RuntimeWarning,
                stacklevel=4,
            )


KERNELS = KernelCache()


# ---- flat storage ------------------------------------------------------------------------------


def flat_eligible(p: Tensor) -> bool:
    """Parameters the fused path can place in a flat buffer: dense, real floating point."""
    return p.layout == torch.strided and p.is_floating_point() and _dense(p)


def _dense(p: Tensor) -> bool:
    """Whether ``p``'s elements fill ``numel`` consecutive slots in some order of its dims."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(p.shape, p.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


class FlatBucket:
    """The parameters of one (param group, device, dtype) and their state, in flat buffers.

    ``param``, ``grad`` and ``buffers[name]`` are 1-d tensors; each parameter occupies
    ``[offset, offset + numel)`` of them (with its own strides), offsets rounded up to 64 bytes.
    The gaps hold zeros, on which every rule stays finite for ``eps > 0``. ``steps`` holds every
    parameter's ``state["step"]`` (as 0-d views), so one addition advances them all.
    """

    def __init__(
        self,
        params: list[Tensor],
        names: tuple[str, ...],
        state: dict[Tensor, dict[str, Any]],
        new_buffer: Callable[[str, Tensor], Tensor],
    ) -> None:
        p0 = params[0]
        self.device, self.dtype, self.names = p0.device, p0.dtype, names
        self.params = list(params)
        align = max(1, _ALIGN_BYTES // p0.element_size())
        self.offsets: list[int] = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += -(-p.numel() // align) * align
        self.numel = total
        self.param_numel = sum(p.numel() for p in params)
        kw = {"device": self.device, "dtype": self.dtype}
        self.param = torch.zeros(total, **kw)
        self.grad = torch.zeros(total, **kw)
        self.buffers = {n: torch.zeros(total, **kw) for n in names}
        # the counters keep the state's dtype (torch.optim's format); an optimizer without a
        # counter in its state (SGD) gets one here only: 1 once its buffers exist
        self.counted = all("step" in state[p] for p in params)
        dtypes = {state[p]["step"].dtype for p in params} if self.counted else set()
        dtype = dtypes.pop() if len(dtypes) == 1 else torch.float64
        self.steps = torch.zeros(len(params), dtype=dtype)
        self.param_views = [self._view(self.param, i) for i in range(len(params))]
        self.grad_views = [self._view(self.grad, i) for i in range(len(params))]
        self.buffer_views = {
            n: [self._view(b, i) for i in range(len(params))] for n, b in self.buffers.items()
        }
        self.step_views = [self.steps[i] for i in range(len(params))]
        for i, p in enumerate(params):
            self.param_views[i].copy_(p)
            s = state[p]
            if self.counted:
                self.step_views[i].copy_(s["step"])
            elif names and all(n in s for n in names):
                self.step_views[i].fill_(1)
            for n in names:
                src = s[n] if n in s else new_buffer(n, p)
                self.buffer_views[n][i].copy_(src)
                s[n] = self.buffer_views[n][i]
            if self.counted:
                s["step"] = self.step_views[i]
            if p.grad is not None:
                self.grad_views[i].copy_(p.grad)
                p.grad = self.grad_views[i]
            p.data = self.param_views[i]
        self.data_ptrs = [p.data_ptr() for p in params]
        self._seen_grads: list[weakref.ref] | None = None
        self.state_ref = state
        self.state_dicts = [state[p] for p in params]
        self.ids = frozenset(map(id, params))
        first = float(self.steps[0])
        self.step: int | None = int(first) if bool((self.steps == first).all()) else None

    def _view(self, flat: Tensor, i: int) -> Tensor:
        p = self.params[i]
        return flat.as_strided(p.size(), p.stride(), self.offsets[i])

    def intact(self, state: dict[Tensor, dict[str, Any]], names: tuple[str, ...]) -> bool:
        """Whether parameters and state still live in these buffers (no ``p.data = ...``,
        ``Module.to()``, ``load_state_dict``, replaced state entries or change of the rule's
        buffers since they were built). Runs every step, hence the C-level ``map`` loops."""
        if names != self.names or state is not self.state_ref:
            return False
        if list(map(Tensor.data_ptr, self.params)) != self.data_ptrs:
            return False
        try:
            dicts = list(map(state.__getitem__, self.params))
            if not all(map(operator.is_, dicts, self.state_dicts)):
                return False
            if self.counted and not all(map(operator.is_, map(_STEP, dicts), self.step_views)):
                return False
            for n in names:
                got = map(operator.itemgetter(n), dicts)
                if not all(map(operator.is_, got, self.buffer_views[n])):
                    return False
        except KeyError:
            return False
        return True

    def gather_grads(self) -> bool:
        """Point every ``p.grad`` at the flat gradient buffer, copying gradients that autograd
        allocated afresh (after ``zero_grad(set_to_none=True)``); False if one is missing."""
        grads = [p.grad for p in self.params]
        if all(map(operator.is_, grads, self.grad_views)):
            return True
        if any(g is None or g.is_sparse for g in grads):
            return False
        moved = [i for i, g in enumerate(grads) if g is not self.grad_views[i]]
        torch._foreach_copy_([self.grad_views[i] for i in moved], [grads[i] for i in moved])
        for i in moved:
            self.params[i].grad = self.grad_views[i]
        return True

    def kernel_lists(self, per_parameter: bool = False) -> tuple | None:
        """``(params, grads, buffers, steps)`` for torch's fused kernels, without copying.

        Gradients in the flat buffer: one tensor each (the flat buffers). Gradients autograd
        allocated afresh (``zero_grad(set_to_none=True)``), with the parameters' strides: one
        view per parameter, and the fresh gradients, so nothing is copied. Gradient tensors that
        outlive a step are moved into the flat buffer the second time they are seen, and so
        are gradients laid out unlike their parameters. None where a gradient is missing.

        ``per_parameter``: one view per parameter in every case. torch's fused kernels need it:
        their vectorised loop and its scalar tail round differently, so the same step split
        differently (one flat buffer, or one tensor per parameter) would differ in the last bit,
        and a resumed run would drift from an uninterrupted one. Split per parameter they are
        also bit-identical to ``torch.optim``'s fused optimizers. The C loops round every
        element alike, whatever the split.
        """
        grads = [p.grad for p in self.params]
        if not all(map(operator.is_, grads, self.grad_views)):
            seen, self._seen_grads = self._seen_grads, None
            if seen is not None and all(map(operator.is_, (r() for r in seen), grads)):
                # the same gradient tensors as last step (zero_grad(set_to_none=False), or
                # gradients assigned once): move them into the flat buffer, once
                if not self.gather_grads():
                    return None
            elif any(g is None or g.layout != torch.strided for g in grads):
                return None
            elif any(g.stride() != v.stride() for g, v in zip(grads, self.grad_views)):
                self.gather_grads()  # copied into the flat buffer with the parameters' strides
            else:
                self._seen_grads = [weakref.ref(g) for g in grads]
                return self.param_views, grads, self.buffer_views, self.step_views
        if per_parameter:
            grads = [p.grad for p in self.params]
            return self.param_views, grads, self.buffer_views, self.step_views
        bufs = {n: [b] for n, b in self.buffers.items()}
        return [self.param], [self.grad], bufs, self.step_views[:1]

    def advance(self) -> None:
        """Add one to every parameter's step counter (through NumPy's view of the same memory:
        ~1 us, against a few for a torch operation's dispatch)."""
        if self.step is not None and self.step >= 2**24 and self.steps.dtype != torch.float64:
            self._widen()
        counters = self.steps.numpy()
        counters += 1
        if self.step is not None:
            self.step += 1

    def _widen(self) -> None:
        """float32 counters stop at 2**24: continue in float64 (see ``_state``)."""
        self.steps = self.steps.double()
        self.step_views = [self.steps[i] for i in range(len(self.params))]
        if self.counted:
            for s, view in zip(self.state_dicts, self.step_views):
                s["step"] = view

    def uniform_step(self) -> int | None:
        """The step count all parameters share, or None if they differ."""
        if self.step is None:
            first = float(self.steps[0])
            if bool((self.steps == first).all()):
                self.step = int(first)
        return self.step

    def zero_grad(self) -> None:
        """Zero the gradients in place: one pass over the flat buffer for those that live there."""
        flat_done = False
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if g is self.grad_views[i]:
                if not flat_done:
                    self.grad.zero_()
                    flat_done = True
            else:
                if g.grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                g.zero_()

    def state_bytes(self) -> int:
        """Bytes of per-element optimizer state held by this bucket (flat buffers, with gaps)."""
        return sum(b.numel() * b.element_size() for b in self.buffers.values())
