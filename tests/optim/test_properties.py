"""Property-based tests (hypothesis) over shapes, dtypes and hyperparameters.

For any registry name, convention, shapes (0-d and empty included), float32/float64 and a drawn
set of hyperparameters: the foreach path equals the per-tensor path bitwise (on CPU, torch's
``_foreach_*`` ops run the same per-tensor kernels); finite inputs give finite parameters and
state; every parameter and state tensor keeps its dtype and shape.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optimlab import optim

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)

shapes = st.lists(
    st.one_of(
        st.just(()),
        st.just((0,)),
        st.tuples(st.integers(1, 5)),
        st.tuples(st.integers(1, 3), st.integers(1, 4)),
    ),
    min_size=1,
    max_size=4,
)
dtypes = st.sampled_from([torch.float32, torch.float64])


@st.composite
def hyperparameters(draw, name: str) -> dict:
    """A valid keyword set for ``name``: only keywords its class accepts, in their valid ranges."""
    accepted = optim.entry(name).hyperparameters()
    hp = {"lr": draw(st.floats(1e-4, 0.1))}
    if "weight_decay" in accepted:
        hp["weight_decay"] = draw(st.sampled_from([0.0, 1e-3, 0.1]))
    if "betas" in accepted:
        hp["betas"] = (draw(st.floats(0.0, 0.99)), draw(st.floats(0.5, 0.9999)))
    if "eps" in accepted:
        hp["eps"] = draw(st.sampled_from([1e-10, 1e-8, 1e-6, 1e-3]))
    if "momentum" in accepted and name != "sgd":
        hp["momentum"] = draw(st.floats(0.1, 0.95))
    if "alpha" in accepted:
        hp["alpha"] = draw(st.floats(0.5, 0.999))
    if "rho" in accepted:
        hp["rho"] = draw(st.floats(0.5, 0.99))
    if "maximize" in accepted:
        hp["maximize"] = draw(st.booleans())
    if name == "rmsprop":
        hp["centered"] = draw(st.booleans())
    if name in ("adam", "adamw"):
        hp["amsgrad"] = draw(st.booleans())
    return hp


@st.composite
def problems(draw):
    name = draw(st.sampled_from(optim.available()))
    return (
        name,
        draw(st.sampled_from(optim.conventions())),
        draw(hyperparameters(name)),
        draw(shapes),
        draw(dtypes),
        draw(st.integers(0, 2**31 - 1)),
        draw(st.sampled_from([1e-6, 1.0, 100.0])),
    )


def _run(name, convention, hp, params0, grads, foreach):
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = optim.create(name, params, convention=convention, foreach=foreach, **hp)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
    return params, opt


def _inputs(shape_list, dtype, seed, scale, steps=4):
    gen = torch.Generator().manual_seed(seed)
    params0 = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shape_list]
    grads = [
        [(torch.randn(s, generator=gen, dtype=torch.float64) * scale).to(dtype) for s in shape_list]
        for _ in range(steps)
    ]
    return params0, grads


@SETTINGS
@given(problems())
def test_foreach_equals_per_tensor_path(problem):
    name, convention, hp, shape_list, dtype, seed, scale = problem
    params0, grads = _inputs(shape_list, dtype, seed, scale)
    a, opt_a = _run(name, convention, hp, params0, grads, foreach=True)
    b, opt_b = _run(name, convention, hp, params0, grads, foreach=False)
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        for key, value in opt_a.state[p].items():
            assert torch.equal(value, opt_b.state[q][key]), key


@SETTINGS
@given(problems())
def test_finite_in_finite_out_and_dtype_shape_kept(problem):
    name, convention, hp, shape_list, dtype, seed, scale = problem
    params0, grads = _inputs(shape_list, dtype, seed, scale)
    params, opt = _run(name, convention, hp, params0, grads, foreach=True)
    for p, p0 in zip(params, params0):
        assert p.dtype == dtype and p.shape == p0.shape
        assert torch.isfinite(p).all(), f"{name}@{convention} {hp}: non-finite parameter"
        state = opt.state[p]
        if optim.entry(name).cls.counts_steps:
            assert state["step"].item() == len(grads)
        else:  # torch.optim.SGD keeps no counter
            assert "step" not in state
        for key, value in state.items():
            assert torch.isfinite(value).all(), f"{name}@{convention} {hp}: non-finite {key}"
            if key not in ("step", "mu_product"):
                assert value.dtype == dtype and value.shape == p.shape, key


@SETTINGS
@given(st.sampled_from(optim.available()), st.floats(1e-3, 1.0), dtypes)
def test_one_step_moves_against_the_gradient(name, lr, dtype):
    """On a gradient with one sign everywhere, the first step decreases every coordinate."""
    p = torch.zeros(5, dtype=dtype, requires_grad=True)
    opt = optim.create(name, [p], lr=lr)
    p.grad = torch.linspace(0.5, 2.0, 5, dtype=dtype)
    opt.step()
    assert (p.detach() < 0).all()
    assert not math.isnan(p.sum().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_dtype_sets_scalar_state_as_in_torch(dtype):
    """F3, as torch.optim has it: ``step`` and NAdam's ``mu_product`` are float32, float64 under
    a float64 default dtype; the results follow torch.optim.NAdam's under either default."""
    for default in (torch.float32, torch.float64):
        old = torch.get_default_dtype()
        torch.set_default_dtype(default)
        try:
            p = torch.ones(3, dtype=dtype, requires_grad=True)
            q = torch.ones(3, dtype=dtype, requires_grad=True)
            opt = optim.create("nadam", [p], lr=0.1, foreach=True)
            ref = torch.optim.NAdam([q], lr=0.1, foreach=True)
            for _ in range(3):
                p.grad = torch.full((3,), 0.5, dtype=dtype)
                q.grad = p.grad.clone()
                opt.step()
                ref.step()
            assert torch.equal(p, q)
            for key in ("step", "mu_product"):
                assert opt.state[p][key].dtype == ref.state[q][key].dtype == default, key
        finally:
            torch.set_default_dtype(old)
