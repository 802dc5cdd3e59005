"""Constructor checks shared by every optimizer; each message names the argument and its value.

Every hyperparameter is declared once, in its class's constructor signature. Its check is found
by name: :data:`CHECKS` holds the checks of the names several optimizers share (with torch.optim's
wording, so that a message reads as torch's does), and a class adds its own in
``RuleOptimizer.checks`` (a choice among forms, for example). :func:`check_hyperparameters` runs
them; a name with no check anywhere is a defect of the class, reported when it is defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

#: a check: called with the hyperparameter's value, raises if it is invalid
Check = Callable[[Any], None]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a real number or 0-d tensor, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element")
        if value.is_complex() or not value.is_floating_point():
            raise TypeError(f"{name} must be a real number or 0-d tensor, got {value.dtype}")
        return float(value.detach())
    return float(value)


def check_lr(value: Any) -> None:
    v = _number("lr", value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"Invalid learning rate: {v!r} (expected a finite number >= 0)")


def check_non_negative(name: str, value: Any, label: str | None = None) -> None:
    """``label`` is the wording torch.optim uses (``epsilon`` for ``eps``)."""
    v = _number(name, value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(
            f"Invalid {label or name} value: {value!r} (expected a finite number >= 0)"
        )


def check_unit_interval(name: str, value: Any) -> None:
    v = _number(name, value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"Invalid {name} value: {value!r} (expected 0 <= {name} < 1)")


def check_betas(value: Any) -> None:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"betas must be a pair of numbers, got {type(value).__name__}")
    if len(value) != 2:
        raise ValueError(f"betas must have length 2, got {len(value)}")
    for i, b in enumerate(value):
        v = _number(f"betas[{i}]", b)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b!r} (expected 0 <= beta < 1)")
    if isinstance(value[0], torch.Tensor) != isinstance(value[1], torch.Tensor):
        raise ValueError("betas must be either both floats or both Tensors")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Invalid {name}: {value!r} (expected one of {valid})")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def check_optional_bool(name: str, value: Any) -> None:
    if value is not None:
        check_bool(name, value)


def non_negative(name: str, label: str | None = None) -> Check:
    return lambda value: check_non_negative(name, value, label)


def unit_interval(name: str) -> Check:
    return lambda value: check_unit_interval(name, value)


def choice(name: str, choices: Iterable[str]) -> Check:
    choices = tuple(choices)
    return lambda value: check_choice(name, value, choices)


def flag(name: str) -> Check:
    return lambda value: check_bool(name, value)


def optional_flag(name: str) -> Check:
    return lambda value: check_optional_bool(name, value)


_FLAGS = (
    "amsgrad",
    "nesterov",
    "centered",
    "maximize",
    "capturable",
    "differentiable",
    "decoupled_weight_decay",
    "eps_inside_sqrt",
    "eps_hat",
    "eps_inside_max",
    "bias_correction",
    "skip_nonfinite",
)

#: the checks of hyperparameter names shared across optimizers, by name
CHECKS: Mapping[str, Check] = {
    "lr": check_lr,
    "betas": check_betas,
    "eps": non_negative("eps", "epsilon"),
    "weight_decay": non_negative("weight_decay"),
    "momentum": non_negative("momentum"),
    "dampening": non_negative("dampening"),
    "lr_decay": non_negative("lr_decay"),
    "initial_accumulator_value": non_negative("initial_accumulator_value"),
    "momentum_decay": non_negative("momentum_decay"),
    "rho": unit_interval("rho"),
    "alpha": unit_interval("alpha"),
    **{name: flag(name) for name in _FLAGS},
    "foreach": optional_flag("foreach"),
    "fused": optional_flag("fused"),
}


def check_paths(hyperparameters: Mapping[str, Any]) -> None:
    """The combinations of ``foreach``, ``fused`` and ``differentiable`` that cannot run."""
    foreach, fused = hyperparameters.get("foreach"), hyperparameters.get("fused")
    differentiable = hyperparameters.get("differentiable")
    if fused and differentiable:
        raise RuntimeError("`fused` does not support `differentiable`")
    if foreach and fused:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if foreach and differentiable:
        # torch.optim fails at the first step instead ("_foreach ops don't support autograd")
        raise RuntimeError("`foreach` does not support `differentiable`")


def check_hyperparameters(values: Mapping[str, Any], own: Mapping[str, Check] = {}) -> None:
    """Run each value's check: the class's own (``own``) first, else the shared one."""
    for name, value in values.items():
        (own.get(name) or CHECKS[name])(value)


def missing_checks(names: Iterable[str], own: Mapping[str, Check] = {}) -> list[str]:
    """The names that have no check, neither the class's own nor a shared one."""
    return [n for n in names if n not in own and n not in CHECKS]
