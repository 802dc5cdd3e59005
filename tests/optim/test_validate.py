"""Bad input: every invalid value fails when the optimizer is built, naming the parameter.

A table in the style of torch's ``ErrorOptimizerInput``: (registry name, keywords, exception
type, the pinned message). Messages follow torch.optim's wording where torch has one (so that
users see the same text), stricter where RELIABILITY.md (b) marks a stricter rule (non-finite
values, bools and strings for numbers, a wrong ``betas`` length).
"""

from __future__ import annotations

import re

import pytest
import torch

from optimlab import optim

ALL = optim.available()
ADAM_FAMILY = ["adam", "amsgrad", "adamw", "nadam", "adamax"]


def _params():
    return [torch.zeros(3, requires_grad=True)]


# (names, keywords, exception, message regex, description)
ERRORS = [
    (ALL, {"lr": -0.01}, ValueError, r"Invalid learning rate: -0\.01 ", "negative lr"),
    (ALL, {"lr": float("nan")}, ValueError, r"Invalid learning rate: nan ", "nan lr"),
    (ALL, {"lr": float("inf")}, ValueError, r"Invalid learning rate: inf ", "infinite lr"),
    (ALL, {"lr": True}, TypeError, r"lr must be a real number or 0-d tensor, got bool", "bool lr"),
    (ALL, {"lr": "1e-3"}, TypeError, r"lr must be a real number or 0-d tensor, got str", "str lr"),
    (ALL, {"lr": None}, TypeError, r"lr must be a real number .*got NoneType", "None lr"),
    (
        ALL,
        {"lr": torch.tensor([1e-3, 1e-3])},
        ValueError,
        r"Tensor lr must be 1-element",
        "2-element tensor lr",
    ),
    (
        ["sgd", "momentum", "adam", "rmsprop"],
        {"lr": torch.tensor(1, dtype=torch.int64)},
        TypeError,
        r"lr must be a real number or 0-d tensor, got torch\.int64",
        "integer tensor lr",
    ),
    (
        ["adagrad", "adadelta", "rmsprop", *ADAM_FAMILY],
        {"eps": -1e-8},
        ValueError,
        r"Invalid epsilon value: -1e-08 ",
        "negative eps",
    ),
    (
        ["adagrad", "adadelta", "rmsprop", *ADAM_FAMILY],
        {"eps": float("nan")},
        ValueError,
        r"Invalid epsilon value: nan ",
        "nan eps",
    ),
    (
        ADAM_FAMILY,
        {"betas": (1.0, 0.999)},
        ValueError,
        r"Invalid beta parameter at index 0: 1\.0 ",
        "beta1=1",
    ),
    (
        ADAM_FAMILY,
        {"betas": (0.9, 1.0)},
        ValueError,
        r"Invalid beta parameter at index 1: 1\.0 ",
        "beta2=1",
    ),
    (
        ADAM_FAMILY,
        {"betas": (-0.1, 0.9)},
        ValueError,
        r"Invalid beta parameter at index 0: -0\.1 ",
        "beta1<0",
    ),
    (
        ADAM_FAMILY,
        {"betas": (0.9, -0.1)},
        ValueError,
        r"Invalid beta parameter at index 1: -0\.1 ",
        "beta2<0",
    ),
    (ADAM_FAMILY, {"betas": (0.9,)}, ValueError, r"betas must have length 2, got 1", "one beta"),
    (
        ADAM_FAMILY,
        {"betas": (0.9, 0.99, 0.999)},
        ValueError,
        r"betas must have length 2, got 3",
        "three",
    ),
    (
        ADAM_FAMILY,
        {"betas": 0.9},
        TypeError,
        r"betas must be a pair of numbers, got float",
        "scalar",
    ),
    (
        ADAM_FAMILY,
        {"betas": (0.9, torch.tensor(0.99))},
        ValueError,
        r"betas must be either both floats or both Tensors",
        "mixed betas",
    ),
    (
        ["adadelta"],
        {"rho": 1.0},
        ValueError,
        r"Invalid rho value: 1\.0 \(expected 0 <= rho < 1\)",
        "rho=1",
    ),
    (["adadelta"], {"rho": 1.1}, ValueError, r"Invalid rho value: 1\.1 ", "rho>1"),
    (["adadelta"], {"rho": -0.1}, ValueError, r"Invalid rho value: -0\.1 ", "rho<0"),
    (
        ["rmsprop", "rmsprop-tf1"],
        {"alpha": 1.0},
        ValueError,
        r"Invalid alpha value: 1\.0 ",
        "alpha=1",
    ),
    (
        ["sgd", "momentum", "nag", "rmsprop", "rmsprop-tf1"],
        {"momentum": -0.5},
        ValueError,
        r"Invalid momentum value: -0\.5 ",
        "negative momentum",
    ),
    (
        ["momentum"],
        {"momentum": 1.0, "form": "ema"},
        ValueError,
        r"Invalid momentum value: 1\.0 \(expected 0 <= momentum < 1\)",
        "ema momentum=1",
    ),
    (
        ALL,
        {"weight_decay": -1},
        ValueError,
        r"Invalid weight_decay value: -1 ",
        "negative weight_decay",
    ),
    (["adagrad"], {"lr_decay": -0.5}, ValueError, r"Invalid lr_decay value: -0\.5 ", "lr_decay<0"),
    (
        ["nadam"],
        {"momentum_decay": -0.2},
        ValueError,
        r"Invalid momentum_decay value: -0\.2 ",
        "momentum_decay<0",
    ),
    (
        ["adagrad", "rmsprop"],
        {"initial_accumulator_value": -0.1},
        ValueError,
        r"Invalid initial_accumulator_value value: -0\.1 ",
        "negative accumulator start",
    ),
    (
        ["sgd"],
        {"nesterov": True},
        ValueError,
        r"Nesterov momentum requires a momentum and zero dampening",
        "nesterov without momentum",
    ),
    (
        ["nag"],
        {"momentum": 0.0},
        ValueError,
        r"Nesterov momentum requires a momentum and zero dampening",
        "nag with momentum 0",
    ),
    (
        ["nag"],
        {"dampening": 0.1},
        ValueError,
        r"Nesterov momentum requires a momentum and zero dampening",
        "nesterov with dampening",
    ),
    (
        ["sgd", "momentum", "nag"],
        {"form": "polyak"},
        ValueError,
        r"Invalid form: 'polyak' \(expected one of 'heavy_ball', 'velocity', 'ema'\)",
        "unknown momentum form",
    ),
    (
        ["rmsprop"],
        {"form": "ema"},
        ValueError,
        r"Invalid form: 'ema' \(expected one of 'heavy_ball', 'velocity'\)",
        "unknown rmsprop form",
    ),
    (
        ["adam", "amsgrad", "adamw"],
        {"amsgrad_max": "bias"},
        ValueError,
        r"Invalid amsgrad_max: 'bias' \(expected one of 'raw', 'corrected'\)",
        "unknown amsgrad_max",
    ),
    (
        ["nadam"],
        {"momentum_schedule": "linear"},
        ValueError,
        r"Invalid momentum_schedule: 'linear' \(expected one of 'dozat', 'constant'\)",
        "unknown NAdam schedule",
    ),
    (
        ["sgd", "momentum"],
        {"nesterov": "yes"},
        TypeError,
        r"nesterov must be a bool, got str",
        "flag",
    ),
    (ALL, {"maximize": 1}, TypeError, r"maximize must be a bool, got int", "int maximize"),
    (ALL, {"foreach": "no"}, TypeError, r"foreach must be a bool, got str", "str foreach"),
    (
        ALL,
        {"foreach": True, "fused": True},
        RuntimeError,
        r"`fused` and `foreach` cannot be `True` together",
        "foreach and fused",
    ),
]

