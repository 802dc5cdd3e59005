"""Differential tests: the ``optax`` convention against optax (JAX on CPU, x64), step by step.

optax has no default learning rate: both sides get the same explicit ``lr``; every other
hyperparameter is left to the two libraries' defaults in the ``defaults`` cases (that is what
checks the ``optax`` convention table), and set explicitly in the others. Parameters and every
state tensor are compared after each of 40 steps, to 1e-10 relative (measured: at most 1.4e-12,
where optax computes beta1**t as a power and NAdam's mu_product is a running product), on the
same shapes as the torch parity (0-d and empty included) and with gradients of size 1 and 1e-9.

Skipped, with the reason, where jax or optax cannot be imported.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from optim_testing import assert_close_scaled, default_dtype, initial_params, make_grad_fn

from optimlab import optim

os.environ.setdefault("JAX_PLATFORMS", "cpu")
jax = pytest.importorskip("jax", reason="jax is not installed (pip install '.[optax]')")
optax = pytest.importorskip("optax", reason="optax is not installed (pip install '.[optax]')")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

pytestmark = pytest.mark.optax

STEPS = 40
RTOL = 1e-10
LR = 0.03

# our state key -> (optax state field, sign). optax.rmsprop's momentum is a trace of the already
# lr-scaled, negated update (lr inside the buffer): our velocity buffer with the opposite sign.
SLOTS = {
    "sgd": {"momentum_buffer": ("trace", 1.0)},
    "adagrad": {"sum": ("sum_of_squares", 1.0)},
    "adadelta": {"square_avg": ("e_g", 1.0), "acc_delta": ("e_x", 1.0)},
    "rmsprop": {
        "square_avg": ("nu", 1.0),
        "grad_avg": ("mu", 1.0),
        "momentum_buffer": ("trace", -1.0),
    },
    "adam": {"exp_avg": ("mu", 1.0), "exp_avg_sq": ("nu", 1.0), "max_exp_avg_sq": ("nu_max", 1.0)},
    "adamax": {"exp_avg": ("mu", 1.0), "exp_inf": ("nu", 1.0)},
}

# (id, our name, optax optimizer, our keywords, slot family)
CASES = [
    ("sgd", "sgd", optax.sgd(LR), {"lr": LR}, "sgd"),
    ("momentum", "momentum", optax.sgd(LR, momentum=0.9), {"lr": LR}, "sgd"),
    ("nesterov", "nag", optax.sgd(LR, momentum=0.9, nesterov=True), {"lr": LR}, "sgd"),
    ("momentum-0.5", "momentum", optax.sgd(LR, momentum=0.5), {"lr": LR, "momentum": 0.5}, "sgd"),
    ("adagrad", "adagrad", optax.adagrad(LR), {"lr": LR}, "adagrad"),
    (
        "adagrad-explicit",
        "adagrad",
        optax.adagrad(LR, initial_accumulator_value=0.5, eps=1e-6),
        {"lr": LR, "initial_accumulator_value": 0.5, "eps": 1e-6},
        "adagrad",
    ),
    # optax.adadelta(None) applies no learning rate at all (not even the sign): pass 1.0
    ("adadelta", "adadelta", optax.adadelta(1.0), {"lr": 1.0}, "adadelta"),
    (
        "adadelta-wd",
        "adadelta",
        optax.adadelta(0.5, rho=0.95, eps=1e-7, weight_decay=0.05),
        {"lr": 0.5, "rho": 0.95, "eps": 1e-7, "weight_decay": 0.05},
        "adadelta",
    ),
    ("rmsprop", "rmsprop", optax.rmsprop(LR), {"lr": LR}, "rmsprop"),
    (
        "rmsprop-centered",
        "rmsprop",
        optax.rmsprop(LR, centered=True),
        {"lr": LR, "centered": True},
        "rmsprop",
    ),
    (
        "rmsprop-momentum",
        "rmsprop",
        optax.rmsprop(LR, momentum=0.9),
        {"lr": LR, "momentum": 0.9},
        "rmsprop",
    ),
    (
        "rmsprop-bias-correction-eps-outside",
        "rmsprop",
        optax.rmsprop(LR, bias_correction=True, eps_in_sqrt=False),
        {"lr": LR, "bias_correction": True, "eps_inside_sqrt": False},
        "rmsprop",
    ),
    (
        "rmsprop-initial-scale",
        "rmsprop",
        optax.rmsprop(LR, initial_scale=1.0, decay=0.8),
        {"lr": LR, "initial_accumulator_value": 1.0, "alpha": 0.8},
        "rmsprop",
    ),
    (
        "rmsprop-centered-momentum-bias-correction",
        "rmsprop",
        # eps inside the root and not tiny: at step 1 the bias-corrected variance is 0 up to
        # rounding (optax's sqrt of it is NaN when the rounding is negative, with eps outside),
        # so the first step is lr*g/sqrt(eps)
        optax.rmsprop(LR, centered=True, momentum=0.5, bias_correction=True, eps=1e-2),
        {"lr": LR, "centered": True, "momentum": 0.5, "bias_correction": True, "eps": 1e-2},
        "rmsprop",
    ),
    ("adam", "adam", optax.adam(LR), {"lr": LR}, "adam"),
    (
        "adam-explicit",
        "adam",
        optax.adam(LR, b1=0.8, b2=0.99, eps=1e-6),
        {"lr": LR, "betas": (0.8, 0.99), "eps": 1e-6},
        "adam",
    ),
    ("amsgrad", "amsgrad", optax.amsgrad(LR), {"lr": LR}, "adam"),
    ("adamw", "adamw", optax.adamw(LR), {"lr": LR}, "adam"),
    (
        "adamw-wd",
        "adamw",
        optax.adamw(LR, weight_decay=0.1),
        {"lr": LR, "weight_decay": 0.1},
        "adam",
    ),
    ("nadam", "nadam", optax.nadam(LR), {"lr": LR}, "adam"),
    ("nadam-explicit", "nadam", optax.nadam(LR, b1=0.8), {"lr": LR, "betas": (0.8, 0.999)}, "adam"),
    ("adamax", "adamax", optax.adamax(LR), {"lr": LR}, "adamax"),
]


def _fields(state, out=None) -> dict:
    """The named fields of optax's (nested) state, first occurrence of each name."""
    out = {} if out is None else out
    if hasattr(state, "_fields"):
        for name in state._fields:
            value = getattr(state, name)
            if isinstance(value, list):
                out.setdefault(name, value)
            else:
                _fields(value, out)
    elif isinstance(state, (tuple, list)):
        for s in state:
            _fields(s, out)
    return out


