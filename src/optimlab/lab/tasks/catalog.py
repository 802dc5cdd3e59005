"""Every task of the lab. Importing this module registers them; :data:`ORDER` is the order of
``optimlab list tasks`` (the default task first). Each module declares its task as data."""

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

#: task names in listing order, whatever order the modules happened to be imported in
ORDER: tuple[str, ...] = tuple(
    m.NAME
    for m in (
        mnist_mlp,
        iris_softmax,
        digits_mlp,
        fashion_mlp,
        fashion_cnn,
        cifar10_cnn,
        sparse_logreg,
    )
)
