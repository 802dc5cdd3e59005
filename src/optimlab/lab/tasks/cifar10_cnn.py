"""``cifar10-cnn``: seed 000's CIFAR-10 comparison (after Wilson et al., 2017), with a small CNN.

Seed 000 reports that adaptive methods lower the training loss faster on CIFAR-10 but that tuned
SGD and momentum reach a lower test error. This task lets that be checked on a small CNN: two
``conv3x3 + ReLU + max-pool`` blocks then one linear layer, on the official python batches
(50,000 training, 10,000 test images), each colour channel standardized with the training
set's mean and standard deviation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import data
from ._common import as_float, as_labels, channel_stats, check_nonempty, cross_entropy
from .base import DataOptions, Dataset, Task

NAME = "cifar10-cnn"


def load(options: DataOptions) -> Dataset:
    """CIFAR-10 python batches from the data folder (``--download`` fetches the tarball)."""
    key = data.cache_key(NAME, options.data_dir, options.download)
    return data.cached(key, lambda: _build(options))


def _build(options: DataOptions) -> Dataset:
    split = data.load_cifar10(options.data_dir, options.download)
    check_nonempty(NAME, split.x_train, split.x_test)
    # per-channel statistics of the training images only, exact from their histograms
    mean, std = channel_stats(split.x_train)
    std = np.where(std > 0, std, 1.0)
    inputs = []
    for x in (split.x_train, split.x_test):
        t = as_float(x)
        t.sub_(torch.from_numpy(mean).float().view(1, 3, 1, 1))
        t.div_(torch.from_numpy(std).float().view(1, 3, 1, 1))
        inputs.append(t)
    return Dataset(
        inputs[0], as_labels(split.y_train), inputs[1], as_labels(split.y_test), source=split.source
    )


def model(seed: int) -> nn.Module:
    """``conv3x3(3->32) relu pool2 -> conv3x3(32->64) relu pool2 -> linear(64*8*8 -> 10)``."""
    return nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10),
    )


TASK = Task(
    name=NAME,
    description="CIFAR-10, CNN 2x(conv3x3+pool)+linear: SGD/momentum vs adaptive (seed 000)",
    load=load,
    model=model,
    loss=cross_entropy,
    batch_size=128,
    epochs=10,
    optimizers=(
        # seed 000 shows GradientDescentOptimizer with a placeholder lr; 0.01 as for momentum
        "sgd:lr=0.01",
        # seed 000: tf.train.MomentumOptimizer(momentum=0.9), the velocity form
        "momentum:lr=0.01,momentum=0.9,form=velocity",
        # seed 000: MomentumOptimizer(momentum=0.9, use_nesterov=True)
        "nag:lr=0.01,momentum=0.9,form=velocity",
        # seed 000: AdagradOptimizer; torch.optim.Adagrad's lr 1e-2
        "adagrad:lr=0.01",
        # seed 000: RMSPropOptimizer(learning_rate=0.001, momentum=0.9, decay=0.9,
        # epsilon=1e-10), registered as rmsprop-tf1
        "rmsprop-tf1",
        # seed 000: AdamOptimizer(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8)
        "adam:lr=0.001",
    ),
    seed_file="000",
    extra={"classes": 10, "input": "standardized per channel (training mean/std), 3 x 32 x 32"},
)
