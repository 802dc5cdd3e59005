"""``digits-mlp``: a small MLP on scikit-learn's 8x8 handwritten digits (no seed; a fast check).

1,797 images of 64 pixels in 0..16, split 80/20 per class with a fixed seed, standardized with
the training part's per-pixel mean and standard deviation (pixels that never vary are left
centred, not divided by zero).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from .. import data
from ._common import as_float, as_labels, cross_entropy, stratified_split
from .base import DataOptions, Dataset, Task

NAME = "digits-mlp"
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def load(options: DataOptions) -> Dataset:
    """scikit-learn's digits; it ships with scikit-learn, so the data options are not used."""
    return data.cached((NAME,), _build)


def _build() -> Dataset:
    from sklearn.datasets import load_digits  # lazy: scikit-learn takes ~0.5 s to import

    digits = load_digits()
    x, y = digits.data.astype(np.float64), digits.target
    train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0
    x = (x - mean) / std
    return Dataset(
        as_float(x[train]),
        as_labels(y[train]),
        as_float(x[test]),
        as_labels(y[test]),
        source=(
            f"scikit-learn digits, {len(train)} train / {len(test)} test "
            f"(stratified, seed {SPLIT_SEED}), standardized"
        ),
    )


def model(seed: int) -> nn.Module:
    """``64 -> 64 -> 10`` with ReLU; PyTorch's default initialisation."""
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


TASK = Task(
    name=NAME,
    description="8x8 digits, MLP 64-64-10 ReLU, cross-entropy (fast sanity check)",
    load=load,
    model=model,
    loss=cross_entropy,
    batch_size=32,
    epochs=20,
    optimizers=(
        # the seeds' MNIST choices (seed 003) carried over to the smaller digits problem
        "sgd:lr=0.01",
        "momentum:lr=0.01,momentum=0.9",
        "adagrad:lr=0.01",
        "rmsprop:lr=0.001,alpha=0.9",
        "adam:lr=0.001",
    ),
    seed_file="",
    extra={"split": "80/20 stratified, seed 0", "classes": 10},
)
