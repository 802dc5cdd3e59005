"""The optimizer registry: ``create(name, params, convention=..., **hyperparameters)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.optim import Optimizer

from ._base import RuleOptimizer
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW, NAdam
from .adamax import Adamax
from .conventions import convention_defaults
from .rmsprop import RMSprop
from .sgd import NAG, SGD, Momentum


@dataclass(frozen=True)
class OptimizerEntry:
    """One registered name: its class, its own defaults and a one-line description."""

    name: str
    cls: type[RuleOptimizer]
    summary: str
    defaults: dict[str, Any] = field(default_factory=dict)

    def hyperparameters(self) -> list[str]:
        """The keyword names the class accepts (besides ``params``), in signature order."""
        return self.cls.hyperparameter_names()


_ENTRIES = [
    OptimizerEntry("sgd", SGD, "plain (mini-batch) gradient descent"),
    OptimizerEntry(
        "momentum", Momentum, "gradient descent with momentum 0.9 (form=heavy_ball|velocity|ema)"
    ),
    OptimizerEntry("nag", NAG, "Nesterov's accelerated gradient, momentum 0.9"),
    OptimizerEntry("adagrad", Adagrad, "AdaGrad: step sizes from the sum of squared gradients"),
    OptimizerEntry("adadelta", Adadelta, "AdaDelta: Zeiler's learning-rate-free AdaGrad"),
    OptimizerEntry("rmsprop", RMSprop, "RMSProp: EWMA of squared gradients"),
    OptimizerEntry(
        "rmsprop-tf1",
        RMSprop,
        "TF1 RMSPropOptimizer (seed 000): momentum 0.9, decay 0.9, eps 1e-10 inside, v_0 = 1",
        {
            "lr": 1e-3,
            "alpha": 0.9,
            "momentum": 0.9,
            "eps": 1e-10,
            "eps_inside_sqrt": True,
            "initial_accumulator_value": 1.0,
            "form": "velocity",
        },
    ),
    OptimizerEntry("adam", Adam, "Adam with bias correction"),
    OptimizerEntry("amsgrad", Adam, "Adam with AMSGrad's running maximum", {"amsgrad": True}),
    OptimizerEntry("adamw", AdamW, "Adam with decoupled weight decay"),
    OptimizerEntry("nadam", NAdam, "Adam with Nesterov momentum (Dozat)"),
    OptimizerEntry("adamax", Adamax, "Adam with the infinity norm"),
]
REGISTRY: dict[str, OptimizerEntry] = {e.name: e for e in _ENTRIES}


def available() -> list[str]:
    """The optimizer names ``create()`` accepts."""
    return list(REGISTRY)


def entry(name: str) -> OptimizerEntry:
    """The registry entry of ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown optimizer: {name!r} (expected one of {', '.join(REGISTRY)})"
        ) from None


def resolve(name: str, convention: str = "pytorch", **hyperparameters: Any) -> dict[str, Any]:
    """The full keyword set ``create()`` passes to the class (registry < convention < caller)."""
    e = entry(name)
    valid = e.hyperparameters()
    unknown = [k for k in hyperparameters if k not in valid]
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter for {name}: {unknown[0]!r} (expected one of {', '.join(valid)})"
        )
    kwargs = {**e.defaults, **convention_defaults(convention, name), **hyperparameters}
    return kwargs


def create(
    name: str, params: Any, *, convention: str = "pytorch", **hyperparameters: Any
) -> Optimizer:
    """Build optimizer ``name`` over ``params`` under ``convention``.

    Args:
        name: one of :func:`available`.
        params: an iterable of tensors or of param-group dicts, as for any torch optimizer.
        convention: ``"pytorch"`` (default), ``"keras"``, ``"optax"`` or ``"paper"``.
        **hyperparameters: torch.optim's names (``lr``, ``betas``, ``eps``...); they override
            the convention's values.

    Raises:
        ValueError: unknown name, convention or hyperparameter, or an invalid value.
    """
    e = entry(name)
    return e.cls(params, **resolve(name, convention, **hyperparameters))
