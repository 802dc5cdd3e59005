"""Command ``optimlab tune``: parse the options, call :func:`optimlab.lab.tune.tune` (or, with
``--worker``, :func:`optimlab.lab.tune.worker.work`) and present the result. Storage URLs are
printed masked only.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ...optim import SEED_OPTIMIZERS
from ..cli_options import Accumulate, ClipGradNorm, Device, LogTo, SkipNonfinite
from ..console import console as _console
from ..errors import UserError
from ..provenance import command_line
from ..tasks import DEFAULT_TASK
from .api import TuneListener, tune
from .config import DEFAULT_BUDGET, DEFAULT_EPOCHS, DEFAULT_SEEDS, DEFAULT_STUDY, STORAGE_ENV

if TYPE_CHECKING:
    from ..protocol import CrossingSummary
    from .results import TaskSummary


def _ranking_table(summary: TaskSummary):
    from rich.table import Table

    from .results import hyperparameters_text, ranking

    table = Table(title=f"{summary.task}: best configuration per optimizer, test accuracy over seeds",
                  title_justify="left", header_style="bold")
    for name, justify in (("rank", "right"), ("optimizer", "left"), ("lr range", "left"),
                          ("complete/budget (pruned)", "right"), ("best hyperparameters", "left"),
                          ("val acc", "right"), ("test acc", "right"), ("± 95% CI", "right"),
                          ("seeds", "right"), ("steps to target, median", "right")):
        table.add_column(name, justify=justify)

    def num(x: float, fmt: str) -> str:
        if math.isinf(x):
            return "never"
        return format(x, fmt) if math.isfinite(x) else "–"

    for rank, r in enumerate(ranking(summary), start=1):
        table.add_row(
            str(rank), r.optimizer, f"{r.lr_range[0]:.2g}..{r.lr_range[1]:.2g}",
            f"{r.trials_complete}/{r.budget} ({r.trials_pruned})",
            hyperparameters_text(r.best_hyperparameters), num(r.best_validation_accuracy, ".4f"),
            num(r.test_accuracy_mean, ".4f"), num(r.test_accuracy_ci95, ".4f"),
            f"{len(r.test_accuracies)}" + (f" ({r.seeds_diverged} div.)" if r.seeds_diverged else ""),
            _steps_text(r.to_target),
        )
    return table


def _steps_text(s: CrossingSummary) -> str:
    """``"340 (5/5)"`` or ``"not reached in 600 steps (1/5)"``: median steps, seeds that reached."""
    return "–" if s.runs == 0 else f"{s.steps_text(interval=False)} ({s.reached}/{s.runs})"


def tune_command(
    task: Annotated[str, typer.Option(
        "--task", help="Task name, or several separated by commas (see `optimlab list tasks`)."
    )] = DEFAULT_TASK,
    optimizers: Annotated[str, typer.Option(
        "--optimizers",
        help="Comma-separated optimizer specs to tune; hyperparameters a spec sets are kept "
        "fixed. Default: the seeds' nine optimizers.",
    )] = ",".join(SEED_OPTIMIZERS),
    budget: Annotated[int, typer.Option(
        "--budget", help="Complete trials per optimizer, the same for every optimizer (a pruned "
        "trial's place goes to a new trial)."
    )] = DEFAULT_BUDGET,
    space: Annotated[list[str] | None, typer.Option(
        "--space", help="Search space: lr-only (DeepOBS, the default) or full (Choi et al. 2019, "
        "incl. eps); and/or dimensions KEY=log:LOW:HIGH or KEY=linear:LOW:HIGH that add to or "
        "replace the protocol's (the whole space of an optimizer named module:Class). Repeatable."
    )] = None,
    lr_range: Annotated[str | None, typer.Option(
        "--lr-range", help="Learning-rate range LOW:HIGH for every optimizer, e.g. 1e-5:1e2 "
        "(DeepOBS's grid). Default: a range per optimizer."
    )] = None,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="Epochs per trial and per final run (default 2; 0: the task's default)."
    )] = DEFAULT_EPOCHS,
    batch_size: Annotated[str | None, typer.Option(
        "--batch-size", help="Mini-batch size N, 1 (SGD) or 'full'; default: the task's."
    )] = None,
    seeds: Annotated[int, typer.Option(
        "--seeds", help="Seeds of the final runs of each best configuration."
    )] = DEFAULT_SEEDS,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the samplers and the trials.")] = 0,
    validation_fraction: Annotated[float, typer.Option(
        "--validation-fraction", help="Share of the training split held out to select on."
    )] = 0.1,
    target: Annotated[float | None, typer.Option(
        "--target", help="Validation accuracy to time every optimizer to (steps and seconds per "
        "final seed). Default: each task's declared target (`optimlab list tasks`)."
    )] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Output folder: report.html, tune_summary.csv and (default) tune.db."
    )] = Path("runs/tune"),
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar=STORAGE_ENV,
        help="Optuna storage URL, e.g. postgresql://USER:PASSWORD@HOST/DB (or set "
        f"{STORAGE_ENV}). Default: sqlite:///<out>/tune.db.",
    )] = None,
    study: Annotated[str, typer.Option("--study", help="Study name in the storage.")] = DEFAULT_STUDY,
    workers: Annotated[int, typer.Option(
        "--workers", help="Local worker processes (0: only remote workers tune this study)."
    )] = 1,
    worker: Annotated[bool, typer.Option(
        "--worker", help="Only work on an existing study (--storage, --study), then exit."
    )] = False,
    worker_id: Annotated[str | None, typer.Option(
        "--worker-id", help="This worker's name; seeds its sampler (default: host:pid)."
    )] = None,
    threads: Annotated[int, typer.Option(
        "--threads", help="torch CPU threads per process. 1 (default) is the fastest for the "
        "seeds' small models and never oversubscribes shared cores.",
    )] = 1,
    heartbeat_interval: Annotated[int, typer.Option(
        "--heartbeat-interval", help="Seconds between a running trial's heartbeats."
    )] = 10,
    grace_period: Annotated[int, typer.Option(
        "--grace-period", help="Seconds without a heartbeat after which a trial is re-queued."
    )] = 60,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Folder holding the datasets' files."
    )] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only errors.")] = False,
    device: Device = "auto",
    clip_grad_norm: ClipGradNorm = None,
    accumulate: Accumulate = None,
    skip_nonfinite: SkipNonfinite = False,
    log_to: LogTo = None,
) -> None:
    """Tune each optimizer with the same budget on a validation split, then test the best."""
    err = _console(stderr=True)
    say = (lambda *_: None) if quiet else err.print
    listener = _Printer(say, workers)
    if worker:
        from .storage import mask_url
        from .worker import work

        if storage is None:
            raise UserError(f"--worker needs --storage URL (or {STORAGE_ENV}) of an existing study")
        if threads < 1:
            raise UserError(f"Invalid threads {threads!r} (expected a whole number >= 1)")
        import torch

        torch.set_num_threads(threads)
        wid = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        say(f"worker {wid}: study {study!r} in {mask_url(storage)}")
        report = work(storage, study, worker_id=wid, on_trial=listener.trial_finished)
        say(f"worker {wid}: ran {len(report.trials)} trial(s); nothing left to run")
        return
    try:
        result = tune(
            task=task, optimizers=optimizers, budget=budget, space=space or "lr-only",
            lr_range=lr_range,
            epochs=None if epochs == 0 else epochs, batch_size=batch_size, seeds=seeds, seed=seed,
            validation_fraction=validation_fraction, target=target, out=out, storage=storage,
            study=study,
            workers=workers, threads=threads, heartbeat_interval=heartbeat_interval,
            grace_period=grace_period, data_dir=data_dir, listener=listener, device=device,
            clip_grad_norm=clip_grad_norm, accumulate=accumulate, skip_nonfinite=skip_nonfinite,
            log_to=log_to, command=command_line(),
        )
    except KeyboardInterrupt as e:
        err.print(f"interrupted: finished trials are kept in {listener.storage or 'the storage'}; "
                  "run the same command again to continue")
        raise typer.Exit(getattr(e, "exit_code", 130)) from None
    if quiet:
        return
    console = _console()
    for summary in result.summaries:
        console.print(_ranking_table(summary))
        console.print(summary.verdict.line())
    html_path, csv_path = result.paths
    console.print(f"report: {html_path}  summary: {csv_path}  ({listener.elapsed():.1f} s)")


class _Printer(TuneListener):
    """Prints the study, each trial of this process and progress every tenth."""

    def __init__(self, say, workers: int) -> None:
        import time

        self.say, self.workers, self.storage, self._clock = say, workers, "", time.perf_counter
        self.started = self._clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def study_ready(self, study, storage, config) -> None:
        self.storage = storage
        n = len(config.optimizers) * len(config.tasks)
        self.say(f"study {study!r} in {storage}: {len(config.optimizers)} optimizer(s) x "
                 f"{len(config.tasks)} task(s), {config.budget} trials each ({config.budget * n} "
                 "in all)")
        self.seeds = config.seeds
        if self.workers == 0:
            self.say(f"waiting for workers: optimlab tune --worker --study {study} --storage URL")

    def trial_finished(self, substudy, trial) -> None:
        value = "" if trial.value is None else f" validation accuracy {trial.value:.4f}"
        self.say(f"[dim]{substudy} #{trial.number} {trial.state.name.lower()}{value} "
                 f"{trial.user_attrs.get('spec', '')}[/dim]")

    def trials(self, done, total) -> None:
        if _tenth(done, total):
            self.say(f"trials finished: {done}/{total}")

    def tuning_done(self, seconds) -> None:
        self.say(f"tuning done in {seconds:.1f} s; final runs of the best configurations over "
                 f"{self.seeds} seed(s)")

    def finals(self, done, total) -> None:
        if _tenth(done, total):
            self.say(f"final runs: {done}/{total}")


def _tenth(done: int, total: int) -> bool:
    """At the start, at every tenth of ``total`` and at the end only."""
    return bool(total) and (done in (0, total) or done % max(1, total // 10) == 0)


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the ``optimlab`` app."""
    app.command("tune")(tune_command)
