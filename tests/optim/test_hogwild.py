"""Hogwild: processes training one model on shared-memory parameters see each other's updates.

Two worker processes (``torch.multiprocessing`` spawn) train one shared model with optimlab's
default-path optimizer, each on its own parameter (the other has no gradient there, so the two
never write the same memory and the result is exact). Every path updates the parameters in
place, so the parent, which never steps, sees both move. (With storage moved into private
buffers, as the fused path once did, the parent would see nothing.)
"""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

from optimlab import optim

#: above the default path's C threshold (16,384 elements): the C loop where a compiler exists
NUMEL = 20_000
STEPS = 5
LR = 1e-2


def _worker(rank: int, model: torch.nn.Module, name: str) -> None:
    torch.set_num_threads(1)
    opt = optim.create(name, model.parameters(), lr=LR)
    mine = list(model.parameters())[rank]
    for _ in range(STEPS):
        mine.grad = torch.ones(NUMEL)
        opt.step()


def test_parent_sees_both_workers_updates():
    model = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(NUMEL)) for _ in range(2)])
    model.share_memory()
    mp.spawn(_worker, args=(model, "adam"), nprocs=2, join=True)
    # Adam moves a coordinate with a constant gradient by lr (1 + 1e-8)^-1 per step
    for p in model.parameters():
        torch.testing.assert_close(p.detach(), torch.full((NUMEL,), -LR * STEPS), rtol=1e-6, atol=0)
