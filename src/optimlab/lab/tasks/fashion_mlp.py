"""``fashion-mlp``: seed 004's optimizer comparison on Fashion-MNIST, with an MLP.

Seed 004 (a review of Keras optimizers) compares momentum (lr 0.001, 0.99), NAG (0.9), AdaGrad,
RMSProp (rho 0.9), Adam and Nadam on Fashion-MNIST and plots accuracy per epoch. It does not
print its network; this task uses the classic Keras Fashion-MNIST MLP ``Flatten -> Dense(300,
relu) -> Dense(100, relu) -> Dense(10)`` on pixels scaled to [0, 1], batches of 32 (Keras'
``fit`` default), with the optimizers in the Keras convention the seed writes them in.
"""

from __future__ import annotations

from torch import nn

from .. import data
from ._common import as_float, as_labels, check_nonempty, cross_entropy
from .base import DataOptions, Dataset, Task

NAME = "fashion-mlp"

#: seed 004's optimizers, as its keras.optimizers calls (the Keras convention)
SEED_004_OPTIMIZERS = (
    # plain gradient descent, keras.optimizers.SGD's default lr 0.01 (the seed shows no call)
    "sgd:lr=0.01@keras",
    # keras.optimizers.SGD(lr=0.001, momentum=0.99)
    "momentum:lr=0.001,momentum=0.99@keras",
    # keras.optimizers.SGD(lr=0.001, momentum=0.9, nesterov=True)
    "nag:lr=0.001,momentum=0.9@keras",
    # keras.optimizers.Adagrad defaults (lr 0.001, initial accumulator 0.1); no call shown
    "adagrad:lr=0.001@keras",
    # keras.optimizers.RMSprop(lr=0.001, rho=0.9)
    "rmsprop:lr=0.001,alpha=0.9@keras",
    # keras.optimizers.Adam(lr=0.001, beta_1=0.9, beta_2=0.999)
    "adam:lr=0.001,betas=0.9/0.999@keras",
    # keras.optimizers.Nadam(lr=0.001, beta_1=0.9, beta_2=0.999)
    "nadam:lr=0.001,betas=0.9/0.999@keras",
)


def fashion_pixels(options: DataOptions) -> Dataset:
    """Fashion-MNIST as ``(n, 784)`` float32 pixels in [0, 1]; read once per process and
    shared by ``fashion-mlp`` and ``fashion-cnn``."""
    key = data.cache_key("fashion-mnist", options.data_dir, options.download)
    return data.cached(key, lambda: _build(options))


def _build(options: DataOptions) -> Dataset:
    split = data.load_idx_dataset("fashion-mnist", options.data_dir, options.download)
    scale = 1.0 / 255.0
    dataset = Dataset(
        as_float(split.x_train.reshape(len(split.x_train), -1), scale=scale),
        as_labels(split.y_train),
        as_float(split.x_test.reshape(len(split.x_test), -1), scale=scale),
        as_labels(split.y_test),
        source=split.source,
    )
    check_nonempty(NAME, dataset.x_train, dataset.x_test)
    return dataset


def load(options: DataOptions) -> Dataset:
    """Fashion-MNIST IDX files from the data folder (``--download`` fetches them)."""
    return fashion_pixels(options)


def model(seed: int) -> nn.Module:
    """``784 -> 300 -> 100 -> 10`` with ReLU; PyTorch's default initialisation."""
    return nn.Sequential(
        nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


TASK = Task(
    name=NAME,
    description="Fashion-MNIST, MLP 784-300-100-10 ReLU, Keras optimizers (seed 004)",
    load=load,
    model=model,
    loss=cross_entropy,
    batch_size=32,
    epochs=10,
    optimizers=SEED_004_OPTIMIZERS,
    seed_file="004",
    extra={"classes": 10, "input": "x/255, 784 columns"},
)
