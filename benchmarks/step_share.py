"""The optimizer step's share of the lab's training time: the default path against the
multi-tensor one, for each default optimizer of a task.

For every optimizer of the task's default list (``mnist-mlp``: seed 003's 784-200-10 MLP, 159,010
parameters), this trains one run with ``runner.run`` (no store, as ``optimlab tune`` runs it) with
the optimizer's default path and one with ``foreach=True`` appended to its spec, interleaved,
``--repeats`` times, and prints the median share of the training time spent in
``optimizer.step()`` and the median run time. One thread, as ``optimlab compare`` runs. The first
round also builds (or loads from the disk cache) the fused kernels and is not counted.

    python benchmarks/step_share.py [--task mnist-mlp] [--repeats 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec
from optimlab.lab.spec import build_optimizer, parse_spec
from optimlab.lab.tasks import get_task


def measure(task: str, spec: str, epochs: int) -> tuple[float, float]:
    """(step share, seconds) of one run."""
    start = time.perf_counter()
    result = run(RunSpec(task, spec, seed=0, epochs=epochs))
    return result.step_time_share, time.perf_counter() - start


def path_of(task: str, spec: str) -> str:
    """The path (``group["impl"]``) the optimizer of ``spec`` takes on the task's model."""
    model = get_task(task).model()
    optimizer = build_optimizer(parse_spec(spec).phases[0], model.parameters())
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.full_like(p, 1e-3)
        optimizer.step()
    return optimizer.param_groups[0]["impl"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mnist-mlp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    specs = get_task(args.task).optimizers
    variants = {"default": "", "foreach": ",foreach=True"}
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.repeats + 1):
        for spec in specs:
            for name, suffix in (variants.items() if r % 2 else reversed(variants.items())):
                got = measure(args.task, spec + suffix, args.epochs)
                if r:  # round 0 builds the kernels
                    rows.setdefault((spec, name), []).append(got)
    print(f"{args.task}, {args.epochs} epochs, 1 thread, median of {args.repeats} interleaved runs")
    print("| optimizer | step share, foreach | step share, default | run s, foreach | run s, default | default path |")
    print("|---|---|---|---|---|---|")
    totals = {name: 0.0 for name in variants}
    for spec in specs:
        cells = {}
        for name in variants:
            got = rows[(spec, name)]
            share = statistics.median(g[0] for g in got)
            secs = statistics.median(g[1] for g in got)
            totals[name] += secs
            cells[name] = (share, secs)
        print(
            f"| {spec} | {100 * cells['foreach'][0]:.1f}% | {100 * cells['default'][0]:.1f}% "
            f"| {cells['foreach'][1]:.3f} | {cells['default'][1]:.3f} | {path_of(args.task, spec)} |"
        )
    print(f"| all runs | | | {totals['foreach']:.2f} | {totals['default']:.2f} | |")


if __name__ == "__main__":
    main()
