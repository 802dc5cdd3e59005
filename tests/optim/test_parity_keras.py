"""Differential tests: the ``keras`` convention against Keras 3 (torch backend), step by step.

Ours is built with ``create(name, params, convention="keras", **ours)`` and Keras's optimizer with
its own keywords; both step float64 variables (Keras's ``floatx`` is set to float64 for this
module so that its learning-rate variable is float64 too; with the default float32 ``floatx``
``lr`` itself is rounded to float32 and the trajectories drift apart by up to 1e-4 relative).
Parameters and every slot variable are compared after each of 40 steps, to 1e-10 relative
(measured: at most 3.1e-15).

The first set of cases uses both libraries' defaults (no keyword at all: this is what checks the
``keras`` convention table); the second passes explicit hyperparameters and ``weight_decay``.
The last test reads Keras's constructor signatures and checks the table against them.
"""

from __future__ import annotations

import inspect
import os

import pytest
import torch
from optim_testing import assert_close_scaled, default_dtype, initial_params, make_grad_fn

from optimlab import optim

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras is not installed")
if keras.backend.backend() != "torch":
    pytest.skip("Keras parity needs KERAS_BACKEND=torch", allow_module_level=True)

# Keras's torch backend converts its NAdam scalars with np.array(tensor), which numpy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 40
RTOL = 1e-10
K = keras.optimizers

# Where each of our state tensors lives in the Keras optimizer, and its sign there (Keras's SGD
# keeps the velocity with the opposite sign: m = momentum*m - lr*g; theta += m).
SLOTS = {
    "sgd": {"momentum_buffer": ("momentums", -1.0)},
    "adagrad": {"sum": ("_accumulators", 1.0)},
    "adadelta": {
        "square_avg": ("_accumulated_grads", 1.0),
        "acc_delta": ("_accumulated_delta_vars", 1.0),
    },
    "rmsprop": {
        "square_avg": ("_velocities", 1.0),
        "grad_avg": ("_average_gradients", 1.0),
        "momentum_buffer": ("_momentums", 1.0),
    },
    "adam": {
        "exp_avg": ("_momentums", 1.0),
        "exp_avg_sq": ("_velocities", 1.0),
        "max_exp_avg_sq": ("_velocity_hats", 1.0),
    },
    "nadam": {"exp_avg": ("_momentums", 1.0), "exp_avg_sq": ("_velocities", 1.0)},
    "adamax": {"exp_avg": ("_m", 1.0), "exp_inf": ("_u", 1.0)},
}

# (id, our registry name, Keras class, Keras keywords, our keywords, slot family)
DEFAULT_CASES = [
    ("sgd", "sgd", K.SGD, {}, {}, "sgd"),
    ("momentum", "momentum", K.SGD, {"momentum": 0.9}, {}, "sgd"),
    ("nag", "nag", K.SGD, {"momentum": 0.9, "nesterov": True}, {}, "sgd"),
    ("adagrad", "adagrad", K.Adagrad, {}, {}, "adagrad"),
    ("adadelta", "adadelta", K.Adadelta, {}, {}, "adadelta"),
    ("rmsprop", "rmsprop", K.RMSprop, {}, {}, "rmsprop"),
    ("rmsprop-centered", "rmsprop", K.RMSprop, {"centered": True}, {"centered": True}, "rmsprop"),
    ("rmsprop-momentum", "rmsprop", K.RMSprop, {"momentum": 0.9}, {"momentum": 0.9}, "rmsprop"),
    ("adam", "adam", K.Adam, {}, {}, "adam"),
    ("amsgrad", "amsgrad", K.Adam, {"amsgrad": True}, {}, "adam"),
    ("adamw", "adamw", K.AdamW, {}, {}, "adam"),
    ("nadam", "nadam", K.Nadam, {}, {}, "nadam"),
    ("adamax", "adamax", K.Adamax, {}, {}, "adamax"),
]

