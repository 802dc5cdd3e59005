"""Checkpoints: save, load, continue == never stopped, bit for bit (RELIABILITY.md C1, C2, C6).

For every registry name under every convention: 20 steps, ``torch.save`` the state_dict,
``torch.load(weights_only=True)`` it, load it into a fresh optimizer over cloned parameters, 20
more steps; parameters and every state tensor must be ``torch.equal`` to an uninterrupted run of
40 steps. Loading must leave the loaded dict untouched, and a torch.optim state_dict of the
same algorithm must load into ours and continue as torch.optim does.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from optim_testing import (
    assert_close_scaled,
    assert_identical,
    default_dtype,
    initial_params,
    make_grad_fn,
    state_tensors,
)

from optimlab import optim

# every name under every convention on the default (foreach) path; the per-tensor path under
# pytorch's defaults (the two paths share the same state layout)
CASES = [
    pytest.param(n, c, True, id=f"{n}-{c}") for c in optim.conventions() for n in optim.available()
] + [pytest.param(n, "pytorch", False, id=f"{n}-pytorch-forloop") for n in optim.available()]
SHAPES = ((), (0,), (4,), (2, 3))


def _steps(opt, params, grad_fn, start, count):
    for t in range(start, start + count):
        for p, g in zip(params, grad_fn(t, params)):
            p.grad = g
        opt.step()


def _snapshot(sd):
    """A deep copy of a state_dict, to check later that nothing changed it."""
    return copy.deepcopy(sd)


@pytest.mark.parametrize("name, convention, foreach", CASES)
def test_save_load_resume_is_bitwise(name, convention, foreach):
    params0 = initial_params(SHAPES, seed=11)
    grad_fn = make_grad_fn(1.0, seed=12)
    kwargs = {"convention": convention, "foreach": foreach}
    if name == "sgd":
        kwargs["momentum"] = 0.5  # give plain SGD a buffer to carry over

    straight = [p.clone().requires_grad_(True) for p in params0]
    ref = optim.create(name, straight, **kwargs)
    _steps(ref, straight, grad_fn, 0, 40)

    first = [p.clone().requires_grad_(True) for p in params0]
    opt = optim.create(name, first, **kwargs)
    _steps(opt, first, grad_fn, 0, 20)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    before = _snapshot(loaded)

    resumed = [p.detach().clone().requires_grad_(True) for p in first]
    opt2 = optim.create(name, resumed, **kwargs)
    opt2.load_state_dict(loaded)
    assert_identical(loaded, before, "loaded dict changed by load_state_dict")
    _steps(opt2, resumed, grad_fn, 20, 20)
    assert_identical(loaded, before, "loaded dict changed by stepping after the load")

    for i, (a, b) in enumerate(zip(resumed, straight)):
        assert torch.equal(a, b), f"param {i} differs after resume"
    for i, (a, b) in enumerate(zip(resumed, straight)):
        sa, sb = state_tensors(opt2, a), state_tensors(ref, b)
        assert sa.keys() == sb.keys()
        for k in sa:
            assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), f"state {k!r} of {i}"
    assert_identical(opt2.state_dict(), ref.state_dict())


def test_state_holds_only_tensors_and_primitives():
    p = torch.zeros(3, requires_grad=True)
    opt = optim.create("nadam", [p])
    p.grad = torch.ones(3)
    opt.step()
    for value in opt.state_dict()["state"][0].values():
        assert isinstance(value, torch.Tensor)
    assert opt.state[p]["step"].dtype == torch.float32  # torch.optim's (C6: see below)


# torch.optim state_dicts of the same algorithm: (id, torch class, kwargs, our name)
FROM_TORCH = [
    ("sgd-momentum", torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}, "momentum"),
    ("sgd-nesterov", torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}, "nag"),
    ("adagrad", torch.optim.Adagrad, {"lr": 0.1, "initial_accumulator_value": 0.1}, "adagrad"),
    ("adadelta", torch.optim.Adadelta, {}, "adadelta"),
    (
        "rmsprop-centered-momentum",
        torch.optim.RMSprop,
        {"lr": 0.01, "centered": True, "momentum": 0.9},
        "rmsprop",
    ),
    ("adam", torch.optim.Adam, {"lr": 0.01}, "adam"),
    ("amsgrad", torch.optim.Adam, {"lr": 0.01, "amsgrad": True}, "amsgrad"),
    ("adamw", torch.optim.AdamW, {"lr": 0.01}, "adamw"),
    ("nadam", torch.optim.NAdam, {"lr": 0.01}, "nadam"),
    ("adamax", torch.optim.Adamax, {"lr": 0.01}, "adamax"),
]


@pytest.mark.parametrize("case", FROM_TORCH, ids=[c[0] for c in FROM_TORCH])
def test_torch_optim_state_dict_loads_and_continues(case):
    """20 steps of torch.optim, its state_dict into ours, 20 more of each: equal to 1e-10."""
    case_id, torch_cls, kwargs, name = case
    params0 = initial_params(SHAPES, seed=13)
    grad_fn = make_grad_fn(1.0, seed=14)
    with default_dtype(torch.float64):  # torch's step and mu_product in float64, as ours
        theirs = [p.clone().requires_grad_(True) for p in params0]
        ref = torch_cls(theirs, foreach=False, **kwargs)
        _steps(ref, theirs, grad_fn, 0, 20)
        ours = [p.detach().clone().requires_grad_(True) for p in theirs]
        opt = optim.create(name, ours, **kwargs)
        sd = torch.load(_saved(ref.state_dict()), weights_only=True)
        opt.load_state_dict(sd)
        _steps(ref, theirs, grad_fn, 20, 20)
        _steps(opt, ours, grad_fn, 20, 20)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close_scaled(a.detach(), b.detach(), 1e-10, f"{case_id} param {i}")
        sa, sb = state_tensors(opt, a), state_tensors(ref, b)
        for key in sb:
            if key == "step":
                assert sa[key].item() == sb[key].item() == 40
            elif key == "mu_product":
                assert sa[key].item() == pytest.approx(sb[key].item(), rel=1e-12)
            else:
                assert_close_scaled(sa[key], sb[key], 1e-10, f"{case_id} state {key!r} of {i}")


def _saved(sd) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    return buffer


def test_step_counter_past_2_pow_24():
    """C6: a float32 counter stops at 2**24; ours is float64, and bias corrections use it."""
    p = torch.zeros(2, requires_grad=True)
    opt = optim.create("adam", [p])
    p.grad = torch.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = torch.tensor(float(2**24), dtype=torch.float64)
    opt2 = optim.create("adam", [p])
    opt2.load_state_dict(sd)
    opt2.step()
    assert opt2.state[p]["step"].item() == 2**24 + 1
    opt2.step()
    assert opt2.state[p]["step"].item() == 2**24 + 2


def test_int_step_loads():
    """C3: a ``step`` stored as a Python int (older checkpoints) loads and steps."""
    p = torch.zeros(2, requires_grad=True)
    opt = optim.create("adam", [p])
    p.grad = torch.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = 1
    opt2 = optim.create("adam", [p.detach().clone().requires_grad_(True)])
    opt2.load_state_dict(sd)
    q = opt2.param_groups[0]["params"][0]
    q.grad = torch.ones(2)
    opt2.step()
    assert float(opt2.state[q]["step"]) == 2


@pytest.mark.parametrize("name", optim.available())
def test_state_without_newer_group_keys_loads(name):
    """C3: a checkpoint whose groups predate some keys (``maximize``, ``foreach``, ``form``...)
    loads, keeps the values the optimizer was built with, and steps as an unbroken run."""
    params0 = initial_params(((3,), (2, 2)), seed=17)
    grad_fn = make_grad_fn(1.0, seed=18)
    straight = [p.clone().requires_grad_(True) for p in params0]
    ref = optim.create(name, straight, convention="keras")
    _steps(ref, straight, grad_fn, 0, 10)

    first = [p.clone().requires_grad_(True) for p in params0]
    opt = optim.create(name, first, convention="keras")
    _steps(opt, first, grad_fn, 0, 5)
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        for key in (
            "maximize",
            "foreach",
            "fused",
            "form",
            "eps_inside_sqrt",
            "decoupled_weight_decay",
        ):
            group.pop(key, None)
    resumed = [p.detach().clone().requires_grad_(True) for p in first]
    opt2 = optim.create(name, resumed, convention="keras")
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0].keys() == opt.param_groups[0].keys()
    _steps(opt2, resumed, grad_fn, 5, 5)
    for a, b in zip(resumed, straight):
        assert torch.equal(a, b)
