"""Pieces the task modules share: losses, fixed splits and array-to-tensor conversion."""

from __future__ import annotations

from collections.abc import Sized

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of the logits ``outputs`` against class indices ``targets``:
    ``mean_i( logsumexp(z_i) - z_i[y_i] )`` (``nn.CrossEntropyLoss``, seeds 003 and 004)."""
    return F.cross_entropy(outputs, targets)


def softmax_mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Seed 001's loss: ``mean((softmax(z) - onehot(y))^2)`` over all N x C entries.

    As the seed's ``tf.reduce_mean(tf.square(y_ - y))``: the mean runs over samples *and*
    classes, so the value is the per-sample squared error divided by C.
    """
    p = torch.softmax(outputs, dim=1)
    onehot = F.one_hot(targets, num_classes=p.shape[1]).to(p.dtype)
    return (p - onehot).square().mean()


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` that hold out ``round(test_fraction * n_c)`` samples of every
    class ``c``, chosen by a ``numpy`` PCG64 generator seeded with ``seed``; both index arrays
    come back shuffled. The same labels and seed give the same split on every platform."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(test_fraction * len(members))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def as_float(x: np.ndarray, *, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """``(x * scale - shift)`` as a contiguous float32 tensor (inputs of every task)."""
    # torch converts uint8 images to float32 several times faster than numpy's astype
    out = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    if scale != 1.0:
        out.mul_(scale)
    if shift != 0.0:
        out.sub_(shift)
    return out


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and sample standard deviation of uint8 images ``(n, C, H, W)``,
    from each channel's histogram of the 256 values (no float copy of the images)::

        mean_c = sum_v v*count_c(v) / N;   std_c = sqrt(sum_v (v - mean_c)^2*count_c(v) / (N-1))
    """
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(np.ascontiguousarray(images[:, c]).ravel(), minlength=256)
        n = counts.sum()
        mean = (values * counts).sum() / n
        means.append(mean)
        stds.append(np.sqrt(((values - mean) ** 2 * counts).sum() / max(n - 1, 1)))
    return np.array(means), np.array(stds)


def as_labels(y: np.ndarray) -> Tensor:
    """Class indices as an int64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def check_nonempty(name: str, x_train: Sized, x_test: Sized) -> None:
    """A task needs at least one training and one test sample."""
    if len(x_train) == 0 or len(x_test) == 0:
        raise UserError(
            f"{name}: the data has {len(x_train)} training and {len(x_test)} test samples "
            "(expected at least one of each)"
        )