CASES = [
    pytest.param(name, kwargs, exc, msg, id=f"{desc}-{name}")
    for names, kwargs, exc, msg, desc in ERRORS
    for name in names
]


@pytest.mark.parametrize("name, kwargs, exc, message", CASES)
def test_invalid_hyperparameter_raises(name, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        optim.create(name, _params(), **kwargs)


@pytest.mark.parametrize("convention", ["keras", "optax", "paper"])
def test_invalid_value_raises_under_every_convention(convention):
    """A convention's defaults never hide the caller's bad value."""
    with pytest.raises(ValueError, match=r"Invalid learning rate: -1\.0 "):
        optim.create("adam", _params(), convention=convention, lr=-1.0)


def test_unknown_optimizer_lists_the_valid_names():
    with pytest.raises(ValueError) as info:
        optim.create("adamm", _params())
    msg = str(info.value)
    assert msg.startswith("Unknown optimizer: 'adamm' (expected one of ")
    for name in optim.available():
        assert name in msg


def test_unknown_convention_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid convention: 'jax' (expected one of 'pytorch', 'keras', 'optax', 'paper')"
        ),
    ):
        optim.create("adam", _params(), convention="jax")


def test_unknown_hyperparameter_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        optim.create("adam", _params(), betas1=0.9)
    msg = str(info.value)
    assert msg.startswith("Unknown hyperparameter for adam: 'betas1' (expected one of lr, betas, ")
    for name in ("eps", "weight_decay", "amsgrad", "eps_hat", "maximize", "foreach"):
        assert name in msg
    with pytest.raises(ValueError, match=r"Unknown hyperparameter for sgd: 'rho'"):
        optim.resolve("sgd", rho=0.9)


