"""How the paths of ``optimlab surface`` get their learning rates (``--lr``).

* ``seed``: each surface's own default specs (their rates drawn from the seeds' pictures, kept in
  the optimizers' registry entries);
* ``equal``: one rate for every optimizer (:func:`equal_lr`), so that no hand-picked rate decides
  what a picture shows;
* ``tuned``: each optimizer's best of a small grid (:func:`.run.tune_learning_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ..errors import UserError
from ..spec import OptimizerSpec

LR_MODES = ("seed", "equal", "tuned")


def equal_lr(specs: Sequence[OptimizerSpec], lr: float) -> list[OptimizerSpec]:
    """``specs`` with every phase's learning rate set to ``lr`` (``--lr equal``).

    Raises:
        UserError: a spec sets its own ``lr`` (it would be silently replaced), or a bad ``lr``.
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr)
                                                                        and lr > 0):
        raise UserError(f"Invalid --lr-value {lr!r} (expected a finite number > 0)")
    for s in specs:
        if any("lr" in p.hyperparameters for p in s.phases):
            raise UserError(f"--lr equal sets every optimizer's learning rate; drop lr= from "
                            f"{s.label()!r} (or use --lr seed)")
    return [OptimizerSpec(tuple(replace(p, hyperparameters={**p.hyperparameters, "lr": float(lr)})
                                for p in s.phases)) for s in specs]


def without_lr(specs: Sequence[OptimizerSpec]) -> list[OptimizerSpec]:
    """``specs`` with their explicit learning rates removed (a surface's defaults, before
    ``--lr equal`` gives them one)."""
    return [OptimizerSpec(tuple(replace(p, hyperparameters={k: v for k, v in
                                                           p.hyperparameters.items() if k != "lr"})
                                for p in s.phases)) for s in specs]
