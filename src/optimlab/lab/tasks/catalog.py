"""Every task of the lab, in the order of ``optimlab list tasks`` (the default task first). Each
module declares its task as data (``TASK``); :mod:`optimlab.lab.tasks.registry` registers them."""

from __future__ import annotations

from . import (
    cifar10_cnn,
    digits_mlp,
    fashion_cnn,
    fashion_mlp,
    iris_softmax,
    mnist_mlp,
    sparse_logreg,
)
from .base import Task

#: the built-in tasks in listing order
TASKS: tuple[Task, ...] = (
    mnist_mlp.TASK,
    iris_softmax.TASK,
    digits_mlp.TASK,
    fashion_mlp.TASK,
    fashion_cnn.TASK,
    cifar10_cnn.TASK,
    sparse_logreg.TASK,
)

#: task names in listing order
ORDER: tuple[str, ...] = tuple(t.name for t in TASKS)

#: the task every command runs when given none: seed 003's MNIST MLP
DEFAULT_TASK: str = mnist_mlp.NAME
