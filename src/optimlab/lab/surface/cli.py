"""Command ``optimlab surface``: parse the options, call :func:`optimlab.lab.surface.surface` and
present the measurements (seed 002's saddle and valley)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..console import console as _console
from ..provenance import command_line
from .api import surface as run_command
from .catalog import SURFACES

_EPILOG = (
    "Examples: optimlab surface  |  optimlab surface --function rosenbrock "
    "--optimizers adam:lr=0.05,nag --steps 500  |  optimlab surface --function saddle "
    "--noise 0.1 --seed 1  |  optimlab surface --function valley --lr tuned  |  optimlab surface "
    "--lr equal --lr-value 0.02"
)


def surface(
    function: Annotated[
        str | None,
        typer.Option(
            "--function",
            "-f",
            help="Surface name(s), comma-separated (see --list). Default: saddle,valley.",
        ),
    ] = None,
    optimizers: Annotated[
        str | None,
        typer.Option(
            "--optimizers",
            "-o",
            help="Optimizer specs, comma-separated, e.g. adam:lr=0.05,nag,rmsprop@keras. "
            "Phase lengths (adam@50+sgd) count steps. Default: each surface's own set.",
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Number of steps. Default: the surface's.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="Start point x,y (e.g. --start=-1.5,2). Default: the surface's."),
    ] = None,
    tol: Annotated[
        float,
        typer.Option(help="Distance and value tolerance: steps_to_distance_tol is the first step "
                     "within this distance of a minimum, steps_to_value_tol the first within "
                     "this value gap."),
    ] = 1e-3,
    distance_tol: Annotated[
        float | None, typer.Option("--distance-tol", help="The distance tolerance (default: --tol).")
    ] = None,
    value_tol: Annotated[
        float | None, typer.Option("--value-tol", help="The value tolerance (default: --tol).")
    ] = None,
    lr: Annotated[
        str,
        typer.Option("--lr", help="Learning rates: seed (each surface's default, from the seeds' "
                     "pictures), equal (one for all: --lr-value), tuned (each optimizer's best of "
                     "7 log-spaced values, by final value)."),
    ] = "seed",
    lr_value: Annotated[
        float | None, typer.Option("--lr-value", help="The learning rate of --lr equal (0.01).")
    ] = None,
    noise: Annotated[
        float, typer.Option(help="Std of Gaussian noise added to each gradient (0: exact).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the gradient noise.")] = 0,
    fmt: Annotated[
        str, typer.Option("--format", help="Animation format: gif, mp4 (needs ffmpeg) or none.")
    ] = "gif",
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/surface"),
    tune: Annotated[
        bool,
        typer.Option(
            "--tune", help="The same as --lr tuned."
        ),
    ] = False,
    frames: Annotated[
        int, typer.Option(help="Most frames in the animation; steps are grouped to fit.")
    ] = 60,
    list_surfaces: Annotated[
        bool, typer.Option("--list", help="List the surfaces and exit.")
    ] = False,
) -> None:
    """Draw optimizer paths on 2-D test surfaces: PNG, GIF/MP4, interactive HTML and a CSV."""
    from rich.table import Table

    console = _console()
    if list_surfaces:
        table = Table("surface", "formula", "minima", "description")
        for s in SURFACES.values():
            minima = ", ".join(f"({x:g}, {y:g})" for x, y in s.minima) or "none (unbounded)"
            table.add_row(s.name, s.formula, minima, s.description)
        console.print(table)
        return
    began = time.perf_counter()
    result = run_command(
        function=function,
        optimizers=optimizers,
        steps=steps,
        start=start,
        tol=tol,
        noise=noise,
        seed=seed,
        fmt=fmt,
        out=out,
        tune=tune,
        frames=frames,
        lr=lr,
        lr_value=lr_value,
        distance_tol=distance_tol,
        value_tol=value_tol,
        command=command_line(),
    )
    for run, files in zip(result.runs, result.files):
        table = Table(title=f"{run.surface.name}: {run.surface.formula}", title_justify="left")
        bounded = run.surface.bounded
        columns = ["optimizer", "lr", "end state"]
        columns += ["to dist. tol", "to value tol"] if bounded else ["escaped at"]
        columns += ["final value", "dist. to min." if bounded else "dist. to saddle"]
        for column in columns:
            if column == "optimizer":
                table.add_column(column, overflow="fold", min_width=14)
            elif column == "end state":
                table.add_column(column, overflow="fold", min_width=9)
            else:
                table.add_column(column, justify="right")

        def step(v: int | None) -> str:
            return "-" if v is None else str(v)

        for m in run.metrics:
            distance = m.distance_to_nearest_minimum if bounded else m.distance_to_critical_point
            reached = ([step(m.steps_to_distance_tol), step(m.steps_to_value_tol)] if bounded
                       else [step(m.escaped_at_step)])
            table.add_row(
                m.optimizer, "+".join(f"{x:.3g}" for x in m.lr), m.end_state, *reached,
                f"{m.final_value:.4g}", "-" if distance is None else f"{distance:.3g}",
            )
        console.print(table)
        console.print("wrote " + ", ".join(str(f) for f in files))
    console.print(f"done in {time.perf_counter() - began:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the ``surface`` command to ``app``."""
    app.command("surface", epilog=_EPILOG)(surface)
