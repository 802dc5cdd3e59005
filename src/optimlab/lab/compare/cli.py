"""Commands ``optimlab compare`` and ``optimlab report``: parse the options, call
:func:`optimlab.lab.compare.compare` or :func:`~optimlab.lab.compare.report.render_report`, and
present the result (progress bars, the summary table, JSON)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..bookkeeping import CHECKPOINT_EVERY_S
from ..cli_options import Accumulate, ClipGradNorm, Device, LogTo, SkipNonfinite
from ..console import console as _console
from ..provenance import command_line
from ..tasks import DEFAULT_TASK, get_task
from .run import CompareListener, compare

if TYPE_CHECKING:
    from rich.console import Console

    from .summary import SummaryRow


def _summary_table(rows: list[SummaryRow], title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("optimizer", overflow="fold")
    for name in ("lr", "eff. step", "seeds done", "train loss", "test acc %", "±CI95 pp", "time s",
                 "step() %"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("diverged", overflow="fold")

    def num(x: float, fmt: str) -> str:
        return format(x, fmt) if math.isfinite(x) else "–"

    for r in rows:
        diverged = ", ".join(f"seed {s} at step {st}" for s, st in r.diverged_at) or "0"
        if r.unfinished_runs:
            diverged += f" ({r.unfinished_runs} unfinished)"
        table.add_row(
            r.optimizer, num(r.lr, ".3g"), num(r.effective_lr, ".3g"), f"{r.seeds_finished}/{r.seeds}",
            num(r.final_train_loss_mean, ".4g"),
            num(100 * r.test_accuracy_mean, ".2f"), num(100 * r.test_accuracy_ci95, ".2f"),
            num(r.wall_time_s_mean, ".3g"), num(100 * r.step_time_share_mean, ".1f"),
            f"[red]{diverged}[/red]" if r.diverged_runs else diverged,
        )
    return table


def _progress_listener(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class RichListener(CompareListener):
        """Two bars: all runs, and the steps of the current one."""

        def __init__(self) -> None:
            self.progress = Progress(
                TextColumn("{task.description}", style="bold"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=True,
            )
            self.overall = self.progress.add_task("runs", total=1)
            self.current = self.progress.add_task("", total=1, visible=False)
            self._last = 0.0
            self.active: dict[int, str] = {}  # runs in training (several with --jobs)

        def start(self, total_runs: int, to_run: int) -> None:
            self.progress.start()
            self.progress.update(self.overall, total=total_runs, completed=total_runs - to_run)

        def run_started(self, index: int, spec: Any, total_steps: int | None) -> None:
            self.active[index] = f"{spec.optimizer_label()} seed {spec.seed}"
            self.progress.reset(self.current, total=total_steps or 1, visible=True,
                                description=", ".join(self.active.values()))

        def run_progress(self, steps_done: int, total_steps: int) -> None:
            now = time.monotonic()
            if now - self._last > 0.05 or steps_done == total_steps:
                self._last = now
                self.progress.update(self.current, completed=steps_done, total=total_steps)

        def run_finished(self, index: int, spec: Any, result: Any) -> None:
            self.active.pop(index, None)
            self.progress.update(self.current, description=", ".join(self.active.values()))
            if result is not None:
                self.progress.advance(self.overall)

        def reporting(self) -> None:
            self.progress.update(self.current, description="writing the report", visible=True,
                                 completed=0, total=1)

        def stop(self) -> None:
            self.progress.stop()

    return RichListener()


def compare_command(
    task: Annotated[str, typer.Option("--task", help="Task name (see `optimlab list tasks`).")] = DEFAULT_TASK,
    optimizers: Annotated[str | None, typer.Option(
        "--optimizers",
        help="Comma-separated optimizer specs, e.g. 'sgd:lr=0.1,adam:lr=1e-3,betas=0.9/0.99'. "
        "Default: the task's optimizers.",
    )] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs per run (default: the task's).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (runs use seeds 0..N-1).")] = 3,
    batch_size: Annotated[str | None, typer.Option(
        "--batch-size", help="Mini-batch size N, 1 (SGD) or 'full' (batch GD); default: the task's."
    )] = None,
    schedule: Annotated[str | None, typer.Option(
        "--schedule",
        help="Learning-rate schedule, stepped per optimizer step: exp:gamma=G (per epoch), "
        "step:step_size=E,gamma=G (epochs), cosine, warmup:steps=N, joined with '+'.",
    )] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: runs/<task>).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the runs in --out; skip finished ones."
    )] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="With --resume: accept a changed configuration."
    )] = False,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Folder holding the datasets' files."
    )] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch missing dataset files.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars and no table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    threads: Annotated[int, typer.Option(
        "--threads", min=1,
        help="torch CPU threads per run. 1 (default) is the fastest for the seeds' small models and "
        "never oversubscribes shared cores; raise it for the CNN tasks on an idle machine.",
    )] = 1,
    nproc: Annotated[int, typer.Option(
        "--nproc", help="Train each run data-parallel over N processes (torchrun + DDP)."
    )] = 1,
    tuned_from: Annotated[Path | None, typer.Option(
        "--tuned-from", help="An `optimlab tune` output folder: run each optimizer of its study "
        "with the hyperparameters it selected (instead of --optimizers).",
    )] = None,
    checkpoint_every: Annotated[float, typer.Option(
        "--checkpoint-every", metavar="SECONDS",
        help="Seconds between a run's checkpoints and store commits (0: every epoch); a crash "
        "repeats at most this much training on --resume.",
    )] = CHECKPOINT_EVERY_S,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j",
        help="Runs trained at once, each in its own process (default: one per CPU). "
        "Every run depends only on its seed, so the numbers do not change.",
    )] = None,
    device: Device = "auto",
    clip_grad_norm: ClipGradNorm = None,
    accumulate: Accumulate = None,
    skip_nonfinite: SkipNonfinite = False,
    log_to: LogTo = None,
) -> None:
    """Train every optimizer on one task over several seeds; write results.db and a report."""
    out_dir = out if out is not None else Path("runs") / get_task(task).name
    err = _console(stderr=True)
    listener = None if quiet or as_json else _progress_listener(err)
    started = time.perf_counter()
    try:
        outcome = compare(task=task, optimizers=optimizers, seeds=seeds, epochs=epochs,
                          batch_size=batch_size, schedule=schedule, out=out_dir, resume=resume,
                          force=force, data_dir=data_dir, download=download, jobs=jobs,
                          nproc=nproc, threads=threads, checkpoint_every=checkpoint_every,
                          listener=listener, device=device,
                          clip_grad_norm=clip_grad_norm, accumulate=accumulate,
                          skip_nonfinite=skip_nonfinite, log_to=log_to, command=command_line(),
                          tuned_from=tuned_from)
    except KeyboardInterrupt as e:
        if listener is not None:
            listener.stop()  # the bars must be gone before the message
        err.print(f"interrupted: the runs in training saved at the end of their epoch (after a second "
                  f"Ctrl-C: at their last save); continue with the same command and --resume "
                  f"(folder {out_dir})")
        raise typer.Exit(getattr(e, "exit_code", 130)) from None
    finally:
        if listener is not None:
            listener.stop()
    elapsed = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps({"out": str(out_dir), "config": outcome.config,
                               "summary": [r.as_dict() for r in outcome.summary]}, indent=2))
        return
    if quiet:
        return
    console = _console()
    console.print(_summary_table(outcome.summary, f"{outcome.config['task']}: {len(outcome.results)} run(s) "
                                 f"in {elapsed:.1f} s, {len(outcome.skipped)} already done"))
    console.print(f"hyperparameters: {outcome.config.get('hyperparameters')}; eff. step = "
                  "lr/(1-momentum) for momentum methods")
    console.print(f"report: {out_dir / 'report.html'}")


def report_command(
    folders: Annotated[list[Path], typer.Argument(
        help="Compare output folders (each holding results.db).", metavar="DIR...")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write one report of all DIRs here (needed for several DIRs); without it "
        "the report of DIR is rebuilt in DIR.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Rebuild report.html, summary.csv and the PNG figures of DIR from its results.db, or draw
    several comparisons of one task as one report with --out."""
    from ..errors import UserError
    from .report import rebuild_report, render_overlay

    if out is None and len(folders) > 1:
        raise UserError("Several folders make one report: give --out FOLDER for it")
    target = folders[0] if out is None else out
    rows = rebuild_report(folders[0]) if out is None else render_overlay(folders, out)
    if as_json:
        typer.echo(json.dumps({"out": str(target), "summary": [r.as_dict() for r in rows]}, indent=2))
        return
    console = _console()
    console.print(_summary_table(rows, str(target)))
    console.print(f"report: {target / 'report.html'}")


def register(app: typer.Typer) -> None:
    """Add ``compare`` and ``report`` to the ``optimlab`` app."""
    app.command("compare")(compare_command)
    app.command("report")(report_command)
