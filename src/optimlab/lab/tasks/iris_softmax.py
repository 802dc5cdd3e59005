"""``iris-softmax``: seed 001's softmax regression on Iris, trained with MSE against one-hot labels.

Seed 001 (after Peking University's TensorFlow course) trains ``y = softmax(x @ w1 + b1)`` on
scikit-learn's Iris with ``loss = mean((y - onehot)^2)``, batches of 32 (4 steps an epoch on 120
training samples), lr 0.1 and 500 epochs, and compares SGD, SGDM, AdaGrad, RMSProp and Adam
written by hand. This task keeps its data split, architecture, loss, initialisation law and
hyperparameters; the initial weights are drawn under the run's seed instead of TF's ``seed=1``.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from .. import data
from ._common import as_float, as_labels, softmax_mse
from .base import DataOptions, Dataset, Task

NAME = "iris-softmax"
#: the course's code shuffles features and labels with ``np.random.seed(116)`` each
SHUFFLE_SEED = 116
N_TEST = 30


def load(options: DataOptions) -> Dataset:
    """scikit-learn's Iris (150 x 4 float32), shuffled as seed 001's course does, last 30 = test.

    Iris ships with scikit-learn, so ``data_dir``/``download`` are not used.
    """
    return data.cached((NAME,), _build)


def _build() -> Dataset:
    from sklearn.datasets import load_iris  # lazy: scikit-learn takes ~0.5 s to import

    iris = load_iris()
    x, y = iris.data.copy(), iris.target.copy()
    # np.random.seed(116); np.random.shuffle(x); np.random.seed(116); np.random.shuffle(y):
    # the legacy global generator, re-seeded, applies the same permutation to both arrays
    np.random.RandomState(SHUFFLE_SEED).shuffle(x)
    np.random.RandomState(SHUFFLE_SEED).shuffle(y)
    return Dataset(
        as_float(x[:-N_TEST]),
        as_labels(y[:-N_TEST]),
        as_float(x[-N_TEST:]),
        as_labels(y[-N_TEST:]),
        source="scikit-learn Iris, shuffled with seed 116, 120 train / 30 test (seed 001)",
    )


def model(seed: int) -> nn.Module:
    """``Linear(4, 3)``; weights and bias from a normal(0, 0.1) truncated at 2 standard
    deviations, as seed 001's ``tf.random.truncated_normal([4, 3], stddev=0.1)``. The outputs
    are the pre-softmax logits; :func:`softmax_mse` applies the softmax."""
    layer = nn.Linear(4, 3)
    nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.1, a=-0.2, b=0.2)
    nn.init.trunc_normal_(layer.bias, mean=0.0, std=0.1, a=-0.2, b=0.2)
    return layer


TASK = Task(
    name=NAME,
    description="Iris, softmax regression 4->3 with MSE on one-hot labels (seed 001)",
    load=load,
    model=model,
    loss=softmax_mse,
    batch_size=32,
    epochs=500,
    optimizers=(
        # seed 001's five hand-written updates, all at lr 0.1:
        # w -= lr*g
        "sgd:lr=0.1",
        # m = beta*m + (1-beta)*g; w -= lr*m, beta 0.9 (the EMA form)
        "momentum:form=ema,momentum=0.9,lr=0.1",
        # v += g^2; w -= lr*g/sqrt(v): no delta in the denominator, hence eps=0
        "adagrad:lr=0.1,eps=0",
        # v = beta*v + (1-beta)*g^2; w -= lr*g/sqrt(v), beta 0.9, no eps either
        "rmsprop:lr=0.1,alpha=0.9,eps=0",
        # bias-corrected m, v with betas 0.9/0.999; w -= lr*m_hat/sqrt(v_hat), no eps
        "adam:lr=0.1,betas=0.9/0.999,eps=0",
    ),
    seed_file="001",
    extra={"split": "120 train / 30 test, np.random.seed(116) shuffle", "classes": 3},
)