def _to_torch(x) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.float64))


@pytest.mark.parametrize("scale", [1.0, 1e-9], ids=["g1", "g1e-9"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_optax(case, scale):
    if case[1] == "nadam":
        # NAdam keeps prod mu_i in a scalar tensor of torch.optim's dtype: float32, whose
        # rounding (~6e-8 a step) its step size carries, or float64 under a float64 default
        # dtype (torch's rule), which keeps optax's float64 beta1**t
        with default_dtype(torch.float64):
            _compare(case, scale)
    else:
        _compare(case, scale)


def _compare(case, scale):
    case_id, name, tx, our_kwargs, family = case
    params0 = initial_params(dtype=torch.float64, seed=5)
    grad_fn = make_grad_fn(scale, seed=6)
    ref = [jnp.asarray(p.numpy()) for p in params0]
    ref_state = tx.init(ref)
    update = jax.jit(tx.update)
    ours = [p.clone().requires_grad_(True) for p in params0]
    opt = optim.create(name, ours, convention="optax", **our_kwargs)
    for t in range(STEPS):
        grads = [jnp.asarray(g.numpy()) for g in grad_fn(t, [_to_torch(x) for x in ref])]
        updates, ref_state = update(grads, ref_state, ref)
        ref = optax.apply_updates(ref, updates)
        for p, g in zip(ours, grad_fn(t, ours)):
            p.grad = g
        opt.step()
        for i, (p, r) in enumerate(zip(ours, ref)):
            assert_close_scaled(p.detach(), _to_torch(r), RTOL, f"{case_id} step {t + 1} param {i}")
    fields = _fields(ref_state)
    for i, p in enumerate(ours):
        state = opt.state[p]
        for key, (field, sign) in SLOTS[family].items():
            if key not in state:
                assert field not in fields, f"{case_id}: optax keeps {field} but we keep no {key!r}"
                continue
            expected = _to_torch(fields[field][i]) * sign
            assert_close_scaled(state[key], expected, RTOL, f"{case_id} state {key!r} of param {i}")


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


def test_optax_convention_defaults_equal_optax():
    """Every default of optax's aliases (read off ``optax/_src/alias.py``'s signatures) equals
    what ``resolve(name, "optax")`` builds; optax has no default learning rate, so ours stays
    torch.optim's."""

    def built(name):
        e = optim.entry(name)
        return e.cls([torch.zeros(1, requires_grad=True)], **optim.resolve(name, "optax")).defaults

    a = built("adagrad")
    assert a["initial_accumulator_value"] == _default(optax.adagrad, "initial_accumulator_value")
    assert a["eps"] == _default(optax.adagrad, "eps") and a["eps_inside_sqrt"]
    d = built("adadelta")
    assert (d["rho"], d["eps"]) == (
        _default(optax.adadelta, "rho"),
        _default(optax.adadelta, "eps"),
    )
    r = built("rmsprop")
    assert r["alpha"] == _default(optax.rmsprop, "decay")
    assert r["eps"] == _default(optax.rmsprop, "eps")
    assert r["initial_accumulator_value"] == _default(optax.rmsprop, "initial_scale")
    assert r["eps_inside_sqrt"] == _default(optax.rmsprop, "eps_in_sqrt")
    assert r["centered"] == _default(optax.rmsprop, "centered")
    assert r["bias_correction"] == _default(optax.rmsprop, "bias_correction")
    # optax chains scale_by_rms -> scale_by_learning_rate -> trace: lr inside the momentum buffer
    assert r["form"] == "velocity"
    for name, fn in [
        ("adam", optax.adam),
        ("amsgrad", optax.amsgrad),
        ("adamw", optax.adamw),
        ("nadam", optax.nadam),
        ("adamax", optax.adamax),
    ]:
        b = built(name)
        assert b["betas"] == (_default(fn, "b1"), _default(fn, "b2")), name
        assert b["eps"] == _default(fn, "eps"), name
    assert built("adamw")["weight_decay"] == _default(optax.adamw, "weight_decay")
    assert built("amsgrad")["amsgrad_max"] == "corrected"
    assert built("nadam")["momentum_schedule"] == "constant"
    assert built("adamax")["eps_inside_max"] is True
    for name in optim.available():
        if name != "rmsprop-tf1":
            assert (
                built(name)["lr"]
                == inspect.signature(optim.entry(name).cls).parameters["lr"].default
            )