# torch.optim's wording; SGD and Adagrad take sparse gradients (test_torch_contract.py)
SPARSE_ERRORS = {
    "adadelta": "Adadelta does not support sparse gradients",
    "rmsprop": "RMSprop does not support sparse gradients",
    "rmsprop-tf1": "RMSprop does not support sparse gradients",
    "adam": "Adam does not support sparse gradients, please consider SparseAdam instead",
    "amsgrad": "Adam does not support sparse gradients, please consider SparseAdam instead",
    "adamw": "Adam does not support sparse gradients, please consider SparseAdam instead",
    "nadam": "NAdam does not support sparse gradients",
    "adamax": "Adamax does not support sparse gradients",
}


def test_sparse_errors_cover_every_dense_only_optimizer():
    dense_only = {n for n in ALL if optim.entry(n).cls.sparse_grads is None}
    assert dense_only == set(SPARSE_ERRORS)


@pytest.mark.parametrize("name", sorted(SPARSE_ERRORS))
def test_sparse_gradient_raises_at_step(name):
    p = torch.zeros(4, requires_grad=True)
    opt = optim.create(name, [p])
    p.grad = torch.sparse_coo_tensor([[0, 2]], [1.0, 2.0], (4,), check_invariants=True)
    with pytest.raises(RuntimeError, match=re.escape(SPARSE_ERRORS[name])):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(4)), "a failed step changed the parameters"


@pytest.mark.parametrize("name", ALL)
def test_empty_parameter_list_raises(name):
    with pytest.raises(ValueError, match=r"optimizer got an empty parameter list"):
        optim.create(name, [])


@pytest.mark.parametrize("name", ALL)
def test_duplicate_parameters_warn_as_torch(name):
    """A parameter twice in one group warns (torch.optim's UserWarning); in two groups raises."""
    p = torch.zeros(2, requires_grad=True)
    with pytest.warns(UserWarning, match=r"a parameter group with duplicate parameters"):
        optim.create(name, [p, p])
    opt = optim.create(name, [p])
    with pytest.raises(
        ValueError, match=r"some parameters appear in more than one parameter group"
    ):
        opt.add_param_group({"params": [p]})
    q = torch.zeros(2, requires_grad=True)
    with pytest.warns(UserWarning, match=r"a parameter group with duplicate parameters"):
        opt.add_param_group({"params": [q, q]})


def test_non_tensor_params_raise():
    with pytest.raises(
        TypeError, match=r"params argument given to the optimizer should be an iterable"
    ):
        optim.create("adam", torch.zeros(2, requires_grad=True))
    with pytest.raises(TypeError, match=r"optimizer can only optimize Tensors"):
        optim.create("adam", [1.0])
