"""Trackers: --log-to, and what TensorBoard reads back from runs logged step by step and resumed
(MLflow, and TensorBoard through a comparison: tests/lab/test_open_lab.py)."""

from __future__ import annotations

import pytest

from optimlab.lab import trackers
from optimlab.lab.errors import UserError
from optimlab.lab.trackers import TrackedRun, TrackerConfig, parse_log_to

HPARAMS = {"task": "iris-softmax", "optimizer": "adam:lr=0.05", "seed": 0, "lr": 0.05,
           "betas": (0.9, 0.999), "schedule": None}


def _train(tracker, run: TrackedRun, steps: range, loss_of=lambda s: 1.0 / s, status="finished",
           steps_per_epoch: int = 3) -> None:
    """What the runner calls, for the steps ``steps`` of one run."""
    tracker.on_run_start(run, HPARAMS | {"seed": int(run.name[-1])})
    for step in steps:
        tracker.on_step(step, loss_of(step))
        if step % steps_per_epoch == 0:
            tracker.on_epoch(step // steps_per_epoch, step,
                             {"loss/test": 2.0 / step, "accuracy/test": 1 - 1.0 / step})
    tracker.on_run_end(status)


def test_log_to_accepts_repeated_and_comma_separated_names():
    assert parse_log_to(None) == ()
    assert parse_log_to("tensorboard,mlflow") == ("tensorboard", "mlflow")
    assert parse_log_to(["mlflow", "tensorboard, mlflow"]) == ("mlflow", "tensorboard")
    with pytest.raises(UserError, match=r"^Unknown tracker 'wandb' in --log-to \(expected tensorboard, mlflow\)$"):
        parse_log_to("tensorboard,wandb")


def test_a_missing_tracker_package_says_which_extra_installs_it(monkeypatch):
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"^--log-to mlflow needs the mlflow package: pip install 'optimlab\[mlflow\]'$"):
        parse_log_to("mlflow")


def test_tensorboard_reads_one_loss_per_step_for_every_run_even_after_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrackerConfig(("tensorboard",), tmp_path)
    config.prepare()
    _train(config.open(), TrackedRun("iris|adam|seed=0", "adam:lr=0.05/seed=0"), range(1, 7))
    # seed 1: interrupted after step 5 (checkpoint at step 3), resumed from the checkpoint
    _train(config.open(), TrackedRun("iris|adam|seed=1", "adam:lr=0.05/seed=1"), range(1, 6),
           loss_of=lambda s: 9.0, status="interrupted")
    _train(config.open(), TrackedRun("iris|adam|seed=1", "adam:lr=0.05/seed=1", resume_step=3),
           range(4, 7))
    for seed in (0, 1):
        events = EventAccumulator(str(tmp_path / "tensorboard" / "adam:lr=0.05" / f"seed={seed}"))
        events.Reload()
        train = events.Scalars("loss/train")
        assert [e.step for e in train] == [1, 2, 3, 4, 5, 6]
        expected = [1.0 / s if seed == 0 or s > 3 else 9.0 for s in range(1, 7)]
        assert [e.value for e in train] == pytest.approx(expected)
        assert [e.step for e in events.Scalars("loss/test")] == [3, 6]
        assert [e.value for e in events.Scalars("accuracy/test")] == pytest.approx([2 / 3, 5 / 6])
        assert "_hparams_/experiment" in events.Tags()["tensors"] or events.PluginTagToContent("hparams")
