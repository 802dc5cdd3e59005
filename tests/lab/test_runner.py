"""The runner: determinism, shared initial weights, divergence, schedules, batch sizes, phases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optimlab.lab.checkpoint import checkpoint_path
from optimlab.lab.errors import UserError
from optimlab.lab.runner import run
from optimlab.lab.runspec import RunSpec, resolve_batch_size
from optimlab.lab.schedules import build_scheduler, parse_schedule
from optimlab.lab.tasks import Dataset, Task

TOY = "test-toy-runner"
INITIAL_WEIGHTS: list[torch.Tensor] = []


def _toy_load(options) -> Dataset:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(100, 5, generator=g)
    y = (x[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)
    # the test split is poisoned: a run with a validation fraction must never evaluate on it
    return Dataset(x[:80], y[:80], torch.full((20, 5), math.nan), y[80:], source="synthetic")


def _toy_model(seed: int) -> nn.Module:
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    INITIAL_WEIGHTS.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
    return model


@pytest.fixture(autouse=True)
def _toy_task(add_task):
    add_task(Task(name=TOY, description="synthetic 5 -> 3 classes", load=_toy_load, model=_toy_model,
                  loss=nn.functional.cross_entropy, batch_size=16, epochs=3,
                  optimizers=("sgd:lr=0.1", "adam:lr=0.01")))


def test_same_seed_gives_identical_numbers():
    spec = RunSpec("digits-mlp", "adam:lr=0.001", seed=3, epochs=1)
    a, b = run(spec), run(spec)
    assert a.status == b.status == "finished"
    assert a.step_losses == b.step_losses
    assert [(e.train_loss, e.test_loss, e.test_accuracy) for e in a.epochs] == [
        (e.train_loss, e.test_loss, e.test_accuracy) for e in b.epochs
    ]


def test_different_seeds_give_different_numbers():
    a = run(RunSpec("digits-mlp", "adam:lr=0.001", seed=0, epochs=1))
    b = run(RunSpec("digits-mlp", "adam:lr=0.001", seed=1, epochs=1))
    assert a.step_losses != b.step_losses
    assert a.epochs[0].test_loss != b.epochs[0].test_loss


def test_every_optimizer_of_a_seed_starts_from_the_same_weights():
    INITIAL_WEIGHTS.clear()
    for optimizer in ("sgd:lr=0.1", "adam:lr=0.01", "rmsprop"):
        run(RunSpec(TOY, optimizer, seed=7, epochs=1))
    run(RunSpec(TOY, "sgd:lr=0.1", seed=8, epochs=1))
    assert torch.equal(INITIAL_WEIGHTS[0], INITIAL_WEIGHTS[1])
    assert torch.equal(INITIAL_WEIGHTS[0], INITIAL_WEIGHTS[2])
    assert not torch.equal(INITIAL_WEIGHTS[0], INITIAL_WEIGHTS[3])


def test_result_records_every_step_and_epoch():
    r = run(RunSpec(TOY, "sgd:lr=0.1", epochs=3))
    assert len(r.step_losses) == 3 * 5 == len(r.step_times_s)  # 80 examples / 16 = 5 steps an epoch
    assert [e.epoch for e in r.epochs] == [1, 2, 3]
    assert [e.step for e in r.epochs] == [5, 10, 15]
    assert r.epochs[0].train_loss == pytest.approx(sum(r.step_losses[:5]) / 5)
    assert 0.0 < r.step_time_share < 1.0
    assert r.step_times_s == sorted(r.step_times_s) and r.wall_time_s >= r.step_times_s[-1]


def test_divergence_stops_at_the_first_non_finite_step():
    r = run(RunSpec("digits-mlp", "sgd:lr=1e6", epochs=2))
    assert r.status == "diverged"
    k = r.diverged_step
    assert k is not None and len(r.step_losses) == k
    assert not math.isfinite(r.step_losses[-1])
    assert all(math.isfinite(v) for v in r.step_losses[:-1])
    assert r.epochs == [] or r.epochs[-1].step < k


def test_validation_fraction_never_reads_the_test_split():
    r = run(RunSpec(TOY, "adam:lr=0.01", epochs=1, validation_fraction=0.25))
    assert math.isfinite(r.epochs[0].test_loss)
    assert len(r.step_losses) == 4  # 60 training examples left, batches of 16
    poisoned = run(RunSpec(TOY, "adam:lr=0.01", epochs=1))
    assert math.isnan(poisoned.epochs[0].test_loss)


def test_batch_sizes():
    assert len(run(RunSpec(TOY, "sgd", epochs=2, batch_size="full")).step_losses) == 2
    assert len(run(RunSpec(TOY, "sgd", epochs=1, batch_size=1)).step_losses) == 80
    assert len(run(RunSpec(TOY, "sgd", epochs=1, batch_size="40")).step_losses) == 2
    assert resolve_batch_size(None, 32, 10) == 10
    for bad in (0, -3, "x", "1.5", True):
        with pytest.raises(UserError, match="Invalid batch size .*full"):
            resolve_batch_size(bad, 32, 100)


def test_phase_switch_builds_a_new_optimizer_at_the_boundary():
    adam = run(RunSpec(TOY, "adam:lr=0.01", epochs=2))
    switched = run(RunSpec(TOY, "adam:lr=0.01@1+sgd:lr=0.5", epochs=2))
    assert switched.step_losses[:6] == adam.step_losses[:6]  # epoch 1, plus the first step of epoch 2
    assert switched.step_losses[6:] != adam.step_losses[6:]


def test_on_epoch_exception_propagates():
    class Pruned(Exception):
        pass

    seen = []

    def on_epoch(record):
        seen.append(record.epoch)
        if record.epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        run(RunSpec(TOY, "sgd", epochs=3), on_epoch=on_epoch)
    assert seen == [1, 2]


def test_run_id_is_readable_stable_and_unique():
    base = RunSpec("mnist-mlp", "adam:lr=1e-3", seed=2)
    assert base.run_id() == "mnist-mlp|adam:lr=0.001|seed=2"
    assert base.run_id() == RunSpec("mnist-mlp", "adam:lr=0.001", seed=2).run_id()
    variants = [
        base, RunSpec("mnist-mlp", "adam:lr=1e-3", seed=3), RunSpec("mnist-mlp", "adam", seed=2),
        RunSpec("mnist-mlp", "adam:lr=1e-3", seed=2, epochs=2),
        RunSpec("mnist-mlp", "adam:lr=1e-3", seed=2, batch_size="full"),
        RunSpec("mnist-mlp", "adam:lr=1e-3", seed=2, schedule="cosine"),
        RunSpec("mnist-mlp", "adam:lr=1e-3", seed=2, validation_fraction=0.1),
    ]
    ids = [v.run_id() for v in variants]
    assert len(set(ids)) == len(ids)
    paths = {checkpoint_path("/tmp", i).name for i in ids}
    assert len(paths) == len(ids) and all("/" not in p for p in paths)


def _lrs(schedule: str, steps: int, steps_per_epoch: int = 4, total: int = 20) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = build_scheduler(parse_schedule(schedule), opt, steps_per_epoch=steps_per_epoch, total_steps=total)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedules_step_per_optimizer_step():
    exp = _lrs("exp:gamma=0.5", 9)
    assert exp[4] == pytest.approx(0.5) and exp[8] == pytest.approx(0.25)  # halved per 4-step epoch
    step = _lrs("step:step_size=2,gamma=0.1", 10)
    assert step[7] == 1.0 and step[8] == pytest.approx(0.1)
    cosine = _lrs("cosine", 21)
    assert cosine[0] == 1.0 and cosine[10] == pytest.approx(0.5) and cosine[20] == pytest.approx(0.0, abs=1e-12)
    warm = _lrs("warmup:steps=4+cosine", 21)
    assert warm[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert warm[12] == pytest.approx(0.5) and warm[20] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("linear", "Unknown schedule 'linear' .*exp, step, cosine, warmup, constant"),
        ("exp", "needs gamma"),
        ("exp:gamma=2", "Invalid gamma=2"),
        ("step:size=2", "Unknown parameter 'size' for schedule 'step' .*step_size, gamma"),
        ("cosine+warmup:steps=3", "needs a length"),
        ("exp:gamma=__import__", "expected key=number"),
        ("", "Empty schedule"),
    ],
)
def test_bad_schedules_are_one_line_user_errors(text, message):
    with pytest.raises(UserError, match=message) as info:
        parse_schedule(text)
    assert "\n" not in str(info.value)


def test_schedule_with_a_run_and_bad_epochs():
    r = run(RunSpec(TOY, "sgd:lr=0.1", epochs=2, schedule="warmup:steps=3+cosine"))
    assert r.status == "finished" and len(r.step_losses) == 10
    with pytest.raises(UserError, match="Invalid epochs"):
        run(RunSpec(TOY, "sgd", epochs=0))
    with pytest.raises(UserError, match="Unknown task 'nope'"):
        run(RunSpec("nope", "sgd"))