EXPLICIT_CASES = [
    (
        "sgd-wd",
        "sgd",
        K.SGD,
        {"learning_rate": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.1},
        "sgd",
    ),
    (
        "momentum-wd",
        "momentum",
        K.SGD,
        {"learning_rate": 0.02, "momentum": 0.8, "weight_decay": 0.05},
        {"lr": 0.02, "momentum": 0.8, "weight_decay": 0.05},
        "sgd",
    ),
    (
        "nag-wd",
        "nag",
        K.SGD,
        {"learning_rate": 0.02, "momentum": 0.7, "nesterov": True, "weight_decay": 0.05},
        {"lr": 0.02, "momentum": 0.7, "weight_decay": 0.05},
        "sgd",
    ),
    (
        "adagrad-wd",
        "adagrad",
        K.Adagrad,
        {
            "learning_rate": 0.1,
            "initial_accumulator_value": 0.5,
            "epsilon": 1e-6,
            "weight_decay": 0.05,
        },
        {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6, "weight_decay": 0.05},
        "adagrad",
    ),
    (
        "adadelta-wd",
        "adadelta",
        K.Adadelta,
        {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6, "weight_decay": 0.05},
        {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.05},
        "adadelta",
    ),
    (
        "rmsprop-centered-momentum-wd",
        "rmsprop",
        K.RMSprop,
        {
            "learning_rate": 0.01,
            "rho": 0.8,
            "momentum": 0.5,
            "epsilon": 1e-6,
            "centered": True,
            "weight_decay": 0.05,
        },
        {
            "lr": 0.01,
            "alpha": 0.8,
            "momentum": 0.5,
            "eps": 1e-6,
            "centered": True,
            "weight_decay": 0.05,
        },
        "rmsprop",
    ),
    (
        "adam-wd",
        "adam",
        K.Adam,
        {
            "learning_rate": 0.01,
            "beta_1": 0.8,
            "beta_2": 0.99,
            "epsilon": 1e-8,
            "weight_decay": 0.05,
        },
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.05},
        "adam",
    ),
    (
        "amsgrad-wd",
        "amsgrad",
        K.Adam,
        {"learning_rate": 0.01, "beta_1": 0.5, "amsgrad": True, "weight_decay": 0.05},
        {"lr": 0.01, "betas": (0.5, 0.999), "weight_decay": 0.05},
        "adam",
    ),
    (
        "adamw-explicit",
        "adamw",
        K.AdamW,
        {"learning_rate": 0.01, "weight_decay": 0.1, "beta_2": 0.9, "epsilon": 1e-6},
        {"lr": 0.01, "weight_decay": 0.1, "betas": (0.9, 0.9), "eps": 1e-6},
        "adam",
    ),
    (
        "nadam-wd",
        "nadam",
        K.Nadam,
        {
            "learning_rate": 0.01,
            "beta_1": 0.8,
            "beta_2": 0.99,
            "epsilon": 1e-6,
            "weight_decay": 0.05,
        },
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05},
        "nadam",
    ),
    (
        "adamax-wd",
        "adamax",
        K.Adamax,
        {
            "learning_rate": 0.01,
            "beta_1": 0.8,
            "beta_2": 0.99,
            "epsilon": 1e-6,
            "weight_decay": 0.05,
        },
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05},
        "adamax",
    ),
]


@pytest.fixture(scope="module", autouse=True)
def keras_float64():
    """Keras's floatx decides the dtype of its learning-rate variable; restore it afterwards."""
    old = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(old)


def _compare(case, scale: float, foreach: bool) -> None:
    if case[-1] == "nadam":
        # NAdam keeps prod mu_i in a scalar tensor of torch.optim's dtype: float32, whose
        # rounding (~6e-8 a step) its step size carries, or float64 under a float64 default
        # dtype (torch's rule), which keeps Keras's float64 product
        with default_dtype(torch.float64):
            _compare_steps(case, scale, foreach)
    else:
        _compare_steps(case, scale, foreach)


