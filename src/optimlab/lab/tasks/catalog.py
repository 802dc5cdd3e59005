"""Every task of the lab. Importing this module registers them, in this order (the order of
``optimlab list tasks``); each module declares its task as data and calls ``register``."""

# ruff: noqa: F401, I001  (imported for their register() side effect, in listing order)
from __future__ import annotations

from . import mnist_mlp
from . import iris_softmax
from . import digits_mlp
from . import fashion_mlp
from . import fashion_cnn
from . import cifar10_cnn
from . import sparse_logreg
