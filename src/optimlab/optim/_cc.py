"""The C backend of the fused path: a rule's tape written out as one C loop, built by the system
C compiler and loaded with ``ctypes``.

On CPU, for float32 and float64, this is what ``_fused.KernelCache`` compiles a tape structure
with (Inductor serves CUDA and the other dtypes). It exists because an update step is a handful of
arithmetic operations per element and a memory stream, and the loop the tape describes can be
written down directly:

* each element is loaded once, every operation of the tape is one C expression in the tensors'
  own precision (hyperparameters rounded to it first, as torch's CPU kernels do, no contraction
  into fused multiply-adds, NaN-propagating maximum), and each mutated buffer is stored once;
* each thread's share of a buffer, when it is too large for the caches, is walked as ``K``
  interleaved sub-ranges, so that a core keeps ``K`` times more memory streams in flight than
  arrays it touches (on the 2-core development VM this moves a 10M-element Adam step from ~40 to
  ~44 GB/s, where Inductor's loop for the same graph reaches ~34);
* every element is computed by the same expressions whichever way a step is split (one flat
  buffer or per-parameter segments, threads, sub-ranges), and vector and scalar code round
  alike, so a step's result never depends on the layout: a resumed run stays bit-exact;
* a kernel takes any number of segments (one flat buffer, or one tensor per parameter, so that
  gradients autograd has just allocated are read where they lie) and the thread count to use;
* building one takes ~0.2 s and no Python-side compiler stack; the shared object is cached on disk
  (``OPTIMLAB_KERNEL_CACHE``, default ``~/.cache/optimlab/kernels``) under a hash of its source,
  flags, compiler and CPU, and written atomically, so concurrent processes share it.

A call costs a few microseconds (``ctypes`` releases the GIL while the loop runs).
"""

from __future__ import annotations

import ctypes
import functools
import getpass
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

#: the dtypes the C backend writes loops for, and their C types and math suffixes
C_TYPES = {torch.float32: ("float", "f"), torch.float64: ("double", "")}

#: segments from this many elements are split over threads (OpenMP)
PARALLEL_MIN_NUMEL = 1 << 16

#: elements a sub-range advances before the loop moves to the next interleaved sub-range
_BLOCK = 128

#: a thread's share from which it is walked as interleaved sub-ranges (below, it sits in cache
#: and the plain loop is faster)
INTERLEAVE_MIN_NUMEL = 1 << 18

_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared")
_OPENMP = ("-fopenmp",)

_lock = threading.Lock()
_compiler: list[str | None] = []


def compiler() -> str | None:
    """The C compiler used (``$CC``, else ``cc``, ``gcc`` or ``clang``), or None."""
    if not _compiler:
        with _lock:
            if not _compiler:
                names = [os.environ.get("CC"), "cc", "gcc", "clang"]
                found = next((shutil.which(n) for n in names if n and shutil.which(n)), None)
                _compiler.append(found)
    return _compiler[0]