def _compare_steps(case, scale: float, foreach: bool) -> None:
    case_id, name, keras_cls, keras_kwargs, our_kwargs, family = case
    params0 = initial_params(dtype=torch.float64, seed=3)
    grad_fn = make_grad_fn(scale, seed=4)
    variables = [keras.Variable(p.numpy().copy(), dtype="float64") for p in params0]
    ref = keras_cls(**keras_kwargs)
    ours = [p.clone().requires_grad_(True) for p in params0]
    opt = optim.create(name, ours, convention="keras", foreach=foreach, **our_kwargs)
    for t in range(STEPS):
        ref_values = [v.value.detach() for v in variables]
        ref.apply_gradients(list(zip(grad_fn(t, ref_values), variables)))
        for p, g in zip(ours, grad_fn(t, ours)):
            p.grad = g
        opt.step()
        for i, (p, v) in enumerate(zip(ours, variables)):
            assert_close_scaled(
                p.detach(), v.value.detach(), RTOL, f"{case_id} step {t + 1} param {i}"
            )
    for i, (p, v) in enumerate(zip(ours, variables)):
        state = opt.state[p]
        index = ref._get_variable_index(v)
        for key, (attr, sign) in SLOTS[family].items():
            slots = getattr(ref, attr, None) or []
            if key not in state:
                assert not slots, f"{case_id}: Keras keeps {attr} but we keep no {key!r}"
                continue
            expected = slots[index].value.detach() * sign
            assert_close_scaled(state[key], expected, RTOL, f"{case_id} state {key!r} of param {i}")
        if family != "sgd":  # torch.optim.SGD keeps no counter
            assert state["step"].item() == int(ref.iterations.value)
        if family == "nadam":
            assert state["mu_product"].item() == pytest.approx(
                ref._u_product.value.item(), rel=RTOL
            )


@pytest.mark.parametrize("scale", [1.0, 1e-9], ids=["g1", "g1e-9"])
@pytest.mark.parametrize("case", DEFAULT_CASES, ids=[c[0] for c in DEFAULT_CASES])
def test_matches_keras_defaults(case, scale):
    _compare(case, scale, foreach=True)


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("case", EXPLICIT_CASES, ids=[c[0] for c in EXPLICIT_CASES])
def test_matches_keras_explicit(case, foreach):
    _compare(case, 1.0, foreach)


@pytest.mark.parametrize(
    "name, keras_cls, renames",
    [
        ("sgd", K.SGD, {}),
        ("adagrad", K.Adagrad, {"initial_accumulator_value": "initial_accumulator_value"}),
        ("adadelta", K.Adadelta, {"rho": "rho"}),
        ("rmsprop", K.RMSprop, {"rho": "alpha", "momentum": "momentum", "centered": "centered"}),
        ("adam", K.Adam, {"beta_1": "betas0", "beta_2": "betas1", "amsgrad": "amsgrad"}),
        (
            "adamw",
            K.AdamW,
            {"beta_1": "betas0", "beta_2": "betas1", "weight_decay": "weight_decay"},
        ),
        ("nadam", K.Nadam, {"beta_1": "betas0", "beta_2": "betas1"}),
        ("adamax", K.Adamax, {"beta_1": "betas0", "beta_2": "betas1"}),
    ],
)
def test_keras_convention_defaults_equal_keras(name, keras_cls, renames):
    """Each default in Keras 3's constructor equals what ``resolve(name, "keras")`` builds."""
    entry = optim.entry(name)
    built = entry.cls([torch.zeros(1, requires_grad=True)], **optim.resolve(name, "keras")).defaults
    sig = inspect.signature(keras_cls.__init__).parameters
    names = {"learning_rate": "lr", "epsilon": "eps", "momentum": "momentum", **renames}
    for keras_name, ours in names.items():
        if keras_name not in sig:
            continue
        expected = sig[keras_name].default
        if ours.startswith("betas"):
            actual = built["betas"][int(ours[-1])]
        else:
            actual = built[ours]
        if keras_name == "weight_decay" and expected is None:
            expected = 0.0
        assert actual == expected, (
            f"keras {keras_cls.__name__}.{keras_name}={expected!r}, ours {actual!r}"
        )
    # Keras applies every weight decay decoupled (theta -= lr*wd*theta before the update)
    assert built["decoupled_weight_decay"] is True
