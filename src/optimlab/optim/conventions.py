"""Conventions: each framework's defaults and equation switches, as data.

A convention is only a table; the update rules never look at its name. ``create()`` layers, from
weakest to strongest: the class defaults (torch.optim's), the registry name's defaults (for example
``momentum`` = 0.9 for ``momentum`` and ``nag``), the convention's entry, then the caller's keywords.

Sources: torch.optim 2.13 (``torch/optim/*.py``), Keras 3 (``keras/src/optimizers/*.py``; Keras
applies ``weight_decay`` decoupled, as ``theta -= lr*wd*theta``, in every optimizer), optax
(``optax/_src/alias.py``; optax has no default learning rate, so optimlab keeps torch's), and the
papers as the seeds write them.

Each optimizer's table lives in its registry entry (``OptimizerEntry.conventions`` in
:mod:`optimlab.optim.registry`), which also builds the read-only ``CONVENTIONS`` view
(convention -> name -> values) and ``convention_defaults(convention, name)``.
"""

from __future__ import annotations

from typing import Any

#: the convention names, ``pytorch`` (torch.optim's defaults, the classes' own) first
NAMES: tuple[str, ...] = ("pytorch", "keras", "optax", "paper")

#: what Keras does for every optimizer: weight decay applied decoupled
KERAS_ALL: dict[str, Any] = {"decoupled_weight_decay": True}


def conventions() -> list[str]:
    """The names ``convention=`` accepts."""
    return list(NAMES)
