"""Optimizers from any package: a ``torch.optim.Optimizer`` subclass named ``module:Class``.

A spec phase ``torch.optim:Adam:lr=1e-3`` or ``pytorch_optimizer:Lion:lr=1e-4`` names its class
by reference (:mod:`optimlab.lab.refs`: imported, never evaluated). The class must be a subclass
of ``torch.optim.Optimizer`` (``os:system`` or ``builtins:eval`` are refused before anything is
called) whose ``step()`` works without a closure, since the lab's loop calls ``step()`` once per
batch. Its keyword arguments are the spec's ``key=value`` pairs; they are checked by building the
optimizer once over a dummy tensor, so a bad value fails when the spec is parsed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from .errors import UserError
from .refs import resolve


def optimizer_class(reference: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim.Optimizer`` subclass that ``reference`` (``module:Class``) names.

    Raises:
        UserError: bad reference, unknown module or class, an object that is not an Optimizer
            subclass, or an optimizer whose ``step`` requires a closure.
    """
    obj = resolve(reference, "optimizer")
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        raise UserError(
            f"{reference} is not a torch.optim.Optimizer subclass (got {type(obj).__name__}); "
            "a spec names an optimizer class, e.g. torch.optim:Adam:lr=1e-3"
        )
    if obj is torch.optim.Optimizer:
        raise UserError(f"{reference} is the abstract base class (name a subclass, e.g. torch.optim:Adam)")
    closure = inspect.signature(obj.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise UserError(
            f"{reference}.step() requires a closure (as LBFGS does); the lab calls step() once per "
            "batch without one"
        )
    return obj


def build_external(reference: str, params: Iterable[Any], hyperparameters: Mapping[str, Any]
                   ) -> torch.optim.Optimizer:
    """``Class(params, **hyperparameters)`` for the class that ``reference`` names."""
    return optimizer_class(reference)(params, **hyperparameters)


def external_defaults(reference: str) -> dict[str, Any]:
    """The class's defaults, read from its constructor's signature (nothing is built)."""
    params = inspect.signature(optimizer_class(reference).__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def check_external(reference: str, hyperparameters: Mapping[str, Any]) -> None:
    """Build the optimizer once over a dummy tensor; bad arguments raise :class:`UserError`."""
    cls = optimizer_class(reference)
    try:
        cls([torch.zeros(1, requires_grad=True)], **hyperparameters)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"{reference}: {e}") from None

