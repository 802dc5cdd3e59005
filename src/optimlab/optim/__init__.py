"""optimlab.optim: every optimizer of the seeds as a drop-in ``torch.optim.Optimizer``.

>>> from optimlab import optim
>>> opt = optim.create("adam", model.parameters(), convention="keras")  # doctest: +SKIP
"""

from ._base import scalar
from ._rules import bias_correction, ema_, ema_scalar
from ._validate import check_unit_interval
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW, NAdam
from .adamax import Adamax
from .conventions import conventions
from .registry import (
    CONVENTIONS,
    SEED_OPTIMIZERS,
    Dimension,
    OptimizerEntry,
    available,
    check,
    convention_defaults,
    create,
    defaults,
    entry,
    resolve,
)
from .rmsprop import RMSprop
from .sgd import NAG, SGD, Momentum

__all__ = [
    "CONVENTIONS",
    "NAG",
    "SEED_OPTIMIZERS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Dimension",
    "Momentum",
    "NAdam",
    "OptimizerEntry",
    "RMSprop",
    "available",
    "bias_correction",
    "check",
    "check_unit_interval",
    "convention_defaults",
    "conventions",
    "create",
    "defaults",
    "ema_",
    "ema_scalar",
    "entry",
    "resolve",
    "scalar",
]
