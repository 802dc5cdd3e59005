"""The optimizer registry: one entry per name, and ``create(name, params, convention=..., **hps)``.

An entry is everything optimlab knows about an optimizer name, declared once as data:

* ``cls``: the ``torch.optim.Optimizer`` subclass that runs it, and ``defaults``, the name's own
  values over the class's (``momentum`` is :class:`SGD` with ``momentum=0.9``);
* ``conventions``: what each framework's convention changes (``keras``, ``optax``, ``paper``;
  ``pytorch`` is the class's own defaults), see :mod:`optimlab.optim.conventions`;
* ``lr_range`` and ``tuned``: its search space for ``optimlab tune`` (the learning rate on a log
  scale, and the other dimensions that the ``full`` protocol of Choi et al. 2019 tunes);
* ``surfaces``: the learning rate of its path on each 2-D surface of ``optimlab surface``, where
  it is drawn by default.

Adding an optimizer is one :class:`OptimizerEntry` in :data:`_ENTRIES` (and its class exported
from :mod:`optimlab.optim`). The registry answers "what are the defaults" (:func:`defaults`) and
"are these hyperparameters valid" (:func:`check`) without building an optimizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch.optim import Optimizer

from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW, NAdam
from .adamax import Adamax
from .conventions import KERAS_ALL, conventions
from .rmsprop import RMSprop
from .sgd import NAG, SGD, Momentum


@dataclass(frozen=True)
class Dimension:
    """One tuned quantity, sampled uniformly in ``[low, high]`` (in log space when ``log``).

    The sampled value ``x`` sets hyperparameter ``key`` (element ``index`` of a tuple such as
    ``betas``) to ``x``, or to ``1 - x`` when ``complement``: momentum-like coefficients are
    searched as ``1 - beta`` on a log scale, so that 0.9, 0.99 and 0.999 are equally likely.
    """

    name: str
    low: float
    high: float
    key: str
    log: bool = True
    complement: bool = False
    index: int | None = None

    def value(self, x: float) -> float:
        return 1.0 - x if self.complement else x


# The "full" protocol's dimensions, in the parameterisation of Choi et al. 2019 (log scale on
# 1 - beta and on eps); their ranges are per workload, these are chosen for small MLP/softmax
# tasks. Upper ends of 1 - momentum stop at 0.9 so that NAG keeps a nonzero momentum (torch
# requires one with nesterov=True).
ONE_MINUS_MOMENTUM = Dimension("one_minus_momentum", 1e-3, 0.9, "momentum", complement=True)
ONE_MINUS_BETA1 = Dimension("one_minus_beta1", 1e-3, 1.0, "betas", complement=True, index=0)
ONE_MINUS_BETA2 = Dimension("one_minus_beta2", 1e-4, 1e-1, "betas", complement=True, index=1)
EPS = Dimension("eps", 1e-10, 1.0, "eps")
ONE_MINUS_ALPHA = Dimension("one_minus_alpha", 1e-3, 1e-1, "alpha", complement=True)
ONE_MINUS_RHO = Dimension("one_minus_rho", 1e-3, 1e-1, "rho", complement=True)
WEIGHT_DECAY = Dimension("weight_decay", 1e-6, 1e-1, "weight_decay")

#: the adaptive methods' learning-rate range: four decades around their usual default 1e-3
_ADAPTIVE_LR = (1e-5, 1e-1)
_ADAM_FULL = (ONE_MINUS_BETA1, ONE_MINUS_BETA2, EPS)


@dataclass(frozen=True)
class OptimizerEntry:
    """One registered name (see the module docstring for what each field is for).

    Attributes:
        name: the registry name (``create(name, ...)``, the first word of a spec).
        cls: the optimizer class.
        summary: one line for ``optimlab list optimizers``.
        lr_range: the learning-rate range ``optimlab tune`` searches (log scale): four to five
            decades around the usual default (torch.optim / Keras). DeepOBS tunes every
            optimizer on one grid 1e-5..1e2 (``--lr-range 1e-5:1e2``), but with budgets of a few
            trials most of its points diverge or stall, so the ranges are per optimizer.
        tuned: the dimensions besides ``lr`` that the ``full`` search space tunes.
        defaults: the name's own values, over the class's signature defaults.
        conventions: convention -> the values it sets, over ``defaults``.
        surfaces: surface name -> the learning rate of this optimizer's default path there.
    """

    name: str
    cls: type[Optimizer]
    summary: str
    lr_range: tuple[float, float]
    tuned: tuple[Dimension, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    conventions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    surfaces: Mapping[str, float] = field(default_factory=dict)

    def hyperparameters(self) -> list[str]:
        """The keyword names the class accepts (besides ``params``)."""
        return list(_signature_defaults(self.cls))

    def class_defaults(self) -> dict[str, Any]:
        """The class's own default of every hyperparameter, read from its signature."""
        return dict(_signature_defaults(self.cls))