def cache_dir() -> Path:
    """Where built kernels are kept (``OPTIMLAB_KERNEL_CACHE``, else the user's cache folder)."""
    env = os.environ.get("OPTIMLAB_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optimlab" / "kernels"


def interleave(n_arrays: int) -> int:
    """How many sub-ranges a thread walks at once for a loop over ``n_arrays`` arrays."""
    return 4 if n_arrays <= 3 else 2 if n_arrays <= 6 else 1


# ---- from a tape structure to C ----------------------------------------------------------------


def c_source(structure: tuple, dtype: torch.dtype) -> str:
    """The C translation unit of ``structure`` (see ``_fused.Tape``) for ``dtype``.

    It defines ``void step(int64_t nseg, void* const* ptrs, const int64_t* lens, const double* s,
    int nthreads)``: ``ptrs`` holds ``n_inputs`` pointers per segment, in the tape's input order,
    ``lens`` each segment's length, ``s`` the scalar slots.
    """
    n_inputs, n_scalars, ops = structure
    ctype, suffix = C_TYPES[dtype]
    lines: list[str] = []
    current = {i: f"x{i}[i]" for i in range(n_inputs)}  # C expression of each tape value
    loaded: set[int] = set()
    mutated: set[int] = set()

    def value(a: tuple) -> str:
        kind, v = a
        if kind == "v":
            if v < n_inputs and v not in loaded and current[v] == f"x{v}[i]":
                loaded.add(v)
                lines.append(f"const T in{v} = x{v}[i];")
                current[v] = f"in{v}"
            return current[v]
        if kind == "c":
            return f"((T){v!r})" if isinstance(v, float) else f"((T){int(v)})"
        return f"s{v}"

    def is_one(a: tuple) -> bool:
        return a == ("c", 1)

    for counter, (op, out, *args) in enumerate(ops):
        x = value(args[0])
        rest = args[1:]
        if op == "mul":
            expr = f"{x} * {value(rest[0])}"
        elif op == "div":
            expr = f"{x} / {value(rest[0])}"
        elif op == "add":
            y = value(rest[0])
            expr = f"{x} + {y}" if is_one(rest[1]) else f"{x} + {value(rest[1])} * {y}"
        elif op == "addcmul":
            a, b = value(rest[0]), value(rest[1])
            prod = f"{a} * {b}" if is_one(rest[2]) else f"({value(rest[2])} * {a}) * {b}"
            expr = f"{x} + {prod}"
        elif op == "addcdiv":
            a, b = value(rest[0]), value(rest[1])
            num = a if is_one(rest[2]) else f"({value(rest[2])} * {a})"
            expr = f"{x} + {num} / {b}"
        elif op == "lerp_lo":
            end, w = value(rest[0]), value(rest[1])
            expr = f"{x} + {w} * ({end} - {x})"
        elif op == "lerp_hi":
            end, w = value(rest[0]), value(rest[1])
            expr = f"{end} - ({end} - {x}) * ((T)1 - {w})"
        elif op == "maximum":
            y = value(rest[0])
            # torch.maximum propagates NaN from either side
            expr = f"(({x}) > ({y}) || ({x}) != ({x})) ? ({x}) : ({y})"
        elif op == "sqrt":
            expr = f"sqrt{suffix}({x})"
        elif op == "abs":
            expr = f"fabs{suffix}({x})"
        elif op == "neg":
            expr = f"-({x})"
        elif op in ("copy", "clone"):
            expr = value(rest[0]) if op == "copy" else x
        else:  # pragma: no cover - Recorder only writes the names above
            raise ValueError(f"unknown tape operation {op!r}")
        name = f"t{counter}"
        lines.append(f"const T {name} = {expr};")
        current[out] = name
        if out < n_inputs and out == args[0][1]:
            mutated.add(out)
    stores = [f"x{i}[i] = {current[i]};" for i in sorted(mutated)]

    params = ", ".join(f"T* restrict x{i}" for i in range(n_inputs))
    args_k = ", ".join(f"(T*)x[{i}]" for i in range(n_inputs))
    args_off = ", ".join(f"(T*)x[{i}] + off" for i in range(n_inputs))
    scalars = "\n    ".join(f"const T s{k} = (T)s[{k}];" for k in range(n_scalars))
    body = "\n        ".join(lines + stores)
    k = interleave(n_inputs)
    return f"""/* optimlab fused step ({dtype}) */
#include <math.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
typedef {ctype} T;

static void range(const double* restrict s, {params}, int64_t lo, int64_t hi) {{
    {scalars}
    for (int64_t i = lo; i < hi; i++) {{
        {body}
    }}
}}

/* [lo, hi) as {k} interleaved sub-ranges, so that more memory streams are in flight */
static void chunk(void* const* x, const double* s, int64_t lo, int64_t hi) {{
    const int64_t part = ((hi - lo) / {k}) / 64 * 64;
    if ({k} > 1 && hi - lo >= {INTERLEAVE_MIN_NUMEL}) {{
        for (int64_t j = 0; j < part; j += {_BLOCK}) {{
            const int64_t je = j + {_BLOCK} < part ? j + {_BLOCK} : part;
            for (int64_t k = 0; k < {k}; k++) {{
                const int64_t off = lo + k * part;
                range(s, {args_off}, j, je);
            }}
        }}
        lo += {k} * part;
    }}
    range(s, {args_k}, lo, hi);
}}

void step(int64_t nseg, void* const* ptrs, const int64_t* lens, const double* s, int nthreads) {{
    for (int64_t g = 0; g < nseg; g++) {{
        void* const* x = ptrs + g * {n_inputs};
        const int64_t n = lens[g];
#ifdef _OPENMP
        if (nthreads > 1 && n >= {PARALLEL_MIN_NUMEL}) {{
            #pragma omp parallel num_threads(nthreads)
            {{
                const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
                chunk(x, s, n * t / nt / 64 * 64, t + 1 == nt ? n : n * (t + 1) / nt / 64 * 64);
            }}
            continue;
        }}
#endif
        chunk(x, s, 0, n);
    }}
}}
"""


# ---- building and loading ----------------------------------------------------------------------


@functools.cache
def _cpu_id() -> str:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features")):
                    model += line
    except OSError:
        pass
    return f"{platform.machine()}|{model}"


class CKernel:
    """A built step loop; call with flat buffers or per-parameter segments."""

    __slots__ = ("_fn", "n_inputs", "path")

    def __init__(self, path: Path, n_inputs: int) -> None:
        lib = ctypes.CDLL(str(path))
        fn = lib.step
        fn.restype = None
        fn.argtypes = [
            ctypes.c_int64,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_int64),
            ctypes.POINTER(ctypes.c_double),
            ctypes.c_int,
        ]
        self._fn, self.n_inputs, self.path = fn, n_inputs, path

    def __call__(self, segments: Sequence[Sequence[Tensor]], scalars: Sequence[float]) -> None:
        """Run over ``segments``: each a list of ``n_inputs`` contiguous tensors of one length."""
        ptrs = [t.data_ptr() for seg in segments for t in seg]
        lens = [seg[0].numel() for seg in segments]
        self._fn(
            len(segments),
            (ctypes.c_void_p * len(ptrs))(*ptrs),
            (ctypes.c_int64 * len(lens))(*lens),
            (ctypes.c_double * max(1, len(scalars)))(*scalars),
            torch.get_num_threads(),
        )


