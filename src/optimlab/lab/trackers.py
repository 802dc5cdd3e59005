"""Experiment trackers: runs written to TensorBoard or MLflow as they train (``--log-to``).

Each lab run (one optimizer spec x one seed, or one tuning trial) becomes one tracker run with
its hyperparameters; ``loss/train`` is logged at every step, ``loss/test`` and ``accuracy/test``
(the validation split's, while tuning) at the end of every epoch, against the global step, so
that the curves share their x axis. The runner drives a tracker through four calls::

    on_run_start(run, hparams)   before the first step (or the first step after a resume)
    on_step(step, loss)          after every step (1-based global step; a diverged step's NaN too)
    on_epoch(epoch, step, metrics)
    on_run_end(status)           "finished", "diverged", "pruned", "interrupted" or "failed"

Where they write, inside the output folder unless the environment says otherwise:

* ``tensorboard``: ``<out>/tensorboard/<run name>/`` (``tensorboard --logdir <out>/tensorboard``),
  with torch's ``SummaryWriter``; hyperparameters go to TensorBoard's HParams plugin. A resumed run
  writes with ``purge_step`` set to its first new step, so TensorBoard drops what the interrupted
  process had logged past the checkpoint, and every step appears once.
* ``mlflow``: the tracking server of ``MLFLOW_TRACKING_URI`` when set, else the SQLite store
  ``<out>/mlflow.db`` (``mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db``); experiment
  ``MLFLOW_EXPERIMENT_NAME`` or the output folder's name. Parameters are the hyperparameters,
  tags name the lab's run id; step losses are sent in one batch per epoch. A resumed run continues
  its unfinished MLflow run.

Both packages are optional extras: ``pip install 'optimlab[tensorboard]'`` / ``'optimlab[mlflow]'``
(``mlflow-skinny``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

#: tracker name -> (module that must be importable, the extra that installs it)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
}
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"

#: what MLflow calls a run that ended with each lab status
_MLFLOW_STATUS = {"finished": "FINISHED", "diverged": "FINISHED", "pruned": "FINISHED",
                  "interrupted": "KILLED", "failed": "FAILED"}


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker knows of a run.

    Attributes:
        run_id: the lab's run id (the key of the run in the results store).
        name: the run's name in the tracker, ``/``-separated parts (``adam:lr=0.05/seed=0``).
        resume_step: steps already trained when this process starts the run (0: a fresh run).
    """

    run_id: str
    name: str
    resume_step: int = 0


class Tracker:
    """A tracker of one run; every method is optional (the default does nothing)."""

    def on_run_start(self, run: TrackedRun, hparams: Mapping[str, Any]) -> None:
        """The run starts (or resumes after ``run.resume_step`` steps)."""

    def on_step(self, step: int, loss: float) -> None:
        """Global step ``step`` (1-based) trained with mean batch loss ``loss``."""

    def on_epoch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        """Epoch ``epoch`` (1-based) ended at global step ``step`` with ``metrics``."""

    def on_run_end(self, status: str) -> None:
        """The run ended with ``status``; flush and close."""


def parse_log_to(values: str | Iterable[str] | None) -> tuple[str, ...]:
    """``--log-to`` values (repeatable, comma-separated) as tracker names, each installed.

    Raises:
        UserError: an unknown tracker, or one whose package is not installed.
    """
    if values is None:
        return ()
    texts = [values] if isinstance(values, str) else list(values)
    names: list[str] = []
    for text in texts:
        for name in (n.strip().lower() for n in text.split(",")):
            if not name:
                continue
            if name not in TRACKERS:
                raise UserError(f"Unknown tracker {name!r} in --log-to (expected {', '.join(TRACKERS)})")
            module, extra = TRACKERS[name]
            if importlib.util.find_spec(module) is None:
                raise UserError(f"--log-to {name} needs the {module} package: "
                                f"pip install 'optimlab[{extra}]'")
            if name not in names:
                names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class TrackerConfig:
    """Which trackers a comparison or tuning logs to, and where (picklable, for worker processes).

    Attributes:
        names: tracker names from :func:`parse_log_to`.
        out: the output folder.
    """

    names: tuple[str, ...]
    out: Path

    def prepare(self) -> None:
        """Set up shared state once, before runs start in parallel (MLflow's database and
        experiment, which two processes must not create at the same time)."""
        if "mlflow" in self.names:
            _MlflowTracker(self.out).experiment_id()

    def open(self) -> Tracker:
        """Fresh trackers for one run, as one :class:`Tracker`."""
        trackers: list[Tracker] = []
        for name in self.names:
            trackers.append(_TensorBoardTracker(self.out) if name == "tensorboard"
                            else _MlflowTracker(self.out))
        return trackers[0] if len(trackers) == 1 else _Fanout(trackers)