def _signature_defaults(cls: type[Optimizer]) -> dict[str, Any]:
    """Keyword -> default of the class's constructor (see ``RuleOptimizer``)."""
    return cls.hyperparameter_defaults()


_ENTRIES = [
    OptimizerEntry(
        "sgd", SGD, "plain (mini-batch) gradient descent", (1e-3, 3.0),
        conventions={"keras": {"lr": 1e-2, "form": "velocity", **KERAS_ALL}, "paper": {"lr": 1e-2}},
        surfaces={"saddle": 0.02, "valley": 0.18, "rosenbrock": 0.0005, "beale": 0.001,
                  "himmelblau": 0.005, "rastrigin": 0.002, "monkey-saddle": 0.02},
    ),
    OptimizerEntry(
        "momentum", Momentum, "gradient descent with momentum 0.9 (form=heavy_ball|velocity|ema)",
        (1e-4, 1.0), (ONE_MINUS_MOMENTUM,),
        conventions={"keras": {"lr": 1e-2, "form": "velocity", **KERAS_ALL},
                     "paper": {"lr": 1e-2, "form": "velocity"}},
        surfaces={"saddle": 0.005, "valley": 0.018, "rosenbrock": 0.0002, "beale": 0.0005,
                  "himmelblau": 0.001, "rastrigin": 0.01, "monkey-saddle": 0.003},
    ),
    OptimizerEntry(
        "nag", NAG, "Nesterov's accelerated gradient, momentum 0.9", (1e-4, 1.0),
        (ONE_MINUS_MOMENTUM,),
        conventions={"keras": {"lr": 1e-2, "form": "velocity", **KERAS_ALL},
                     "paper": {"lr": 1e-2, "form": "velocity"}},
        surfaces={"saddle": 0.005, "valley": 0.018, "rosenbrock": 0.0002, "beale": 0.0005,
                  "himmelblau": 0.001},
    ),
    OptimizerEntry(
        "adagrad", Adagrad, "AdaGrad: step sizes from the sum of squared gradients", (1e-3, 1.0),
        (EPS,),
        conventions={
            "keras": {"lr": 1e-3, "initial_accumulator_value": 0.1, "eps": 1e-7,
                      "eps_inside_sqrt": True, **KERAS_ALL},
            "optax": {"initial_accumulator_value": 0.1, "eps": 1e-7, "eps_inside_sqrt": True},
            "paper": {"eps": 1e-7},
        },
        surfaces={"saddle": 0.1, "valley": 1.5, "rosenbrock": 0.5, "beale": 0.5,
                  "himmelblau": 0.5, "rastrigin": 0.5, "monkey-saddle": 0.1},
    ),
    OptimizerEntry(
        "adadelta", Adadelta, "AdaDelta: Zeiler's learning-rate-free AdaGrad", (1e-2, 30.0),
        (ONE_MINUS_RHO, EPS),
        conventions={"keras": {"lr": 1e-3, "rho": 0.95, "eps": 1e-7, **KERAS_ALL},
                     "paper": {"lr": 1.0, "rho": 0.95, "eps": 1e-6}},
        surfaces={"saddle": 1, "valley": 20},
    ),
    OptimizerEntry(
        "rmsprop", RMSprop, "RMSProp: EWMA of squared gradients", _ADAPTIVE_LR,
        (ONE_MINUS_ALPHA, EPS),
        conventions={
            "keras": {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7, "eps_inside_sqrt": True,
                      "form": "velocity", **KERAS_ALL},
            # optax.rmsprop chains scale_by_rms -> scale_by_learning_rate -> trace: the momentum
            # buffer accumulates lr-scaled steps (velocity form), as Keras's does
            "optax": {"alpha": 0.9, "eps": 1e-8, "eps_inside_sqrt": True, "form": "velocity"},
            "paper": {"lr": 1e-3, "alpha": 0.9, "eps": 1e-6},
        },
        surfaces={"saddle": 0.01, "valley": 0.1, "rosenbrock": 0.01, "beale": 0.01,
                  "himmelblau": 0.05, "rastrigin": 0.2, "monkey-saddle": 0.01},
    ),
    OptimizerEntry(
        "rmsprop-tf1", RMSprop,
        "TF1 RMSPropOptimizer (seed 000): momentum 0.9, decay 0.9, eps 1e-10 inside, v_0 = 1",
        _ADAPTIVE_LR, (ONE_MINUS_ALPHA, EPS),
        defaults={"lr": 1e-3, "alpha": 0.9, "momentum": 0.9, "eps": 1e-10,
                  "eps_inside_sqrt": True, "initial_accumulator_value": 1.0, "form": "velocity"},
    ),
    OptimizerEntry(
        "adam", Adam, "Adam with bias correction", _ADAPTIVE_LR, _ADAM_FULL,
        conventions={"keras": {"lr": 1e-3, "eps": 1e-7, "eps_hat": True, **KERAS_ALL}},
        surfaces={"saddle": 0.02, "valley": 0.3, "rosenbrock": 0.05, "beale": 0.05,
                  "himmelblau": 0.1, "rastrigin": 0.3, "monkey-saddle": 0.02},
    ),
    OptimizerEntry(
        "amsgrad", Adam, "Adam with AMSGrad's running maximum", _ADAPTIVE_LR, _ADAM_FULL,
        defaults={"amsgrad": True},
        conventions={"keras": {"lr": 1e-3, "eps": 1e-7, "eps_hat": True, **KERAS_ALL},
                     "optax": {"amsgrad_max": "corrected"}},
    ),
    OptimizerEntry(
        "adamw", AdamW, "Adam with decoupled weight decay", _ADAPTIVE_LR,
        (*_ADAM_FULL, WEIGHT_DECAY),
        # (no KERAS_ALL: AdamW's decay is decoupled by its nature, it takes no switch)
        conventions={"keras": {"lr": 1e-3, "eps": 1e-7, "eps_hat": True, "weight_decay": 0.004},
                     "optax": {"weight_decay": 1e-4}},
    ),
    OptimizerEntry(
        "nadam", NAdam, "Adam with Nesterov momentum (Dozat)", _ADAPTIVE_LR, _ADAM_FULL,
        conventions={"keras": {"lr": 1e-3, "eps": 1e-7, "momentum_decay": 1.0, **KERAS_ALL},
                     # no lr here: optax.nadam has no default learning rate either
                     "optax": {"momentum_schedule": "constant"}},
        surfaces={"saddle": 0.02, "valley": 0.3, "rosenbrock": 0.05, "beale": 0.05},
    ),
    OptimizerEntry(
        "adamax", Adamax, "Adam with the infinity norm", _ADAPTIVE_LR, _ADAM_FULL,
        conventions={"keras": {"lr": 1e-3, "eps": 1e-7, "eps_inside_max": False, **KERAS_ALL},
                     "paper": {"eps_inside_max": False}},
        surfaces={"saddle": 0.03, "valley": 0.5},
    ),
]
REGISTRY: dict[str, OptimizerEntry] = {e.name: e for e in _ENTRIES}

