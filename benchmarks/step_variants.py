"""The C loop's walks over memory, timed against torch's kernels and axpy on this machine.

For one optimizer (default path, ~10M float32 parameters in 196 tensors, the layout of
``optimlab bench step``), this times the kernel call alone (no Python bookkeeping) with each
candidate walk of ``optimlab.optim._tuning.CANDIDATES`` (interleaved streams, block size, thread
split), torch.optim's fused and foreach steps for the same algorithm, and an in-place axpy over as
many elements, all interleaved round by round; it prints the median time, the GB/s the step's bytes
imply, and the fraction of the axpy's bandwidth. It shows what the tuner chooses between. Every
candidate rounds identically, so the parameters it steps stay valid.

    python benchmarks/step_variants.py adam --threads 2 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from optimlab import optim
from optimlab.bench.step import TORCH_EQUIVALENT, layout
from optimlab.optim import _fused, _tuning


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("optimizer", help="a registry name with a C loop (e.g. adam, sgd, nadam)")
    ap.add_argument("--params", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shapes = layout(args.params, 196)

    def params() -> list[torch.Tensor]:
        out = [torch.randn(s).requires_grad_(True) for s in shapes]
        for p in out:
            p.grad = torch.randn_like(p) * 1e-2
        return out

    opt = optim.create(args.optimizer, params())
    opt.step()
    opt.step()
    group = opt.param_groups[0]
    ((_, share),) = next(iter(opt._fused_groups.values())).shares.values()
    (run,) = share.runs
    if run.kernel is None:
        raise SystemExit(f"{args.optimizer} did not take the C loop here ({group['impl']})")
    names = opt._active_buffers(group)
    tape = _fused.record(opt, group, names, run.step + 1, run.dicts)
    run.ncounters = 0  # the step counters are not advanced by these calls
    paths = {
        v.label(): (lambda v=v: _fused.call_c(run.kernel, run, tape.scalars, v))
        for v in _tuning.CANDIDATES
    }
    cls, kwargs = TORCH_EQUIVALENT[args.optimizer]
    for how in ("fused", "foreach"):
        try:
            theirs = getattr(torch.optim, cls)(params(), **kwargs, **{how: True})
            theirs.step()
        except (RuntimeError, TypeError, ValueError):
            continue
        paths[f"torch {how}"] = theirs.step
    numel = sum(p.numel() for p in opt.param_groups[0]["params"])
    x, y = torch.randn(numel), torch.randn(numel)
    paths["axpy"] = lambda: y.add_(x, alpha=1e-3)
    times: dict[str, list[float]] = {k: [] for k in paths}
    labels = list(paths)
    for r in range(args.repeats):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            start = time.perf_counter()
            paths[label]()
            times[label].append(time.perf_counter() - start)
    step_bytes = (3 + 2 * len(names)) * 4 * numel
    axpy_gbs = 12 * numel / statistics.median(times["axpy"]) / 1e9
    print(f"{args.optimizer}: {numel:,} float32 params in {len(shapes)} tensors, "
          f"{args.threads} threads, median of {args.repeats}")
    for label, t in times.items():
        med = statistics.median(t)
        gbs = (12 * numel if label == "axpy" else step_bytes) / med / 1e9
        print(f"{label:14s} {med * 1e3:8.2f} ms {gbs:6.1f} GB/s {100 * gbs / axpy_gbs:5.0f}% axpy")


if __name__ == "__main__":
    main()
