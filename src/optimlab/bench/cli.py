"""Command ``optimlab bench step``: optimizer step times against torch.optim and the memory limit.

The measurement itself is ``benchmarks/step.py`` in the source tree (a script that also runs on
its own); this module parses the options and calls its ``run``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Annotated, Optional

import typer

from .errors import UserError

bench_app = typer.Typer(help="Measure optimlab against torch.optim.", no_args_is_help=True)

_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "step.py"


def _load_step_module() -> ModuleType:
    if not _SCRIPT.is_file():
        raise UserError(
            f"benchmarks/step.py not found at {_SCRIPT} (run from a source checkout installed "
            "with `pip install -e .`)"
        )
    spec = importlib.util.spec_from_file_location("optimlab_benchmarks_step", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    json: Annotated[Optional[Path], typer.Option("--json", help="write the results here")] = None,  # noqa: UP045
) -> None:
    """Median step time of every optimizer path and of torch.optim's, with achieved GB/s."""
    from rich.console import Console

    step = _load_step_module()
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
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    Console(highlight=False, width=max(Console().width, 180)).print(step.table(result))
    if json is not None:
        step.write_json(result, json)
        console.print(f"wrote {json}")


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the ``optimlab`` app."""
    app.add_typer(bench_app, name="bench")