class _Fanout(Tracker):
    """Several trackers as one: each call goes to each, in order."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def on_run_start(self, run: TrackedRun, hparams: Mapping[str, Any]) -> None:
        for t in self.trackers:
            t.on_run_start(run, hparams)

    def on_step(self, step: int, loss: float) -> None:
        for t in self.trackers:
            t.on_step(step, loss)

    def on_epoch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        for t in self.trackers:
            t.on_epoch(epoch, step, metrics)

    def on_run_end(self, status: str) -> None:
        for t in self.trackers:
            t.on_run_end(status)


def _plain(value: Any) -> bool | int | float | str:
    """A hyperparameter as a scalar both trackers accept (tuples and None as text)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return "/".join(str(v) for v in value)
    return str(value)


def run_folder(root: Path, name: str) -> Path:
    """``root/<name>``, each ``/``-separated part made safe as a folder name."""
    parts = [re.sub(r"[^A-Za-z0-9._=,:@+-]+", "_", p).strip(".") or "_" for p in name.split("/")]
    return root.joinpath(*parts)


class _TensorBoardTracker(Tracker):
    def __init__(self, out: Path) -> None:
        self.root = Path(out) / TENSORBOARD_DIR
        self.writer: Any = None

    def on_run_start(self, run: TrackedRun, hparams: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        # purge_step: TensorBoard hides events at or after it from earlier files of this run,
        # which drops the steps an interrupted process logged past its last checkpoint
        self.writer = SummaryWriter(log_dir=str(run_folder(self.root, run.name)),
                                    purge_step=run.resume_step + 1, flush_secs=30)
        plain = {k: _plain(v) for k, v in hparams.items()}
        for summary in hparams_summary(plain, {"loss/test": 0.0, "accuracy/test": 0.0}):
            # written into the run's own folder (SummaryWriter.add_hparams would open another)
            self.writer._get_file_writer().add_summary(summary)

    def on_step(self, step: int, loss: float) -> None:
        self.writer.add_scalar("loss/train", loss, step)

    def on_epoch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.add_scalar("epoch", epoch, step)
        self.writer.flush()

    def on_run_end(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _MlflowTracker(Tracker):
    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.client: Any = None
        self.run_uuid: str | None = None
        self.pending: list[Any] = []

    def _client(self) -> Any:
        if self.client is None:
            from mlflow.tracking import MlflowClient

            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(self.out / MLFLOW_DB).resolve()}"
            self.client = MlflowClient(tracking_uri=uri)
        return self.client

    def experiment_id(self) -> str:
        client = self._client()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.out.resolve().name
        found = client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else client.create_experiment(name)

    def on_run_start(self, run: TrackedRun, hparams: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        client, experiment = self._client(), self.experiment_id()
        tags = {"optimlab.run_id": run.run_id, "optimlab.out": str(self.out.resolve())}
        if run.resume_step > 0:
            self.run_uuid = self._unfinished(experiment, tags)
        if self.run_uuid is None:
            self.run_uuid = client.create_run(experiment, run_name=run.name, tags=tags).info.run_id
            client.log_batch(self.run_uuid, params=[Param(k, str(_plain(v))) for k, v in hparams.items()])
        else:
            client.update_run(self.run_uuid, status="RUNNING")

    def _unfinished(self, experiment: str, tags: Mapping[str, str]) -> str | None:
        """The MLflow run an interrupted process left for this lab run, if any."""
        # lab run ids never hold a quote (the spec grammar has none); the folder may, so it is
        # compared here rather than in the filter
        query = f"tags.`optimlab.run_id` = '{tags['optimlab.run_id']}'"
        for found in self.client.search_runs([experiment], filter_string=query,
                                             order_by=["attributes.start_time DESC"]):
            if (found.data.tags.get("optimlab.out") == tags["optimlab.out"]
                    and found.info.status in ("RUNNING", "KILLED", "FAILED")):
                return found.info.run_id
        return None

    def _metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self.pending.append(Metric(key, float(value), int(time.time() * 1000), step))

    def _flush(self) -> None:
        if self.pending and self.run_uuid is not None:
            # log_batch takes at most 1000 metrics per call
            for i in range(0, len(self.pending), 1000):
                self.client.log_batch(self.run_uuid, metrics=self.pending[i:i + 1000])
        self.pending = []

    def on_step(self, step: int, loss: float) -> None:
        self._metric("loss/train", loss, step)

    def on_epoch(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._metric(key, value, step)
        self._metric("epoch", epoch, step)
        self._flush()

    def on_run_end(self, status: str) -> None:
        if self.run_uuid is None:
            return
        self._flush()
        self.client.set_tag(self.run_uuid, "optimlab.status", status)
        self.client.set_terminated(self.run_uuid, _MLFLOW_STATUS.get(status, "FAILED"))
        self.run_uuid = None

