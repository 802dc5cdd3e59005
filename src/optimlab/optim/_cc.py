"""The C backend of the fused path: a rule's tape written out as one C loop, built by the system
C compiler and loaded with ``ctypes``.

On CPU, for float32 and float64, this is what the fused path compiles a tape structure with
(Inductor serves CUDA and the other dtypes). An update step is a handful of arithmetic operations
per element and a memory stream, and the loop the tape describes can be written down directly:

* each element is loaded once, every operation of the tape is one C expression in the tensors'
  own precision (the op table's expressions, :data:`._ops.OPS`; hyperparameters rounded to the
  dtype first, as torch's CPU kernels do; no contraction into fused multiply-adds; NaN-propagating
  maximum), and each mutated tensor is stored once;
* it runs **in place over the tensors' own storage**: one *segment* per parameter, given as a
  pointer per tape input (parameter, gradient, each state tensor), as torch's fused multi-tensor
  kernels take lists of tensors. Nothing is copied or moved;
* the segments are treated as one range laid end to end (``starts``: their prefix sums), which
  the threads split evenly, 16 elements aligned (``split=0``), or each large segment is split over
  the threads and the small ones run on the calling thread (``split=1``); a thread's share of a
  segment, when it is too large for the caches, is walked as ``streams`` interleaved sub-ranges
  advancing ``block`` elements at a time, so that a core keeps more memory streams in flight;
* every element is computed by the same expressions however a step is split (threads, split
  mode, streams, blocks), and vector and scalar code round alike, so every :class:`Variant`
  gives bit-identical results: a resumed run stays exact, and ``fused=None`` may pick whichever
  variant is fastest on the machine it runs on (:mod:`._tuning`);
* the step counters of the parameters (0-d ``state["step"]`` tensors) are advanced in the same
  call, through their pointers;
* building one takes ~0.2 s; the shared object is cached in the kernel store (:mod:`._kstore`:
  private folders, hash-checked loads) under a hash of its source, flags, compiler and CPU.

A call costs a few microseconds (``ctypes`` releases the GIL while the loop runs).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import threading
from typing import Any, NamedTuple

import torch

from . import _kstore
from ._ops import ONE, evaluate

#: the dtypes the C backend writes loops for, and their C types and math suffixes
C_TYPES = {torch.float32: ("float", "f"), torch.float64: ("double", "")}

#: from this many elements in all, a call is split over threads (OpenMP)
PARALLEL_MIN_NUMEL = 1 << 16

#: a thread's share of a segment from which it is walked as interleaved streams (below, it sits
#: in cache and the plain loop is faster)
INTERLEAVE_MIN_NUMEL = 1 << 17

#: how step counters are typed, as the kernel's ``counter_kind`` reads them
COUNTER_KINDS = {torch.float64: 0, torch.float32: 1, torch.int64: 2}

_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared")
_OPENMP = ("-fopenmp",)

_lock = threading.Lock()
_compiler: list[str | None] = []


class Variant(NamedTuple):
    """How a kernel call walks its segments; every variant rounds identically."""

    streams: int = 1  #: interleaved sub-ranges per thread share (1: a plain loop)
    block: int = 256  #: elements a sub-range advances before the next one
    split: int = 0  #: 0: threads split the concatenated range; 1: each large segment

    def label(self) -> str:
        return f"s{self.streams}b{self.block}{'m' if self.split == 0 else 'p'}"


def compiler() -> str | None:
    """The C compiler: ``$CC`` where set (None if that program is missing: an explicit choice
    is never replaced by another compiler), else ``cc``, ``gcc`` or ``clang``; None if none."""
    if not _compiler:
        with _lock:
            if not _compiler:
                explicit = os.environ.get("CC", "").strip()
                names = [explicit] if explicit else ["cc", "gcc", "clang"]
                _compiler.append(next((p for p in map(shutil.which, names) if p), None))
    return _compiler[0]


def reset_compiler() -> None:
    """Look the compiler up again at next use (after ``CC`` or ``PATH`` changed)."""
    with _lock:
        _compiler.clear()


def usable(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the C backend serves tensors of ``dtype`` on ``device``."""
    return dtype in C_TYPES and device.type == "cpu" and compiler() is not None


# ---- from a tape structure to C ----------------------------------------------------------------


