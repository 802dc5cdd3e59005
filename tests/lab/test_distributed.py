"""Data-parallel training: 2 processes on gloo (CPU) equal one process with the same global batch.

DDP for sgd, momentum and adam, and FSDP2 (``fully_shard``) for adam, in float64 so that the only
difference left is the order of floating-point sums. The ranks run in one spawned pair of
processes (start-up dominates the cost); a synthetic task keeps them free of dataset files.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from optimlab.lab import distributed, runner
from optimlab.lab.runspec import RunSpec
from optimlab.lab.tasks import Dataset, Task, register

# (mode, spec): 50 rows with batches of 16 leave a last batch of 2, split 1 + 1 across ranks
CASES = [
    ("ddp", "sgd:lr=0.1"),
    ("ddp", "momentum:lr=0.05"),
    ("ddp", "adam:lr=0.01"),
    ("fsdp", "adam:lr=0.01"),
]
EPOCHS = 2


def _data(_options=None) -> Dataset:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    xt = torch.randn(20, 5, generator=g)
    return Dataset(x, y, xt, (xt[:, 0] + xt[:, 1] > 0).long(), source="synthetic")


def _model(seed: int) -> nn.Module:
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


TASK = Task(name="synth-dp", description="synthetic task for data-parallel tests", load=_data,
            model=_model, loss=F.cross_entropy, batch_size=16, epochs=EPOCHS, optimizers=("sgd",))


@pytest.fixture
def synth_task(add_task):
    add_task(TASK)


def _spec(text: str) -> RunSpec:
    return RunSpec("synth-dp", text, seed=0, epochs=EPOCHS)


def _rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    register(TASK)  # a fresh process: its own registry
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {}
        for mode, text in CASES:
            r = distributed.train(_spec(text), mode=mode, dtype=torch.float64,
                                  return_parameters=True)
            results[f"{mode} {text}"] = {"parameters": r["parameters"],
                                         "losses": torch.tensor(r["result"].step_losses)}
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_cover_a_batch_once_and_differ_by_at_most_one_row():
    for n in (1, 2, 15, 16):
        for world in (1, 2, 3):
            bounds = [distributed.shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_two_gloo_processes_equal_one_process(tmp_path, synth_task):
    torch.set_num_threads(1)
    out = tmp_path / "ranks.pt"
    mp.start_processes(_rank, args=(2, _free_port(), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    got = torch.load(out, weights_only=True)
    for mode, text in CASES:
        ref = distributed.train(_spec(text), dtype=torch.float64, return_parameters=True)
        dp = got[f"{mode} {text}"]
        assert set(dp["parameters"]) == set(ref["parameters"])
        for name, p in ref["parameters"].items():
            torch.testing.assert_close(dp["parameters"][name], p, rtol=0, atol=1e-13,
                                       msg=f"{mode} {text} {name}")
        torch.testing.assert_close(dp["losses"], torch.tensor(ref["result"].step_losses),
                                   rtol=0, atol=1e-13)
        # and the training moved the weights (the comparison is not of two initial states)
        torch.manual_seed(0)
        init = _model(0).double()
        moved = max((p - init.state_dict()[n]).abs().max().item()
                    for n, p in ref["parameters"].items())
        assert moved > 1e-3


def test_one_process_matches_the_runner(synth_task):
    # same initial weights, same batches: distributed.train is the runner's loop, sharded
    ref = runner.run(_spec("adam:lr=0.01"))
    mine = distributed.train(_spec("adam:lr=0.01"))["result"]
    torch.testing.assert_close(torch.tensor(mine.step_losses), torch.tensor(ref.step_losses),
                               rtol=1e-6, atol=1e-7)
    assert [e.step for e in mine.epochs] == [e.step for e in ref.epochs]


@pytest.mark.slow
def test_launcher_runs_torchrun_with_two_processes():
    if not Path(sys.executable).exists():
        pytest.skip("no interpreter path")
    result = distributed.launch(RunSpec("iris-softmax", "sgd:lr=0.1", epochs=2), 2,
                                timeout_s=300)
    assert result.status == "finished" and len(result.epochs) == 2
    assert result.epochs[-1].step == 8  # 120 rows, batches of 32: 4 steps an epoch
