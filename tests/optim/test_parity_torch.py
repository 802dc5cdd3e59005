"""Differential tests: the ``pytorch`` convention against ``torch.optim``, step by step.

Each case is (id, torch class, keyword set, our registry name, steps): our optimizer is built with
``create(name, convention="pytorch", **kwargs)`` from the same keywords, and both run 50 steps on
parameters of every shape in :data:`optim_testing.SHAPES` (0-d and empty included), with
gradients of three magnitudes: 1, 1e-6 and 1e-9 (at 1e-9 the square root of the second moment is
below every eps, so an eps in the wrong place fails the comparison). Parameters AND every state
tensor are compared after each of the 50 steps.

Tolerances: float64 to 1e-10 relative (the required bound; measured: bitwise for every case but
NAdam, whose largest difference is 2.6e-16). float32 to 1e-6 relative: every case is bitwise
except NAdam, where torch keeps ``mu_product`` in the default dtype (float32) and ours is always
float64, so its step sizes differ in the 8th digit (measured 1.1e-7 after 50 steps).
"""

from __future__ import annotations

import pytest
import torch
from optim_testing import (
    GRAD_SCALES,
    TORCH_COUNTERPARTS,
    assert_close_scaled,
    default_dtype,
    initial_params,
    make_grad_fn,
    state_tensors,
    trajectory,
)

from optimlab import optim

STEPS = 50

# (id, torch class, kwargs shared by both, our registry name)
CASES = [
    ("sgd", torch.optim.SGD, {"lr": 0.1}, "sgd"),
    ("sgd-wd", torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.05}, "sgd"),
    ("sgd-momentum", torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}, "momentum"),
    ("sgd-dampening", torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}, "momentum"),
    (
        "sgd-nesterov-wd",
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        "nag",
    ),
    ("sgd-maximize", torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "maximize": True}, "momentum"),
    ("adagrad", torch.optim.Adagrad, {"lr": 0.1}, "adagrad"),
    (
        "adagrad-decay-init",
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.2, "weight_decay": 0.01},
        "adagrad",
    ),
    (
        "adagrad-eps-maximize",
        torch.optim.Adagrad,
        {"lr": 0.1, "eps": 1e-6, "maximize": True},
        "adagrad",
    ),
    ("adadelta", torch.optim.Adadelta, {}, "adadelta"),
    (
        "adadelta-wd",
        torch.optim.Adadelta,
        {"lr": 0.5, "rho": 0.95, "eps": 1e-7, "weight_decay": 0.1},
        "adadelta",
    ),
    ("rmsprop", torch.optim.RMSprop, {"lr": 0.01}, "rmsprop"),
    ("rmsprop-centered", torch.optim.RMSprop, {"lr": 0.01, "centered": True}, "rmsprop"),
    (
        "rmsprop-momentum",
        torch.optim.RMSprop,
        {"lr": 0.01, "momentum": 0.9, "alpha": 0.9},
        "rmsprop",
    ),
    (
        "rmsprop-centered-momentum-wd",
        torch.optim.RMSprop,
        {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.01, "eps": 1e-6},
        "rmsprop",
    ),
    ("adam", torch.optim.Adam, {"lr": 0.01}, "adam"),
    (
        "adam-wd-maximize",
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True},
        "adam",
    ),
    ("adam-amsgrad", torch.optim.Adam, {"lr": 0.01, "amsgrad": True}, "amsgrad"),
    (
        "adam-amsgrad-wd",
        torch.optim.Adam,
        {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
        "adam",
    ),
    ("adamw", torch.optim.AdamW, {"lr": 0.01}, "adamw"),
    (
        "adamw-amsgrad",
        torch.optim.AdamW,
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "betas": (0.5, 0.9)},
        "adamw",
    ),
    ("nadam", torch.optim.NAdam, {"lr": 0.01}, "nadam"),
    (
        "nadam-wd-decay",
        torch.optim.NAdam,
        {"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 0.01},
        "nadam",
    ),
    (
        "nadam-decoupled",
        torch.optim.NAdam,
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        "nadam",
    ),
    ("adamax", torch.optim.Adamax, {"lr": 0.01}, "adamax"),
    (
        "adamax-wd-maximize",
        torch.optim.Adamax,
        {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "eps": 1e-6, "maximize": True},
        "adamax",
    ),
]

TOL = {torch.float64: 1e-10, torch.float32: 1e-6}


def _compare(case, dtype: torch.dtype, scale: float, foreach: bool) -> None:
    case_id, torch_cls, kwargs, name = case
    params0 = initial_params(dtype=dtype)
    grad_fn = make_grad_fn(scale)
    # torch keeps NAdam's mu_product and every `step` in the default dtype: under float64 params
    # the default must be float64 too, or torch's own mu_product rounds to float32.
    with default_dtype(dtype):
        ref_hist, ref_opt, ref_params = trajectory(
            lambda ps: torch_cls(ps, foreach=False, **kwargs), params0, grad_fn, STEPS
        )
        our_hist, our_opt, our_params = trajectory(
            lambda ps: optim.create(name, ps, foreach=foreach, **kwargs), params0, grad_fn, STEPS
        )
    rtol = TOL[dtype]
    for t, (ours, ref) in enumerate(zip(our_hist, ref_hist)):
        for i, (a, e) in enumerate(zip(ours, ref)):
            assert_close_scaled(a, e, rtol, f"{case_id} step {t + 1} param {i}")
    for i, (p, q) in enumerate(zip(our_params, ref_params)):
        ours, ref = state_tensors(our_opt, p), state_tensors(ref_opt, q)
        # torch.optim.SGD keeps no step counter; every other key must exist in both
        assert set(ours) - set(ref) <= {"step"}, f"{case_id}: extra state {set(ours) - set(ref)}"
        assert set(ref) <= set(ours), f"{case_id}: missing state {set(ref) - set(ours)}"
        for key, expected in ref.items():
            actual = ours[key]
            if key in ("step", "mu_product"):
                # scalars: ours are float64 whatever the default dtype (exact past 2**24 steps)
                assert actual.item() == pytest.approx(expected.item(), rel=rtol), (case_id, key)
                continue
            assert_close_scaled(actual, expected, rtol, f"{case_id} state {key!r} of param {i}")


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("scale", GRAD_SCALES, ids=lambda s: f"g{s:g}")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_optim_float64(case, scale, foreach):
    _compare(case, torch.float64, scale, foreach)


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_optim_float32(case, foreach):
    _compare(case, torch.float32, 1.0, foreach)


def test_pytorch_convention_is_torch_defaults():
    """Under ``pytorch`` the classes carry torch.optim's defaults: the convention table is empty,
    and every shared constructor default equals torch's (read from torch's signatures)."""
    import inspect

    assert dict(optim.CONVENTIONS["pytorch"]) == {}
    for ours, theirs in TORCH_COUNTERPARTS:
        mine = inspect.signature(ours.__init__).parameters
        ref = inspect.signature(theirs.__init__).parameters
        for name, p in ref.items():
            if name in ("self", "params") or name not in mine:
                continue
            if p.default is inspect.Parameter.empty or name in ("foreach", "fused"):
                continue
            # torch >= 2.x documents lr defaults as floats or Tensors; compare as numbers
            assert mine[name].default == p.default, (ours.__name__, name)
