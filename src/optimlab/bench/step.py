"""How long one optimizer step takes: optimlab's paths against torch.optim's and the memory limit.

For each optimizer and convention, on a realistic layout (default ~10M parameters in ~196
tensors: a few large matrices and many small vectors, shaped like a small transformer), this
measures the median step time of

* optimlab: ``foreach`` (multi-tensor), ``forloop`` (one tensor at a time), ``fused`` (the rule
  compiled into one loop over every parameter's own storage, in place: C on CPU, Inductor
  elsewhere), and the default (``create(name, params)``, whatever path it picks); where torch has
  a fused kernel with the rule's arithmetic, ``torch_kernel`` times the fused path calling it;
* torch.optim, for the same algorithm with torch's defaults: ``forloop``, ``foreach`` and
  ``fused`` where torch has a fused kernel;
* the machine: STREAM-style copy (``y.copy_(x)``, 2 words per element) and in-place axpy
  (``y.add_(x, alpha=a)``, 3 words per element) over as many elements as there are parameters.

Repetitions are interleaved (one step of every path, then the next round, in rotating order), so
ratios are measured side by side under the same machine load. Each step must at least read the
parameters, gradients and every state buffer and write back the parameters and state:
``(2 + k) + (1 + k)`` words per parameter for ``k`` state buffers; achieved GB/s counts those
bytes. Also reported: optimizer state bytes per parameter, the peak extra memory one step
allocates (from the profiler's memory events), and the fused path's one-time cost (laying out
the parameters and building or loading the C loop, measured as the first two steps minus two
ordinary steps). The C loop's walk over memory is chosen by measuring on the first steps
(``optimlab.optim._tuning``); every path is stepped until that choice is made before it is timed.

Small models (``small``): every optimizer's default step on seed 003's MLP (784-200-10, 4 tensors)
against torch's fused Adam on it, and on ~159k parameters in 196 tensors against torch's own
paths for the same algorithm; one thread, as the lab trains.

Run ``optimlab bench step --help`` or ``python benchmarks/step.py --help``. Benchmarks are never
asserted by tests.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from optimlab import optim
from optimlab.optim import _cc, _fused
from optimlab.optim._inplace import measuring
from optimlab.optim.registry import convention_defaults

from .tables import markdown, rows, small_rows, table, write_json

__all__ = ["layout", "main", "markdown", "rows", "run", "small_models", "small_rows", "table"]

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

#: torch.optim's class and keywords for the same algorithm as each registry name
TORCH_EQUIVALENT: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {"lr": 1e-3}),
    "momentum": ("SGD", {"lr": 1e-3, "momentum": 0.9}),
    "nag": ("SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "adadelta": ("Adadelta", {}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop-tf1": ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "momentum": 0.9, "eps": 1e-10}),
    "adam": ("Adam", {}),
    "amsgrad": ("Adam", {"amsgrad": True}),
    "adamw": ("AdamW", {}),
    "nadam": ("NAdam", {}),
    "adamax": ("Adamax", {}),
}

OURS = ("foreach", "forloop", "fused")
THEIRS = ("forloop", "foreach", "fused")


# ---- layout ------------------------------------------------------------------------------------


def layout(params: int, tensors: int = 196) -> list[tuple[int, ...]]:
    """Shapes of a transformer-like model with about ``params`` elements in ``tensors`` tensors.

    ``(tensors - 4) // 16`` blocks of 6 matrices (4 of d x d, d x 4d, 4d x d) and 10 vectors,
    plus an embedding (about a fifth of the parameters), a position table and a final norm.
    """
    if params < 1000:
        raise ValueError(f"Invalid params: {params!r} (expected at least 1000)")
    blocks = max(1, (tensors - 4) // 16)
    d = max(8, int(math.sqrt(0.8 * params / (12 * blocks))) // 8 * 8)
    shapes: list[tuple[int, ...]] = []
    for _ in range(blocks):
        shapes += [(d, d)] * 4 + [(4 * d, d), (d, 4 * d)]
        shapes += [(d,)] * 8 + [(4 * d,), (d,)]
    rest = params - sum(math.prod(s) for s in shapes) - 2 * d - 64 * d
    shapes = [(max(1, rest // d), d), (64, d)] + shapes + [(d,), (d,)]
    total = sum(math.prod(s) for s in shapes)
    if abs(total - params) > 0.1 * params:  # "about" means within 10%
        raise ValueError(
            f"Cannot lay out {params:,} parameters in about {tensors:,} tensors (the nearest layout "
            f"has {total:,} in {len(shapes)}); give more --params or fewer --tensors"
        )
    return shapes


# ---- measurement helpers -----------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: torch 2.13's profiler logs two lines per use from C++."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _peak_extra_bytes(fn: Callable[[], Any]) -> int:
    """Peak of the memory one call allocates beyond what it frees (CPU profiler events)."""
    acts = [torch.profiler.ProfilerActivity.CPU]
    with _quiet_stderr(), torch.profiler.profile(activities=acts, profile_memory=True) as prof:
        fn()
    deltas = []
    for e in prof.events():
        # self usage: what the event allocated (counted at its start) or freed (at its end)
        delta = e.self_cpu_memory_usage
        if delta:
            deltas.append((e.time_range.start if delta > 0 else e.time_range.end, delta))
    level = peak = 0
    for _, delta in sorted(deltas):
        level += delta
        peak = max(peak, level)
    return int(peak)


def _state_bytes(opt: torch.optim.Optimizer, numel: int) -> float:
    """Optimizer state bytes per parameter (tensors of the parameters' size; scalars excluded)."""
    seen: set[int] = set()
    total = 0
    for state in opt.state.values():
        for v in state.values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                key = v.data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += v.numel() * v.element_size()
    return total / numel


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "fused_backend": _fused.BACKEND,
        "c_backend": _cc.describe(),
    }


