"""``sparse-logreg``: logistic (softmax) regression on synthetic sparse binary features.

Seed 000 advises adaptive methods for sparse data: AdaGrad gives every parameter its own step
``lr/sqrt(sum of its squared gradients)``, so a weight whose feature is rarely on keeps large
steps while frequent features' steps shrink. This task is built to show that: rare features
carry the signal.

Generating process (numpy PCG64, seed :data:`GENERATOR_SEED`; the same arrays everywhere)::

    feature frequency  p_j = c / (j + 1)^0.8,  c set so that sum_j p_j = 10   (j = 0..999)
                       -> about 1% of the 1,000 features are on in each sample;
                          p_0 = 0.65, p_999 = 0.0026 (about 26 samples in 10,000)
    features           x_ij ~ Bernoulli(p_j), independent
    true weights       w_j ~ Normal(0, 0.3^2)                  for the 100 most frequent j
                       w_j = +-Uniform(2, 4) with probability 1/2, else 0, for the others
    labels             y_i ~ Bernoulli(sigmoid(x_i . w - median_k(x_k . w)))

10,000 samples, split 8,000 train / 2,000 test; the model is ``Linear(1000, 2)`` on the raw 0/1
features with cross-entropy.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from .. import data
from ._common import as_float, as_labels, cross_entropy
from .base import DataOptions, Dataset, Task

NAME = "sparse-logreg"
GENERATOR_SEED = 20240601
N_SAMPLES = 10_000
N_FEATURES = 1_000
N_TRAIN = 8_000
MEAN_ACTIVE = 10.0
ZIPF_EXPONENT = 0.8
N_FREQUENT = 100


def generate(
    n_samples: int = N_SAMPLES, n_features: int = N_FEATURES, seed: int = GENERATOR_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generating process of the module docstring: ``(x uint8 n x d, y int64 n, w d)``."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, n_features + 1) ** ZIPF_EXPONENT
    freq *= MEAN_ACTIVE / freq.sum()
    x = (rng.random((n_samples, n_features)) < freq).astype(np.uint8)
    w = np.zeros(n_features)
    n_frequent = min(N_FREQUENT, n_features)
    w[:n_frequent] = rng.normal(0.0, 0.3, n_frequent)
    rare = n_features - n_frequent
    informative = rng.random(rare) < 0.5
    magnitude = rng.uniform(2.0, 4.0, rare) * rng.choice((-1.0, 1.0), rare)
    w[n_frequent:] = np.where(informative, magnitude, 0.0)
    logit = x @ w
    logit -= np.median(logit)
    y = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return x, y, w


def load(options: DataOptions) -> Dataset:
    """The synthetic data (generated, so the data options are not used)."""
    return data.cached((NAME,), _build)


def _build() -> Dataset:
    x, y, _ = generate()
    return Dataset(
        as_float(x[:N_TRAIN]),
        as_labels(y[:N_TRAIN]),
        as_float(x[N_TRAIN:]),
        as_labels(y[N_TRAIN:]),
        source=(
            f"synthetic sparse binary features, {N_SAMPLES} x {N_FEATURES}, ~1% on, "
            f"generator seed {GENERATOR_SEED}, {N_TRAIN} train / {N_SAMPLES - N_TRAIN} test"
        ),
    )


def model(seed: int) -> nn.Module:
    """``Linear(1000, 2)``: softmax regression on two classes (= logistic regression)."""
    return nn.Linear(N_FEATURES, 2)


TASK = Task(
    name=NAME,
    description="Synthetic sparse features, logistic regression: AdaGrad's case (seed 000)",
    load=load,
    model=model,
    loss=cross_entropy,
    batch_size=32,
    epochs=10,
    optimizers=(
        # seed 000's comparison for sparse data: plain SGD against AdaGrad at the same
        # global lr, so the difference is AdaGrad's per-feature step alone
        "sgd:lr=0.1",
        "adagrad:lr=0.1",
        # seed 000 also recommends RMSProp and Adam "at their defaults" for sparse data:
        # torch.optim.Adam's lr 1e-3; RMSProp at Keras' lr 1e-3 with torch's alpha 0.99
        "adam:lr=0.001",
        "rmsprop:lr=0.001",
    ),
    seed_file="000",
    extra={"classes": 2, "density": "about 1% of 1,000 binary features on"},
)
