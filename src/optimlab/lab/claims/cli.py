"""Command ``optimlab claims``: check the seeds' claims and print verdicts with evidence.

Parses options into a :class:`~optimlab.lab.claims.Scale` and calls
:func:`~optimlab.lab.claims.run_claims`; heavy modules are imported inside the command so that
``--help`` starts fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

_EPILOG = (
    "Examples: optimlab claims  |  optimlab claims --only adagrad-stalls,nadam-matches-adam  |  "
    "optimlab claims --seed 1 --seeds 5 --out runs/claims-seed1  |  optimlab claims --list"
)


def claims_command(
    only: Annotated[str | None, typer.Option(
        "--only", help="Check only these claims (ids, comma-separated; see --list).")] = None,
    seed: Annotated[int, typer.Option(
        help="First seed: final runs use seeds SEED..SEED+SEEDS-1; also draws the start points.")
    ] = 0,
    seeds: Annotated[int, typer.Option(help="Final seeds per optimizer (training experiments).")
                     ] = 10,
    tune_seeds: Annotated[int, typer.Option(
        "--tune-seeds", help="Seeds per learning rate while tuning.")] = 2,
    replicates: Annotated[int, typer.Option(
        help="Times the tuning study is repeated with other seeds (verdicts that differ between "
        "replicates are within tuning noise).")] = 2,
    grid: Annotated[int | None, typer.Option(
        "--grid", help="Learning rates tried per optimizer (the equal tuning budget). "
        "Default: each experiment's own (10 on MNIST, 8 on sparse features).")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Epochs of every training run. Default: each experiment's own (5).")] = None,
    starts: Annotated[int, typer.Option(help="Start points per surface experiment.")] = 10,
    jobs: Annotated[int | None, typer.Option(
        help="Runs trained at once. Default: one per CPU (the numbers do not change).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Where tasks find their data files.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder for claims.csv and claims.html.")
                   ] = Path("runs/claims"),
    list_claims: Annotated[bool, typer.Option("--list", help="List the claims and exit.")] = False,
) -> None:
    """Check the seeds' claims about optimizers: verdicts with evidence, claims.csv, claims.html."""
    from rich.table import Table

    from ..compare.run import default_jobs
    from ..console import console as terminal
    from ..errors import UserError
    from ..limits import check_count
    from ..outdir import open_for_write
    from . import Scale, get_claims, run_claims, write_outputs
    from .page import claims_config
    from .run import check_claims

    console = terminal()
    selected = get_claims(only)
    if list_claims:
        table = Table("id", "claim", "seed", "experiment", title_justify="left")
        for c in selected:
            table.add_row(c.id, c.text, c.seed, c.experiment)
        console.print(table)
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"Cannot write to {out}: it is a file, not a folder")
    import torch

    scale = Scale(seed=seed, seeds=seeds, tune_seeds=tune_seeds, replicates=replicates,
                  grid_points=grid, epochs=epochs, starts=starts)
    jobs = check_count("jobs", jobs) if jobs is not None else default_jobs()
    check_claims(selected, scale, jobs=jobs, data_dir=str(data_dir) if data_dir else None)
    began = time.perf_counter()
    # the folder is checked (and held) before the experiments run, not after
    with open_for_write(out, "claims", claims_config(scale, selected), {}) as folder, \
            console.status("checking claims...") as status:
        def progress(done: int, total: int) -> None:
            status.update(f"checking claims: run {done}/{total}")

        torch.set_num_threads(1)
        report = run_claims(selected, scale, jobs=jobs,
                            data_dir=str(data_dir) if data_dir else None, progress=progress)
        csv_path, html_path = write_outputs(report, out, folder)
    table = Table(title="The seeds' claims, checked", title_justify="left", show_lines=True)
    table.add_column("claim", ratio=3, overflow="fold")
    table.add_column("seed", no_wrap=True)
    table.add_column("experiment", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("evidence", ratio=5, overflow="fold")
    styles = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}
    for r in report.claims:
        evidence = "\n".join(
            f"{c.check.label}: {c.measurement.show(c.interval.estimate)} "
            f"[{c.measurement.show(c.interval.low)}, {c.measurement.show(c.interval.high)}] "
            f"-> {c.verdict}" for c in r.checks)
        table.add_row(f"{r.claim.id}: {r.claim.text}", r.claim.seed, r.claim.experiment,
                      f"[{styles[r.verdict]}]{r.verdict}[/]", evidence)
    console.print(table)
    console.print(f"wrote {csv_path} and {html_path} in {time.perf_counter() - began:.0f} s")


def register(app: typer.Typer) -> None:
    """Add the ``claims`` command to ``app``."""
    app.command("claims", epilog=_EPILOG)(claims_command)