def build(structure: tuple, dtype: torch.dtype) -> CKernel:
    """The kernel of ``structure`` for ``dtype``, from the disk cache or built now.

    Raises:
        RuntimeError: no C compiler, or it failed (its message, first lines).
    """
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")
    source = c_source(structure, dtype)
    folder = _writable(cache_dir())
    errors = []
    for flags in (_FLAGS + _OPENMP, _FLAGS, ("-O2", "-fPIC", "-shared")):
        key = hashlib.sha256("\n".join([source, cc, *flags, _cpu_id()]).encode()).hexdigest()[:32]
        path = folder / f"step-{key}.so"
        if path.exists():
            return CKernel(path, structure[0])
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".so.tmp")
        os.close(fd)
        src = tmp[: -len(".so.tmp")] + ".c"
        try:
            Path(src).write_text(source, encoding="utf-8")
            done = subprocess.run(
                [cc, *flags, src, "-o", tmp, "-lm"],
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode == 0:
                os.replace(tmp, path)  # atomic: a concurrent build of the same key is identical
                return CKernel(path, structure[0])
            errors.append(done.stderr.strip().splitlines()[:3])
        finally:
            for leftover in (tmp, src):
                if os.path.exists(leftover):
                    os.remove(leftover)
    raise RuntimeError(f"{cc} failed: {errors[-1] if errors else 'unknown error'}")


def _writable(folder: Path) -> Path:
    """``folder``, created if need be (owner-only), or a per-user temporary folder where it
    cannot be written (a read-only home, say) or others could write to it."""
    for candidate in (folder, Path(tempfile.gettempdir()) / f"optimlab-kernels-{_user()}"):
        try:
            candidate.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK) and _private(candidate):
                return candidate
        except OSError:
            continue
    raise RuntimeError(f"cannot write compiled kernels to {folder}")


def _private(folder: Path) -> bool:
    """Whether only this user can place files in ``folder`` (the shared objects in it are
    loaded into the process). Always true where there are no POSIX owners."""
    if not hasattr(os, "getuid"):
        return True
    st = folder.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "user"


def usable(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the C backend serves buffers of ``dtype`` on ``device``."""
    return dtype in C_TYPES and device.type == "cpu" and compiler() is not None


def describe() -> dict[str, Any]:
    """The compiler and cache folder in use (for benchmark reports)."""
    return {"cc": compiler(), "flags": " ".join(_FLAGS + _OPENMP), "cache": str(cache_dir())}
