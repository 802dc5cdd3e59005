"""optimlab.optim: every optimizer of the seeds as a drop-in ``torch.optim.Optimizer``.

>>> from optimlab import optim
>>> opt = optim.create("adam", model.parameters(), convention="keras")  # doctest: +SKIP
"""

from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW, NAdam
from .adamax import Adamax
from .conventions import CONVENTIONS, conventions
from .registry import available, create, entry, resolve
from .rmsprop import RMSprop
from .sgd import NAG, SGD, Momentum

__all__ = [
    "CONVENTIONS",
    "NAG",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Momentum",
    "NAdam",
    "RMSprop",
    "available",
    "conventions",
    "create",
    "entry",
    "resolve",
]
