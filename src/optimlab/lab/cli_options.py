"""Command-line options that ``compare`` and ``tune`` share: the device, the training loop's
options and the trackers (declared once; each command passes them on to its library call)."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str, typer.Option(
    "--device", help="auto (CUDA when present), cpu, cuda, cuda:N or mps.")]
ClipGradNorm = Annotated[float | None, typer.Option(
    "--clip-grad-norm", help="Clip the global gradient norm to this value before each step.")]
Accumulate = Annotated[int | None, typer.Option(
    "--accumulate", help="Micro-batches of --batch-size per optimizer step (gradient accumulation).")]
SkipNonfinite = Annotated[bool, typer.Option(
    "--skip-nonfinite",
    help="A step whose loss or gradients hold a NaN or an infinity changes nothing (counted).")]
LogTo = Annotated[list[str] | None, typer.Option(
    "--log-to", help="Log every run as it trains: tensorboard, mlflow (repeatable, or comma-separated).")]
