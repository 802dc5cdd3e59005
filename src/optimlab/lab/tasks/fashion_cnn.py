"""``fashion-cnn``: seed 004's optimizer comparison on Fashion-MNIST, with a small CNN.

The same data, batches, epochs and Keras-convention optimizers as ``fashion-mlp``; the images
keep their 1 x 28 x 28 shape for two convolution blocks.
"""

from __future__ import annotations

from torch import nn

from ._common import cross_entropy
from .base import DataOptions, Dataset, Task
from .fashion_mlp import SEED_004_OPTIMIZERS, fashion_pixels

NAME = "fashion-cnn"


def load(options: DataOptions) -> Dataset:
    """Fashion-MNIST as ``(n, 1, 28, 28)`` float32 in [0, 1] (views of ``fashion-mlp``'s data)."""
    flat = fashion_pixels(options)
    return Dataset(
        flat.x_train.view(-1, 1, 28, 28),
        flat.y_train,
        flat.x_test.view(-1, 1, 28, 28),
        flat.y_test,
        source=flat.source,
    )


def model(seed: int) -> nn.Module:
    """``conv3x3(1->16) relu pool2 -> conv3x3(16->32) relu pool2 -> linear(32*7*7 -> 10)``."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


TASK = Task(
    name=NAME,
    description="Fashion-MNIST, CNN 2x(conv3x3+pool)+linear, Keras optimizers (seed 004)",
    load=load,
    model=model,
    loss=cross_entropy,
    batch_size=32,
    epochs=10,
    optimizers=SEED_004_OPTIMIZERS,
    seed_file="004",
    extra={"classes": 10, "input": "x/255, 1 x 28 x 28"},
)
