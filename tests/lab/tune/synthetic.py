"""Synthetic tasks for the tuner's tests (no files, ~0.1 s a trial), and a tuning worker on them.

As a script, ``python tests/lab/tune/synthetic.py worker NAME ID`` registers these tasks and runs
one tuning worker on the study NAME in ``$OPTIMLAB_STORAGE`` (``test_tune_workers.py`` starts its
workers so, which then need no dataset files).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from optimlab.lab.tasks import Dataset, Task, register, registry
from optimlab.lab.tune.config import TuneConfig
from optimlab.lab.tune.storage import create_study, default_storage_url, open_storage

CENTERS = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def _draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(n) % 3
    return CENTERS[y] + 1.1 * torch.randn(n, 2, generator=g), y


def _blobs(_options=None) -> Dataset:
    g = torch.Generator().manual_seed(7)
    x, y = _draw(300, g)
    xt, yt = _draw(90, g)
    return Dataset(x, y, xt, yt, source="three Gaussian blobs")


def _leaky(_options=None) -> Dataset:
    """Test labels shifted by one class: the better a model, the worse its test accuracy."""
    d = _blobs()
    return Dataset(d.x_train, d.y_train, d.x_test, (d.y_test + 1) % 3, source="blobs, bad test labels")


class _Poisoned(torch.Tensor):
    """A tensor that fails on any use: planted as the test split of a task being tuned."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the test split was read ({getattr(func, '__name__', func)})")


def _poisoned(_options=None) -> Dataset:
    d = _blobs()
    return Dataset(d.x_train, d.y_train, torch.zeros(90, 2).as_subclass(_Poisoned),
                   torch.zeros(90, dtype=torch.long).as_subclass(_Poisoned), source="poisoned test")


def _model(seed: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 3))


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # unbounded gradients: SGD with lr far above 2/L grows the weights geometrically to inf
    return F.mse_loss(outputs, F.one_hot(targets, 3).to(outputs.dtype))


#: the synthetic tasks, added to the registry only while a test of this module runs
SYNTHETIC = {
    name: Task(name=name, description="synthetic blobs for the tuner's tests", load=load,
               model=_model, loss=loss, batch_size=30, epochs=2, optimizers=("sgd", "adam"))
    for name, load, loss in (("synth-blobs", _blobs, F.cross_entropy),
                             ("synth-leaky", _leaky, F.cross_entropy),
                             ("synth-poisoned", _poisoned, F.cross_entropy),
                             ("synth-mse", _blobs, _mse))
}




def add_all(monkeypatch) -> None:
    """Register the synthetic tasks until ``monkeypatch`` is undone."""
    for name, task in SYNTHETIC.items():
        monkeypatch.setitem(registry._TASKS, name, task)


def make_study(where: Path | str, name: str = "s", **kw) -> tuple[str, TuneConfig]:
    """A study of the synthetic tasks (by default sgd and adam on synth-blobs, budget 3, 2 epochs,
    2 seeds, fast heartbeats) in ``where/tune.db``, or at the storage URL ``where``."""
    args = {"tasks": ["synth-blobs"], "optimizers": "sgd,adam", "budget": 3, "epochs": 2,
            "seeds": 2, "heartbeat_interval": 1, "grace_period": 2}
    args.update(kw)
    cfg = TuneConfig.create(**args)
    url = where if isinstance(where, str) else default_storage_url(where)
    create_study(open_storage(url), name, cfg)
    return url, cfg


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    import os

    from optimlab.lab.tune.config import STORAGE_ENV
    from optimlab.lab.tune.worker import work

    for _task in SYNTHETIC.values():
        register(_task)
    torch.set_num_threads(1)
    work(os.environ[STORAGE_ENV], sys.argv[2], worker_id=sys.argv[3])
