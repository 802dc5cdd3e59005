"""Command ``optimlab bench step``: optimizer step times against torch.optim and the memory limit.

The measurement is :mod:`optimlab.bench.step`; this module parses the options and calls its
``run`` (``benchmarks/step.py`` is the same as a script).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..lab.errors import UserError

bench_app = typer.Typer(help="Measure optimlab against torch.optim.", no_args_is_help=True)


def _names(value: str) -> list[str] | None:
    names = [s.strip() for s in value.split(",") if s.strip()]
    return names or None


@bench_app.command("step")
def step_command(
    params: Annotated[int, typer.Option(help="number of parameters (about)")] = 10_000_000,
    tensors: Annotated[int, typer.Option(help="number of parameter tensors (about)")] = 196,
    dtype: Annotated[str, typer.Option(help="float32, float64 or bfloat16")] = "float32",
    optimizers: Annotated[str, typer.Option(help="comma-separated names (default: all)")] = "",
    conventions: Annotated[str, typer.Option(help="comma-separated (default: all)")] = "",
    repeats: Annotated[int, typer.Option(help="timed steps per path (interleaved)")] = 9,
    torch_paths: Annotated[
        bool, typer.Option("--torch/--no-torch", help="time torch.optim")
    ] = True,
    threads: Annotated[Optional[int], typer.Option(help="torch threads (default: torch's)")] = None,  # noqa: UP045
    small: Annotated[
        bool,
        typer.Option(
            "--small/--no-small",
            help="also time every default step on seed 003's MLP and on ~159k params in 196 "
            "tensors (1 thread) against torch's",
        ),
    ] = True,
    json: Annotated[Optional[Path], typer.Option("--json", help="write the results here")] = None,  # noqa: UP045
) -> None:
    """Median step time of every optimizer path and of torch.optim's, with achieved GB/s."""
    from rich.console import Console

    from ..lab.files import atomic_write_text
    from ..lab.limits import check_count
    from ..lab.outdir import check_writable_file
    from . import step

    for name, value in (("params", params), ("tensors", tensors), ("repeats", repeats)):
        check_count(name, value)
    if threads is not None:
        check_count("threads", threads)
    if json is not None:  # before the benchmark runs: a bad path must not waste it
        check_writable_file(json, "--json")
    try:
        step.layout(params, tensors)  # a size that cannot be laid out is refused before any run
    except ValueError as e:
        raise UserError(str(e)) from None
    console = Console(stderr=True, highlight=False)
    try:
        result = step.run(
            params=params,
            dtype=dtype,
            optimizers=_names(optimizers),
            conventions=_names(conventions),
            repeats=repeats,
            tensors=tensors,
            torch_paths=torch_paths,
            progress=lambda msg: console.log(msg),
            threads=threads,
            small=small,
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    Console(highlight=False, width=max(Console().width, 180)).print(step.table(result))
    if json is not None:
        import json as json_module

        atomic_write_text(json, json_module.dumps(result, indent=1))
        console.print(f"wrote {json}")


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the ``optimlab`` app."""
    app.add_typer(bench_app, name="bench")