class _C:
    """The :class:`._ops.Arith` of C expressions (strings); ``bind`` writes one statement."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.lines: list[str] = []

    @staticmethod
    def v(a: Any) -> str:
        if a is ONE:
            return "((T)1)"
        return f"((T){a})" if isinstance(a, int) else a

    def add(self, a: Any, b: Any) -> str:
        return f"({self.v(a)} + {self.v(b)})"

    def sub(self, a: Any, b: Any) -> str:
        return f"({self.v(a)} - {self.v(b)})"

    def mul(self, a: Any, b: Any) -> str:
        if a is ONE or b is ONE:
            return self.v(b if a is ONE else a)
        return f"({self.v(a)} * {self.v(b)})"

    def div(self, a: Any, b: Any) -> str:
        return f"({self.v(a)} / {self.v(b)})"

    def sqrt(self, a: Any) -> str:
        return f"sqrt{self.suffix}({self.v(a)})"

    def abs(self, a: Any) -> str:
        return f"fabs{self.suffix}({self.v(a)})"

    def neg(self, a: Any) -> str:
        return f"(-{self.v(a)})"

    def maximum(self, a: Any, b: Any) -> str:
        x, y = self.v(a), self.v(b)
        # torch.maximum propagates NaN from either side
        return f"(({x} > {y} || {x} != {x}) ? {x} : {y})"

    def weight(self, a: Any) -> Any:
        return a

    def bind(self, a: Any) -> str:
        name = f"t{len(self.lines)}"
        self.lines.append(f"const T {name} = {self.v(a)};")
        return name


def c_source(structure: tuple, dtype: torch.dtype) -> str:
    """The C translation unit of ``structure`` (see ``_ops.Tape``) for ``dtype``.

    It defines ``void step(int64_t nseg, void* const* ptrs, const int64_t* starts,
    const double* s, const int64_t* cfg, int64_t ncounters, void* const* counters,
    int64_t counter_kind)``: ``ptrs`` holds ``n_inputs`` pointers per segment (segment-major,
    in the tape's input order), ``starts`` the ``nseg + 1`` prefix sums of the segments'
    lengths, ``s`` the scalar slots, ``cfg`` ``[threads, streams, block, split]`` (a
    :class:`Variant`), and ``counters`` the step counters to advance by one (``counter_kind``:
    0 double, 1 float, 2 int64).
    """
    n_inputs, n_scalars, _ = structure
    ctype, suffix = C_TYPES[dtype]
    arith = _C(suffix)
    loads = [f"const T in{i} = x{i}[i];" for i in range(n_inputs)]
    inputs = [f"in{i}" for i in range(n_inputs)]
    values, mutated = evaluate(structure, arith, inputs, lambda k: f"s{k}")
    stores = [f"x{i}[i] = {values[i]};" for i in mutated]
    params = ", ".join(f"T* restrict x{i}" for i in range(n_inputs))
    at = ", ".join(f"(T*)x[{i}] + off" for i in range(n_inputs))
    scalars = "\n    ".join(f"const T s{k} = (T)s[{k}];" for k in range(n_scalars))
    body = "\n        ".join(loads + arith.lines + stores)
    return f"""/* optimlab fused step ({dtype}) */
#include <math.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
typedef {ctype} T;
enum {{ N = {n_inputs} }};

static void range(const double* restrict s, {params}, int64_t lo, int64_t hi) {{
    {scalars}
    for (int64_t i = lo; i < hi; i++) {{
        {body}
    }}
}}

/* [lo, hi) of one segment: `streams` interleaved sub-ranges, `block` elements at a time */
static void piece(void* const* x, const double* s, int64_t lo, int64_t hi,
                  int64_t streams, int64_t block) {{
    int64_t off = 0;
    if (streams > 1 && hi - lo >= {INTERLEAVE_MIN_NUMEL}) {{
        const int64_t part = (hi - lo) / streams / 16 * 16;
        for (int64_t j = 0; j < part; j += block) {{
            const int64_t je = j + block < part ? j + block : part;
            for (int64_t k = 0; k < streams; k++) {{
                off = lo + k * part;
                range(s, {at}, j, je);
            }}
        }}
        lo += streams * part;
    }}
    off = 0;
    range(s, {at}, lo, hi);
}}

/* elements [lo, hi) of the segments laid end to end */
static void span(int64_t nseg, void* const* ptrs, const int64_t* starts, const double* s,
                 int64_t lo, int64_t hi, int64_t streams, int64_t block) {{
    int64_t a = 0, b = nseg;  /* the last segment that starts at or before lo */
    while (b - a > 1) {{
        const int64_t m = (a + b) / 2;
        if (starts[m] <= lo) a = m; else b = m;
    }}
    for (int64_t g = a; g < nseg && starts[g] < hi; g++) {{
        const int64_t s0 = starts[g], n = starts[g + 1] - s0;
        const int64_t l = lo > s0 ? lo - s0 : 0, h = hi - s0 < n ? hi - s0 : n;
        if (l < h) piece(ptrs + g * N, s, l, h, streams, block);
    }}
}}

void step(int64_t nseg, void* const* ptrs, const int64_t* starts, const double* s,
          const int64_t* cfg, int64_t ncounters, void* const* counters, int64_t counter_kind) {{
    for (int64_t c = 0; c < ncounters; c++) {{
        if (counter_kind == 0) *(double*)counters[c] += 1.0;
        else if (counter_kind == 1) *(float*)counters[c] += 1.0f;
        else *(int64_t*)counters[c] += 1;
    }}
    const int64_t total = starts[nseg], nt = cfg[0], streams = cfg[1], block = cfg[2];
#ifdef _OPENMP
    if (nt > 1 && total >= {PARALLEL_MIN_NUMEL}) {{
        if (cfg[3] == 0) {{
            #pragma omp parallel num_threads(nt)
            {{
                const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
                const int64_t lo = total * t / n / 16 * 16;
                const int64_t hi = t + 1 == n ? total : total * (t + 1) / n / 16 * 16;
                span(nseg, ptrs, starts, s, lo, hi, streams, block);
            }}
            return;
        }}
        for (int64_t g = 0; g < nseg; g++) {{
            const int64_t n = starts[g + 1] - starts[g];
            if (n < {PARALLEL_MIN_NUMEL}) {{
                piece(ptrs + g * N, s, 0, n, streams, block);
                continue;
            }}
            #pragma omp parallel num_threads(nt)
            {{
                const int64_t t = omp_get_thread_num(), m = omp_get_num_threads();
                piece(ptrs + g * N, s, n * t / m / 16 * 16,
                      t + 1 == m ? n : n * (t + 1) / m / 16 * 16, streams, block);
            }}
        }}
        return;
    }}
#endif
    span(nseg, ptrs, starts, s, 0, total, streams, block);
}}
"""


# ---- building and loading ----------------------------------------------------------------------


@functools.cache
def cpu_id() -> str:
    """The processor's model and feature flags (kernels are built with ``-march=native``)."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features")):
                    model += line
                    if line.startswith(("flags", "Features")):
                        break
    except OSError:
        pass
    return f"{platform.machine()}|{model}"


class CKernel:
    """A built step loop (see :func:`c_source` for its arguments)."""

    __slots__ = ("fn", "key", "n_inputs")

    def __init__(self, lib: ctypes.CDLL, key: str, n_inputs: int) -> None:
        fn = lib.step
        fn.restype = None
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        fn.argtypes = [i64, ptr, ptr, ctypes.POINTER(ctypes.c_double), ptr, i64, ptr, i64]
        self.fn, self.key, self.n_inputs = fn, key, n_inputs


def build(structure: tuple, dtype: torch.dtype) -> CKernel:
    """The kernel of ``structure`` for ``dtype``, from the kernel store or built now.

    Raises:
        RuntimeError: no C compiler, or it failed (its message, first lines).
    """
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (CC, cc, gcc or clang)")
    source = c_source(structure, dtype)
    errors: list[str] = []
    for flags in (_FLAGS + _OPENMP, _FLAGS, ("-O2", "-fPIC", "-shared")):
        key = hashlib.sha256("\n".join([source, cc, *flags, cpu_id()]).encode()).hexdigest()[:32]

        def compile_into(folder: _kstore.Folder, tmp: str, flags=flags, key=key) -> None:
            src = f".step-{key}.c"  # a fixed name: the same key builds the same bytes
            folder.write_atomic(src, source.encode())
            try:
                done = subprocess.run(
                    [cc, *flags, folder.where(src), "-o", folder.where(tmp), "-lm"],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    pass_fds=folder.pass_fds,
                )
            finally:
                folder.remove(src)
            if done.returncode != 0:
                errors.append(" ".join(done.stderr.strip().splitlines()[:3]))
                raise _BuildFailed

        try:
            lib = _kstore.load(f"step-{key}.so", compile_into, ctypes.CDLL)
        except _BuildFailed:
            continue
        return CKernel(lib, key, structure[0])
    raise RuntimeError(f"{cc} failed: {errors[-1] if errors else 'unknown error'}")


class _BuildFailed(Exception):
    pass


def describe() -> dict[str, Any]:
    """The compiler and kernel folder in use (for benchmark reports)."""
    return {
        "cc": compiler(),
        "flags": " ".join(_FLAGS + _OPENMP),
        "cache": str(_kstore.configured()),
    }
