"""Conventions: each framework's defaults and equation switches, as data.

A convention is only a table; the update rules never look at its name. ``create()`` layers, from
weakest to strongest: the class defaults (torch.optim's), the registry name's defaults (for example
``momentum`` = 0.9 for ``momentum`` and ``nag``), the convention's entry, then the caller's keywords.

Sources: torch.optim 2.13 (``torch/optim/*.py``), Keras 3 (``keras/src/optimizers/*.py``; Keras
applies ``weight_decay`` decoupled, as ``theta -= lr*wd*theta``, in every optimizer), optax
(``optax/_src/alias.py``; optax has no default learning rate, so optimlab keeps torch's), and the
papers as the seeds write them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

_KERAS_ALL = {"decoupled_weight_decay": True}

_TABLE: dict[str, dict[str, dict[str, Any]]] = {
    # torch.optim's defaults are the classes' own: nothing to override.
    "pytorch": {},
    "keras": {
        "sgd": {"lr": 1e-2, "form": "velocity", **_KERAS_ALL},
        "momentum": {"lr": 1e-2, "form": "velocity", **_KERAS_ALL},
        "nag": {"lr": 1e-2, "form": "velocity", **_KERAS_ALL},
        "adagrad": {
            "lr": 1e-3,
            "initial_accumulator_value": 0.1,
            "eps": 1e-7,
            "eps_inside_sqrt": True,
            **_KERAS_ALL,
        },
        "adadelta": {"lr": 1e-3, "rho": 0.95, "eps": 1e-7, **_KERAS_ALL},
        "rmsprop": {
            "lr": 1e-3,
            "alpha": 0.9,
            "eps": 1e-7,
            "eps_inside_sqrt": True,
            "form": "velocity",
            **_KERAS_ALL,
        },
        "adam": {"lr": 1e-3, "eps": 1e-7, "eps_hat": True, **_KERAS_ALL},
        "amsgrad": {"lr": 1e-3, "eps": 1e-7, "eps_hat": True, **_KERAS_ALL},
        # (AdamW's decay is decoupled by its nature: it takes no switch)
        "adamw": {"lr": 1e-3, "eps": 1e-7, "eps_hat": True, "weight_decay": 0.004},
        "nadam": {"lr": 1e-3, "eps": 1e-7, "momentum_decay": 1.0, **_KERAS_ALL},
        "adamax": {"lr": 1e-3, "eps": 1e-7, "eps_inside_max": False, **_KERAS_ALL},
    },
    "optax": {
        "adagrad": {"initial_accumulator_value": 0.1, "eps": 1e-7, "eps_inside_sqrt": True},
        # optax.rmsprop chains scale_by_rms -> scale_by_learning_rate -> trace: the momentum
        # buffer accumulates lr-scaled steps (velocity form), as Keras's does
        "rmsprop": {"alpha": 0.9, "eps": 1e-8, "eps_inside_sqrt": True, "form": "velocity"},
        "amsgrad": {"amsgrad_max": "corrected"},
        "adamw": {"weight_decay": 1e-4},
        # no lr here: optax.nadam and optax.adamax have no default learning rate either
        "nadam": {"momentum_schedule": "constant"},
    },
    "paper": {
        "sgd": {"lr": 1e-2},
        "momentum": {"lr": 1e-2, "form": "velocity"},
        "nag": {"lr": 1e-2, "form": "velocity"},
        "adagrad": {"eps": 1e-7},
        "adadelta": {"lr": 1.0, "rho": 0.95, "eps": 1e-6},
        "rmsprop": {"lr": 1e-3, "alpha": 0.9, "eps": 1e-6},
        "adamax": {"eps_inside_max": False},
    },
}

#: every convention's table, read-only
CONVENTIONS = MappingProxyType(
    {
        convention: MappingProxyType(
            {name: MappingProxyType(dict(overrides)) for name, overrides in table.items()}
        )
        for convention, table in _TABLE.items()
    }
)


def conventions() -> list[str]:
    """The names ``convention=`` accepts."""
    return list(CONVENTIONS)


def convention_defaults(convention: str, name: str) -> dict[str, Any]:
    """The keywords ``convention`` sets for optimizer ``name`` (empty where it agrees with torch)."""
    if convention not in CONVENTIONS:
        valid = ", ".join(repr(c) for c in CONVENTIONS)
        raise ValueError(f"Invalid convention: {convention!r} (expected one of {valid})")
    return dict(CONVENTIONS[convention].get(name, {}))
