"""Overhead of the lab's runner over a hand-written torch loop (target: median ratio < 1.10).

The same run (mnist-mlp, Adam lr 1e-3, 5 epochs, seed 0) through :func:`optimlab.lab.runner.run`
and through a plain loop that does the same work: seed, build the model, shuffle each epoch with a
seeded generator, index the preloaded tensors, record every step's loss with ``loss.item()``, and
evaluate on the test split after each epoch. Repetitions are interleaved in one process so that
both see the same machine load; the ratio of each pair is taken and the median printed. The runner
is timed without a store or checkpoints (as ``optimlab tune`` uses it) and, separately, with both
(as ``optimlab compare`` does).

Usage: ``.venv/bin/python benchmarks/lab_overhead.py [--repeats 7] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec
from optimlab.lab.spec import build_optimizer, parse_spec
from optimlab.lab.store import Store
from optimlab.lab.tasks import DataOptions, get_task, load_dataset

TASK, OPTIMIZER, EPOCHS, SEED = "mnist-mlp", "adam:lr=0.001", 5, 0


def hand_loop() -> list[float]:
    task = get_task(TASK)
    data = load_dataset(task, DataOptions())
    torch.manual_seed(SEED)
    model = task.model()
    optimizer = build_optimizer(parse_spec(OPTIMIZER).phases[0], model.parameters())
    x, y, n, bs = data.x_train, data.y_train, len(data.x_train), task.batch_size
    losses = []
    g = torch.Generator()
    for epoch in range(EPOCHS):
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


def lab_run(folder: Path | None) -> list[float]:
    spec = RunSpec(TASK, OPTIMIZER, seed=SEED, epochs=EPOCHS)
    if folder is None:
        return run(spec).step_losses
    with Store.open(folder) as store:
        return run(spec, store=store, checkpoint_dir=folder / "checkpoints").step_losses


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hand_loop()  # warm-up: loads and caches the data, first-call allocations
    lab_run(None)
    plain, stored = [], []
    hand_times, lab_times, stored_times = [], [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            # alternate which goes first so that neither always runs on a warmer cache
            if i % 2:
                h, lab = timed(hand_loop), timed(lab_run, None)
            else:
                lab, h = timed(lab_run, None), timed(hand_loop)
            s = timed(lab_run, Path(tmp))
        hand_times.append(h)
        lab_times.append(lab)
        stored_times.append(s)
        plain.append(lab / h)
        stored.append(s / h)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats")
    print(f"hand-written loop       median {statistics.median(hand_times):.3f} s")
    print(f"lab runner              median {statistics.median(lab_times):.3f} s")
    print(f"lab runner + store/ckpt median {statistics.median(stored_times):.3f} s")
    print(f"median ratio runner / hand loop:             {statistics.median(plain):.3f}")
    print(f"median ratio runner+store+checkpoints / hand: {statistics.median(stored):.3f}")


if __name__ == "__main__":
    main()
