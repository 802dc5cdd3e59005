"""Command ``optimlab tune``: tune optimizers with equal budgets, locally or on many machines.

Parses options into a :class:`~optimlab.lab.tune.TuneConfig` and calls :mod:`optimlab.lab.tune`;
heavy modules are imported inside the command so that ``--help`` starts fast. Storage URLs are
printed masked only.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from .tune_report import TaskSummary

STORAGE_ENV = "OPTIMLAB_STORAGE"  # the same name as tune.STORAGE_ENV (kept import-free)


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _ranking_table(summary: TaskSummary):
    from rich.table import Table

    from .tune_report import ranking

    table = Table(title=f"{summary.task}: best configuration per optimizer, test accuracy over seeds",
                  title_justify="left", header_style="bold")
    for name, justify in (("rank", "right"), ("optimizer", "left"), ("trials c+p/budget", "right"),
                          ("best hyperparameters", "left"), ("val acc", "right"),
                          ("test acc", "right"), ("± 95% CI", "right"), ("seeds", "right"),
                          ("to target (s)", "right"), ("steps", "right")):
        table.add_column(name, justify=justify)

    def num(x: float, fmt: str) -> str:
        if math.isinf(x):
            return "never"
        return format(x, fmt) if math.isfinite(x) else "–"

    from .tune_report import _hp_text

    for rank, r in enumerate(ranking(summary), start=1):
        table.add_row(
            str(rank), r.optimizer, f"{r.trials_complete}+{r.trials_pruned}/{r.budget}",
            _hp_text(r.best_hyperparameters), num(r.best_validation_accuracy, ".4f"),
            num(r.test_accuracy_mean, ".4f"), num(r.test_accuracy_ci95, ".4f"),
            f"{len(r.test_accuracies)}" + (f" ({r.seeds_diverged} div.)" if r.seeds_diverged else ""),
            num(r.time_to_target.wall_time_s, ".3g"), num(r.time_to_target.steps, ".0f"),
        )
    return table


def tune_command(
    task: Annotated[str, typer.Option(
        "--task", help="Task name, or several separated by commas (see `optimlab list tasks`)."
    )] = "mnist-mlp",
    optimizers: Annotated[str, typer.Option(
        "--optimizers",
        help="Comma-separated optimizer specs to tune; hyperparameters a spec sets are kept "
        "fixed. Default: the seeds' nine optimizers.",
    )] = "sgd,momentum,nag,adagrad,adadelta,rmsprop,adam,nadam,adamax",
    budget: Annotated[int, typer.Option(
        "--budget", help="Trials per optimizer (complete or pruned), the same for every optimizer."
    )] = 6,
    space: Annotated[str, typer.Option(
        "--space", help="Search space: lr-only (DeepOBS) or full (Choi et al. 2019, incl. eps)."
    )] = "lr-only",
    lr_range: Annotated[str | None, typer.Option(
        "--lr-range", help="Learning-rate range LOW:HIGH for every optimizer, e.g. 1e-5:1e2 "
        "(DeepOBS's grid). Default: a range per optimizer."
    )] = None,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="Epochs per trial and per final run (default 2; 0: the task's default)."
    )] = 2,
    batch_size: Annotated[str | None, typer.Option(
        "--batch-size", help="Mini-batch size N, 1 (SGD) or 'full'; default: the task's."
    )] = None,
    seeds: Annotated[int, typer.Option(
        "--seeds", help="Seeds of the final runs of each best configuration."
    )] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the samplers and the trials.")] = 0,
    validation_fraction: Annotated[float, typer.Option(
        "--validation-fraction", help="Share of the training split held out to select on."
    )] = 0.1,
    out: Annotated[Path, typer.Option(
        "--out", help="Output folder: report.html, tune_summary.csv and (default) tune.db."
    )] = Path("runs/tune"),
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar=STORAGE_ENV,
        help="Optuna storage URL, e.g. postgresql://USER:PASSWORD@HOST/DB (or set "
        f"{STORAGE_ENV}). Default: sqlite:///<out>/tune.db.",
    )] = None,
    study: Annotated[str, typer.Option("--study", help="Study name in the storage.")] = "optimlab-tune",
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
) -> None:
    """Tune each optimizer with the same budget on a validation split, then test the best."""
    from . import tune

    if threads < 1:
        raise UserError(f"Invalid threads {threads!r} (expected a whole number >= 1)")
    import torch

    torch.set_num_threads(threads)
    err = _console(stderr=True)
    say = (lambda *_: None) if quiet else err.print

    def on_trial(sub: str, frozen) -> None:
        value = "" if frozen.value is None else f" validation accuracy {frozen.value:.4f}"
        say(f"[dim]{sub} #{frozen.number} {frozen.state.name.lower()}{value} "
            f"{frozen.user_attrs.get('spec', '')}[/dim]")

    if worker:
        if storage is None:
            raise UserError(f"--worker needs --storage URL (or {STORAGE_ENV}) of an existing study")
        wid = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        say(f"worker {wid}: study {study!r} in {tune.mask_url(storage)}")
        report = tune.work(storage, study, worker_id=wid, on_trial=on_trial)
        say(f"worker {wid}: ran {len(report.trials)} trial(s); nothing left to run")
        return

    if workers < 0:
        raise UserError(f"Invalid workers {workers!r} (expected a whole number >= 0)")
    cfg = tune.TuneConfig.create(
        tasks=[t.strip() for t in task.split(",") if t.strip()],
        optimizers=optimizers, budget=budget, space=space,
        lr_range=tune.parse_lr_range(lr_range), epochs=None if epochs == 0 else epochs,
        batch_size=_batch_size(batch_size), seeds=seeds, seed=seed,
        validation_fraction=validation_fraction, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period, data_dir=str(data_dir) if data_dir else None,
    )
    url = storage or tune.default_storage_url(out)
    started = time.perf_counter()
    st = tune.open_storage(url)
    tune.create_study(st, study, cfg)
    n_opt = len(cfg.optimizers) * len(cfg.tasks)
    say(f"study {study!r} in {tune.mask_url(url)}: {len(cfg.optimizers)} optimizer(s) x "
        f"{len(cfg.tasks)} task(s), {cfg.budget} trials each ({cfg.budget * n_opt} in all)")
    if workers == 0:
        say(f"waiting for workers: optimlab tune --worker --study {study} --storage URL")
    procs = []
    try:
        if workers == 1:
            tune.work(url, study, worker_id="0", on_trial=on_trial)
        elif workers > 1:
            procs = tune.start_local_workers(url, study, workers, threads=threads)
        tune.wait_for_budget(st, study, cfg, procs=procs, remote=workers == 0,
                             progress=_every_tenth(lambda d, t: say(f"trials finished: {d}/{t}")))
        for p in procs:
            p.wait()
        say(f"tuning done in {time.perf_counter() - started:.1f} s; final runs of the best "
            f"configurations over {cfg.seeds} seed(s)")
        tune.run_finals(st, study, cfg, workers=max(1, workers), threads=threads,
                        progress=_every_tenth(lambda d, t: say(f"final runs: {d}/{t}")))
    except KeyboardInterrupt:
        err.print(f"interrupted: finished trials are kept in {tune.mask_url(url)}; run the same "
                  "command again to continue")
        raise typer.Exit(130) from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
    from .tune_report import summarize, write_report

    results = tune.load_results(st, study)
    html_path, csv_path = write_report(results, out)
    if quiet:
        return
    console = _console()
    for summary in summarize(results):
        console.print(_ranking_table(summary))
        console.print(summary.verdict.line())
    console.print(f"report: {html_path}  summary: {csv_path}  "
                  f"({time.perf_counter() - started:.1f} s)")


def _every_tenth(report):
    """``report(done, total)`` at the start, at every tenth of ``total`` and at the end only."""
    def progress(done: int, total: int) -> None:
        if total and (done in (0, total) or done % max(1, total // 10) == 0):
            report(done, total)

    return progress


def _batch_size(text: str | None) -> int | str | None:
    if text is None:
        return None
    t = text.strip().lower()
    if t == "full":
        return "full"
    if t.isdigit() and int(t) >= 1:
        return int(t)
    raise UserError(f"Invalid batch size {text!r} (expected a whole number >= 1, or 'full')")


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the ``optimlab`` app."""
    app.command("tune")(tune_command)