class _Path:
    """One way to take a step: a callable plus its bookkeeping."""

    def __init__(self, label: str, step: Callable[[], Any], words: int, itemsize: int) -> None:
        self.label, self.step = label, step
        self.bytes_per_elem = words * itemsize
        self.times: list[float] = []

    def time_once(self) -> None:
        t0 = time.perf_counter()
        self.step()
        self.times.append(time.perf_counter() - t0)

    def median(self) -> float:
        return statistics.median(self.times)


# ---- the benchmark -----------------------------------------------------------------------------


def _clone_params(
    source: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    out = []
    for p, g in zip(source, grads):
        q = p.detach().clone().requires_grad_(True)
        q.grad = g
        out.append(q)
    return out


def _ours(
    name: str, convention: str, how: str, params: list[torch.Tensor]
) -> torch.optim.Optimizer:
    flags = {"foreach": {"foreach": True}, "forloop": {"foreach": False}, "fused": {"fused": True}}
    return optim.create(name, params, convention=convention, **flags.get(how, {}))


def _with_torch_kernel(step: Callable[[], Any]) -> Callable[[], Any]:
    """``step`` run with the fused path calling torch's kernel instead of a compiled rule."""

    def run() -> Any:
        saved = _fused.BACKEND, _fused.TORCH_KERNELS
        _fused.BACKEND, _fused.TORCH_KERNELS = "none", True
        try:
            return step()
        finally:
            _fused.BACKEND, _fused.TORCH_KERNELS = saved

    return run


def _settle(opt: torch.optim.Optimizer, limit: int = 80) -> int:
    """Step until the C loops' walk is chosen (``_tuning``); how many steps that took."""
    steps = 0
    while measuring(opt) and steps < limit:
        opt.step()
        steps += 1
    return steps


def _theirs(name: str, how: str, params: list[torch.Tensor]) -> torch.optim.Optimizer | None:
    cls_name, kwargs = TORCH_EQUIVALENT[name]
    flags = {"forloop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    try:
        opt = getattr(torch.optim, cls_name)(params, **kwargs, **flags[how])
        opt.step()
    except (RuntimeError, TypeError, ValueError):
        return None  # torch has no such path for this algorithm/device
    return opt


def bench_config(
    name: str,
    convention: str,
    base: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    repeats: int,
    torch_paths: bool = True,
) -> dict[str, Any]:
    """Measure every path of one (optimizer, convention) on copies of ``base``; interleaved."""
    numel = sum(p.numel() for p in base)
    itemsize = base[0].element_size()
    paths: list[_Path] = []
    extra: dict[str, Any] = {}

    # optimlab -------------------------------------------------------------------------------
    words = None
    for how in (*OURS, "default"):
        params = _clone_params(base, grads)
        opt = _ours(name, convention, how, params)
        t0 = time.perf_counter()
        opt.step()
        opt.step()
        first_two = time.perf_counter() - t0
        _settle(opt)
        k = len(opt._active_buffers(opt.param_groups[0]))
        words = 3 + 2 * k
        if how == "default":
            extra["default_impl"] = opt.param_groups[0]["impl"]
        if how == "fused":
            extra["fused_first_two_steps_s"] = first_two
            extra["state_bytes_per_param"] = _state_bytes(opt, numel)
            extra["fused_impl"] = opt.param_groups[0]["impl"]
        extra.setdefault("peak_extra_bytes", {})[f"optimlab.{how}"] = _peak_extra_bytes(opt.step)
        paths.append(_Path(f"optimlab.{how}", opt.step, words, itemsize))
        if how == "fused" and opt._torch_kernel(opt.param_groups[0]) is not None:
            # the same cell through torch's fused kernel, called per parameter on the flat
            # buffers' views (the fused path below 1M elements, or without a C compiler)
            other = _ours(name, convention, how, _clone_params(base, grads))
            step = _with_torch_kernel(other.step)
            step()
            step()
            paths.append(_Path("optimlab.torch_kernel", step, words, itemsize))

    # torch.optim ------------------------------------------------------------------------------
    if torch_paths and name in TORCH_EQUIVALENT:
        for how in THEIRS:
            params = _clone_params(base, grads)
            opt = _theirs(name, how, params)
            if opt is None:
                continue
            opt.step()
            extra["peak_extra_bytes"][f"torch.{how}"] = _peak_extra_bytes(opt.step)
            paths.append(_Path(f"torch.{how}", opt.step, words, itemsize))

    # the machine, in the same rounds ----------------------------------------------------------
    x = torch.randn(numel, dtype=base[0].dtype) * 1e-3
    y = torch.randn(numel, dtype=base[0].dtype)
    paths.append(_Path("machine.copy", lambda: y.copy_(x), 2, itemsize))
    paths.append(_Path("machine.axpy", lambda: y.add_(x, alpha=1e-3), 3, itemsize))

    for r in range(repeats):
        shift = r % len(paths)
        for path in paths[shift:] + paths[:shift]:
            path.time_once()

    out: dict[str, Any] = {
        "optimizer": name,
        "convention": convention,
        "bytes_per_param": words * itemsize,
        **extra,
        "paths": {},
    }
    for path in paths:
        med = path.median()
        out["paths"][path.label] = {
            "median_ms": med * 1e3,
            "gbs": path.bytes_per_elem * numel / med / 1e9,
            "times_ms": [t * 1e3 for t in path.times],
        }
    fused_ms = out["paths"]["optimlab.fused"]["median_ms"]
    out["fused_setup_s"] = max(0.0, extra["fused_first_two_steps_s"] - 2 * fused_ms / 1e3)
    return out


def run(
    params: int = 10_000_000,
    dtype: str = "float32",
    optimizers: Sequence[str] | None = None,
    conventions: Sequence[str] | None = None,
    repeats: int = 9,
    tensors: int = 196,
    torch_paths: bool = True,
    progress: Callable[[str], None] | None = None,
    threads: int | None = None,
    small: bool = True,
) -> dict[str, Any]:
    """The whole benchmark; returns a JSON-serialisable dict (see the module docstring)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"Invalid threads: {threads!r} (expected at least 1)")
        torch.set_num_threads(threads)
    if dtype not in DTYPES:
        raise ValueError(f"Invalid dtype: {dtype!r} (expected one of {', '.join(DTYPES)})")
    names = list(optimizers or optim.available())
    for n in names:
        optim.entry(n)  # unknown names raise, listing the valid ones
    convs = list(conventions or optim.conventions())
    for c in convs:
        convention_defaults(c, "sgd")  # unknown conventions raise, listing the valid ones
    if repeats < 3:
        raise ValueError(f"Invalid repeats: {repeats!r} (expected at least 3)")
    torch.manual_seed(0)
    shapes = layout(params, tensors)
    base = [torch.randn(s).to(DTYPES[dtype]) for s in shapes]
    grads = [torch.randn(s).to(DTYPES[dtype]) * 1e-2 for s in shapes]
    numel = sum(p.numel() for p in base)
    results = []
    for name in names:
        for conv in convs:
            if progress:
                progress(f"{name} @ {conv}")
            results.append(bench_config(name, conv, base, grads, repeats, torch_paths))
    axpy = statistics.median(r["paths"]["machine.axpy"]["gbs"] for r in results)
    copy = statistics.median(r["paths"]["machine.copy"]["gbs"] for r in results)
    for r in results:
        _summarise(r, axpy)
    out = {
        "machine": _machine(),
        "params": numel,
        "tensors": len(shapes),
        "dtype": dtype,
        "repeats": repeats,
        "bandwidth_gbs": {"copy": copy, "axpy": axpy},
        "results": results,
    }
    if small:
        if progress:
            progress("small models")
        out["small"] = small_models(names, max(repeats, 9) * 20, torch_paths)
    return out


# ---- small models --------------------------------------------------------------------------------

#: seed 003's MLP (784-200-10): the lab's default model
MLP = ((200, 784), (200,), (10, 200), (10,))
SMALL_PARAMS = 159_010


def small_models(names: Sequence[str], repeats: int, torch_paths: bool = True) -> dict[str, Any]:
    """Default steps on small models, one thread. For each optimizer, its default step is timed
    in the same rounds as its references, as a row of :func:`bench_config`: on the MLP torch's
    fused Adam, on 159k parameters in 196 tensors torch's paths for the same algorithm.
    Median microseconds, per optimizer (``us[name][path]``)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for label, shapes in (("mlp", list(MLP)), ("196", layout(SMALL_PARAMS, 196))):
            gen = torch.Generator().manual_seed(0)
            base = [torch.randn(s, generator=gen) for s in shapes]
            grads = [torch.randn(s, generator=gen) * 1e-2 for s in shapes]
            impls, times = {}, {}
            for name in names:
                opt = optim.create(name, _clone_params(base, grads))
                opt.step()
                _settle(opt)
                impls[name] = opt.param_groups[0]["impl"]
                paths = [_Path(f"optimlab.{name}", opt.step, 1, 1)]
                refs = [("adam", "fused")] if label == "mlp" else [
                    (name, how) for how in ("foreach", "fused") if name in TORCH_EQUIVALENT
                ]
                for ref, how in refs if torch_paths else ():
                    theirs = _theirs(ref, how, _clone_params(base, grads))
                    if theirs is not None:
                        paths.append(_Path(f"torch.{ref}.{how}", theirs.step, 1, 1))
                for r in range(repeats):
                    shift = r % len(paths)
                    for path in paths[shift:] + paths[:shift]:
                        path.time_once()
                times[name] = {path.label: path.median() * 1e6 for path in paths}
            out[label] = {
                "tensors": len(shapes),
                "params": sum(p.numel() for p in base),
                "impl": impls,
                "us": times,
            }
        return out
    finally:
        torch.set_num_threads(saved)


def _summarise(r: dict[str, Any], axpy_gbs: float) -> None:
    p = r["paths"]
    default = p["optimlab.default"]
    # against the axpy timed in the same rounds as this configuration (same machine load)
    r["default_fraction_of_axpy"] = default["gbs"] / p["machine.axpy"]["gbs"]
    r["default_fraction_of_run_axpy"] = default["gbs"] / axpy_gbs
    theirs = {k: v["median_ms"] for k, v in p.items() if k.startswith("torch.")}
    if theirs:
        best = min(theirs, key=theirs.get)
        r["torch_best"] = best
        r["speedup_vs_torch_best"] = theirs[best] / default["median_ms"]
        if "torch.fused" in theirs:
            r["speedup_vs_torch_fused"] = theirs["torch.fused"] / default["median_ms"]
        if "torch.foreach" in theirs:
            r["speedup_vs_torch_foreach"] = theirs["torch.foreach"] / default["median_ms"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=int, default=10_000_000)
    ap.add_argument("--tensors", type=int, default=196)
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    ap.add_argument("--optimizers", default="", help="comma-separated names (default: all)")
    ap.add_argument("--conventions", default="", help="comma-separated (default: all)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-torch", action="store_true", help="skip torch.optim's paths")
    ap.add_argument("--no-small", action="store_true", help="skip the small-model rows")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables instead")
    ap.add_argument("--json", default=None, help="write the full result here")
    args = ap.parse_args(argv)
    from rich.console import Console

    console = Console(width=max(Console().width, 180))
    result = run(
        params=args.params,
        dtype=args.dtype,
        optimizers=[s for s in args.optimizers.split(",") if s] or None,
        conventions=[s for s in args.conventions.split(",") if s] or None,
        repeats=args.repeats,
        tensors=args.tensors,
        torch_paths=not args.no_torch,
        progress=lambda msg: console.log(msg),
        threads=args.threads,
        small=not args.no_small,
    )
    console.print(markdown(result) if args.markdown else table(result))
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
