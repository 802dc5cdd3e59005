"""Training-loop options for every task: accumulation, clipping, skipping non-finite steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from optimlab.lab import Task
from optimlab.lab.errors import UserError
from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec

_G = torch.Generator().manual_seed(0)
_X = torch.randn(48, 2, generator=_G)
_Y = (_X[:, 0] > _X[:, 1]).long()


class _Poisoned(nn.Module):
    """A linear model whose every third training step gets NaN gradients (its loss stays finite)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        if self.training:
            self.calls += 1
            if self.calls % 3 == 0:
                out.register_hook(lambda g: g * math.nan)
        return out


def _nan_row() -> TensorDataset:
    x = _X[:32].clone()
    x[5] = math.nan  # one training row poisons the loss of every batch that holds it
    return TensorDataset(x, _Y[:32])


TASKS = {
    "opt-grads": Task(name="opt-grads", model=lambda seed: _Poisoned(), loss=nn.functional.cross_entropy,
                      train=TensorDataset(_X[:32], _Y[:32]), test=TensorDataset(_X[32:], _Y[32:]),
                      batch_size=8, epochs=3),
    "opt-rows": Task(name="opt-rows", model=lambda seed: nn.Linear(2, 2), loss=nn.functional.cross_entropy,
                     train=_nan_row(), test=TensorDataset(_X[32:], _Y[32:]), batch_size=8, epochs=3),
}


@pytest.fixture(autouse=True)
def _tasks(add_task):
    for task in TASKS.values():
        add_task(task)


def test_accumulated_micro_batches_equal_one_batch_of_their_total_size():
    whole = run(RunSpec("iris-softmax", "adam:lr=0.05", seed=0, epochs=3, batch_size=32))
    spec = RunSpec("iris-softmax", "adam:lr=0.05", seed=0, epochs=3, batch_size=8, accumulate=4)
    parts = run(spec)
    assert "accumulate=4" in spec.run_id()
    assert len(parts.step_losses) == len(whole.step_losses) == 12  # 120 rows, 32 per step
    assert parts.step_losses == pytest.approx(whole.step_losses, rel=1e-6, abs=0)
    assert parts.epochs[-1].test_loss == pytest.approx(whole.epochs[-1].test_loss, rel=1e-6)


def test_clipping_bounds_each_step_and_a_loose_bound_changes_nothing():
    def losses(**kw):  # full batch: every step's loss is on the same rows
        return run(RunSpec("iris-softmax", "torch.optim:SGD:lr=1.0", seed=0, epochs=10,
                           batch_size="full", **kw)).step_losses

    plain, loose, tight = losses(), losses(clip_grad_norm=1e9), losses(clip_grad_norm=1e-4)
    assert loose == plain  # a factor of exactly 1
    # nine steps of length <= 1e-4 move the loss by at most 9e-4 * |gradient|; unclipped steps
    # of lr 1.0 move it by far more
    assert abs(tight[-1] - tight[0]) < 1e-3 and abs(plain[-1] - plain[0]) > 1e-2


@pytest.mark.parametrize("optimizer", ["adam:lr=0.01", "torch.optim:Adam:lr=0.01"])
def test_steps_with_nonfinite_gradients_are_skipped_and_counted(optimizer):
    diverged = run(RunSpec("opt-grads", optimizer, seed=0))
    assert diverged.status == "diverged"
    result = run(RunSpec("opt-grads", optimizer, seed=0, skip_nonfinite=True))
    assert result.status == "finished" and result.skipped_steps == 4  # steps 3, 6, 9, 12
    assert all(math.isfinite(v) for v in result.step_losses)
    assert all(math.isfinite(e.test_loss) for e in result.epochs)


def test_steps_with_a_nonfinite_loss_are_skipped_and_never_averaged_in():
    assert run(RunSpec("opt-rows", "sgd:lr=0.1", seed=0)).status == "diverged"
    result = run(RunSpec("opt-rows", "sgd:lr=0.1", seed=0, skip_nonfinite=True))
    assert result.status == "finished" and result.skipped_steps == 3  # one batch an epoch
    assert sum(not math.isfinite(v) for v in result.step_losses) == 3
    assert all(math.isfinite(e.train_loss) for e in result.epochs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"clip_grad_norm": 0}, "Invalid clip_grad_norm 0 (expected a number > 0)"),
    ({"clip_grad_norm": math.inf}, "Invalid clip_grad_norm inf"),
    ({"accumulate": 0}, "Invalid accumulate 0 (expected a whole number >= 1)"),
])
def test_bad_options_are_one_line(kwargs, message):
    with pytest.raises(UserError) as info:
        RunSpec("iris-softmax", "sgd", **kwargs)
    assert message in str(info.value)


def test_the_options_are_part_of_the_run_id():
    base = RunSpec("iris-softmax", "sgd").run_id()
    ids = {RunSpec("iris-softmax", "sgd", **kw).run_id() for kw in (
        {"clip_grad_norm": 1.0}, {"accumulate": 2}, {"skip_nonfinite": True}, {"device": "cuda:0"})}
    assert len(ids) == 4 and base not in ids
    assert RunSpec("iris-softmax", "sgd", device="cpu").run_id() == base
    assert RunSpec("iris-softmax", "sgd", accumulate=1).run_id() == base