#: the nine optimizers the seeds compare (SEEDS.md): the lab's default set
SEED_OPTIMIZERS: tuple[str, ...] = (
    "sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam", "nadam", "adamax",
)

#: every convention's table (convention -> name -> values), read-only; ``pytorch`` is empty:
#: torch.optim's defaults are the classes' own
CONVENTIONS = MappingProxyType(
    {
        convention: MappingProxyType(
            {
                e.name: MappingProxyType(dict(e.conventions[convention]))
                for e in _ENTRIES
                if convention in e.conventions
            }
        )
        for convention in conventions()
    }
)


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


def convention_defaults(convention: str, name: str) -> dict[str, Any]:
    """The keywords ``convention`` sets for optimizer ``name`` (empty where it agrees with torch)."""
    if convention not in CONVENTIONS:
        valid = ", ".join(repr(c) for c in CONVENTIONS)
        raise ValueError(f"Invalid convention: {convention!r} (expected one of {valid})")
    return dict(CONVENTIONS[convention].get(name, {}))


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


def defaults(name: str, convention: str = "pytorch") -> dict[str, Any]:
    """Every hyperparameter of ``name`` under ``convention``: the class's signature defaults,
    then the name's, then the convention's. Builds nothing."""
    return {**entry(name).class_defaults(), **resolve(name, convention)}


class _Checked(Exception):
    """Raised by :class:`_NoParameters` when a constructor has checked its hyperparameters."""


class _NoParameters:
    """Stands in for the parameters while :func:`check` runs a constructor's checks.

    Every optimizer validates its hyperparameters before it reads its parameters (torch's
    ``Optimizer.__init__`` turns them into param groups last); reading this object stops the
    constructor there, so nothing is allocated and no optimizer comes out of it.
    """

    def __iter__(self) -> Any:
        raise _Checked


def check(name: str, convention: str = "pytorch", **hyperparameters: Any) -> dict[str, Any]:
    """Validate ``hyperparameters`` for ``name`` under ``convention`` without building an
    optimizer: the class's own constructor checks run, and stop before any parameter is read.

    Returns:
        The keyword set :func:`create` would pass to the class.

    Raises:
        ValueError, TypeError: exactly what the constructor would raise.
    """
    kwargs = resolve(name, convention, **hyperparameters)
    try:
        entry(name).cls(_NoParameters(), **kwargs)
    except _Checked:
        return kwargs
    raise AssertionError(f"{entry(name).cls.__name__} built itself from no parameters")


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
