"""Overhead of the lab's runner over a hand-written torch loop, on iris-softmax and mnist-mlp
(target: median ratio < 1.10 on both).

For each task the same run (its default batch size and epochs, Adam, seed 0) goes through
:func:`optimlab.lab.runner.run` and through a plain loop that does the same work: seed, build the
model, shuffle each epoch with a seeded generator, index the preloaded tensors, record every step's
loss with ``loss.item()``, and evaluate on the test split after each epoch. The runner is timed
three ways: without a store or checkpoints (as ``optimlab tune`` uses it), with both at the default
interval (as ``optimlab compare`` runs), and with both after every epoch (``--checkpoint-every 0``,
what every run did before saves went on a time interval). Repetitions of both tasks are
interleaved in one process, in an order that rotates, so that every variant sees the same machine
load; the ratio to the hand loop of the same repetition is taken and the median printed.

Usage: ``.venv/bin/python benchmarks/lab_overhead.py [--repeats 7] [--threads 1] [--tasks ...]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec
from optimlab.lab.spec import build_optimizer, parse_spec
from optimlab.lab.store import Store
from optimlab.lab.tasks import DataOptions, get_task, load_dataset

#: task -> (optimizer spec, epochs)
RUNS = {
    "iris-softmax": ("adam:lr=0.1,betas=0.9/0.999,eps=0", 500),
    "mnist-mlp": ("adam:lr=0.001", 5),
}
SEED = 0
VARIANTS = ("hand-written loop", "runner", "runner + store + checkpoints (every 30 s)",
            "runner + store + checkpoints (every epoch)")


def hand_loop(task_name: str) -> list[float]:
    optimizer_text, epochs = RUNS[task_name]
    task = get_task(task_name)
    data = load_dataset(task, DataOptions())
    torch.manual_seed(SEED)
    model = task.model(SEED)
    optimizer = build_optimizer(parse_spec(optimizer_text).phases[0], model.parameters())
    x, y, n, bs = data.x_train, data.y_train, len(data.x_train), task.batch_size
    losses = []
    g = torch.Generator()
    for epoch in range(epochs):
        g.manual_seed(1000 + epoch)
        order = torch.randperm(n, generator=g)
        for b in range(0, n, bs):
            idx = order[b:b + bs]
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(model(x[idx]), y[idx])
            losses.append(loss.item())
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            model.eval()
            out = model(data.x_test)
            task.loss(out, data.y_test).item()
            (out.argmax(1) == data.y_test).float().mean().item()
            model.train()
    return losses


def lab_run(task_name: str, folder: Path | None, every: float = 30.0) -> list[float]:
    optimizer_text, epochs = RUNS[task_name]
    spec = RunSpec(task_name, optimizer_text, seed=SEED, epochs=epochs)
    if folder is None:
        return run(spec).step_losses
    with Store.open(folder) as store:
        return run(spec, store=store, checkpoint_dir=folder / "checkpoints",
                   checkpoint_every=every).step_losses


def fresh_store(folder: Path) -> Path:
    """An empty results store in ``folder``, created before the clock starts: ``optimlab compare``
    creates its store once, and each run opens it."""
    Store.open(folder).close()
    return folder


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", default=",".join(RUNS), help="comma-separated, of: " + ", ".join(RUNS))
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    torch.set_num_threads(args.threads)
    times = {t: {v: [] for v in VARIANTS} for t in tasks}
    ratios = {t: {v: [] for v in VARIANTS[1:]} for t in tasks}
    with tempfile.TemporaryDirectory() as tmp:
        folders = iter(Path(tmp) / str(i) for i in range(10**6))

        def stored(t: str, every: float) -> Callable[[], object]:
            folder = fresh_store(next(folders))
            return lambda: lab_run(t, folder, every)

        variants: dict[str, Callable[[str], Callable[[], object]]] = {
            VARIANTS[0]: lambda t: lambda: hand_loop(t),
            VARIANTS[1]: lambda t: lambda: lab_run(t, None),
            VARIANTS[2]: lambda t: stored(t, 30.0),
            VARIANTS[3]: lambda t: stored(t, 0.0),
        }
        for t in tasks:  # warm-up: loads and caches the data, first-call allocations
            hand_loop(t)
            lab_run(t, None)
        for i in range(args.repeats):
            for t in tasks:
                order = VARIANTS[i % 4:] + VARIANTS[:i % 4]  # rotate: no variant always runs first
                measured = {v: timed(variants[v](t)) for v in order}
                for v, s in measured.items():
                    times[t][v].append(s)
                for v in VARIANTS[1:]:
                    ratios[t][v].append(measured[v] / measured[VARIANTS[0]])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved "
          f"repeats, load average after the run {load}")
    print()
    print("| task | loop | median time (s) | median ratio to the hand loop |")
    print("|---|---|---|---|")
    for t in tasks:
        for v in VARIANTS:
            ratio = f"**{statistics.median(ratios[t][v]):.3f}**" if v in ratios[t] else "1"
            print(f"| {t} | {v} | {statistics.median(times[t][v]):.3f} | {ratio} |")


if __name__ == "__main__":
    main()
