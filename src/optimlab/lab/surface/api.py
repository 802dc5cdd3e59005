"""``optimlab surface`` as one library call (:func:`surface`), and the files of a run
(:func:`write_outputs`): ``<surface>.png``, ``.gif`` or ``.mp4``, ``.html`` and ``.csv``."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write_bytes, atomic_write_text
from ..outdir import open_for_write
from ..provenance import command_for
from ..spec import OptimizerSpec, parse_specs
from .catalog import DEFAULT_SURFACES, Point, Surface, get_surface
from .draw import (
    DEFAULT_MAX_FRAMES,
    Picture,
    check_format,
    frame_steps,
    gif_bytes,
    png_bytes,
    write_picture_mp4,
)
from .page import write_html
from .rates import LR_MODES, equal_lr, without_lr
from .run import CSV_COLUMNS, Settings, SurfaceRun, parse_point, run_paths


def write_csv(run: SurfaceRun, path: str | os.PathLike) -> Path:
    """One row per optimizer, columns :data:`~optimlab.lab.surface.run.CSV_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for m in run.metrics:
        writer.writerow(m.row())
    return atomic_write_text(path, buffer.getvalue())


def output_names(stem: str, fmt: str) -> list[str]:
    """The names :func:`write_outputs` writes for surface ``stem``."""
    animation = [f"{stem}.{fmt}"] if fmt in ("gif", "mp4") else []
    return [f"{stem}.png", *animation, f"{stem}.html", f"{stem}.csv"]


def write_outputs(
    run: SurfaceRun,
    out: str | os.PathLike,
    *,
    fmt: str = "gif",
    max_frames: int = DEFAULT_MAX_FRAMES,
    command: str | None = None,
) -> list[Path]:
    """Write ``<surface>.png``, ``.gif``/``.mp4`` (unless ``fmt="none"``), ``.html`` and ``.csv``;
    the page records ``command`` (default: this process's command line) as its provenance."""
    fmt = check_format(fmt)
    frame_steps(run.steps, max_frames)  # validates max_frames before anything is written
    out = Path(out)
    stem = run.surface.name
    figure = Picture(run)  # contours computed once for the PNG and the animation
    written = [atomic_write_bytes(out / f"{stem}.png", png_bytes(figure))]
    if fmt == "gif":
        written.append(atomic_write_bytes(out / f"{stem}.gif", gif_bytes(figure, max_frames)))
    elif fmt == "mp4":
        written.append(write_picture_mp4(figure, out / f"{stem}.mp4", max_frames))
    written.append(write_html(run, out / f"{stem}.html", max_frames, command))
    written.append(write_csv(run, out / f"{stem}.csv"))
    return written


@dataclass
class SurfaceResult:
    """What :func:`surface` did: one run per surface and, for each, the files written."""

    runs: list[SurfaceRun] = field(default_factory=list)
    files: list[list[Path]] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [p for files in self.files for p in files]

    def table(self) -> list[dict[str, Any]]:
        """Every path's measurements as plain rows (``surface`` plus the CSV's columns, as in
        the files), e.g. for ``pandas.DataFrame(result.table())``."""
        return [{"surface": r.surface.name, **m.row()} for r in self.runs for m in r.metrics]


def surface(
    *,
    function: str | Sequence[str | Surface] | None = None,
    optimizers: str | Sequence[str | OptimizerSpec] | None = None,
    steps: int | None = None,
    start: str | Point | None = None,
    tol: float = 1e-3,
    noise: float = 0.0,
    seed: int = 0,
    fmt: str = "gif",
    out: str | os.PathLike = "runs/surface",
    tune: bool = False,
    frames: int = DEFAULT_MAX_FRAMES,
    lr: str = "seed",
    lr_value: float | None = None,
    distance_tol: float | None = None,
    value_tol: float | None = None,
    command: str | None = None,
) -> SurfaceResult:
    """Run optimizers on 2-D surfaces and draw their paths (``optimlab surface``).

    Every option is checked before anything runs or is written.

    Args:
        function: surface names (comma-separated text or a list; :class:`Surface` objects too);
            None: ``saddle`` and ``valley``.
        optimizers: specs (comma-separated text, or a sequence of texts or parsed specs); None:
            each surface's own set.
        steps: number of steps; None: each surface's.
        start: start point ``"x,y"`` or ``(x, y)``; None: each surface's.
        tol: the distance and value tolerance (``steps_to_distance_tol``,
            ``steps_to_value_tol``) unless ``distance_tol`` or ``value_tol`` is given.
        noise: standard deviation of Gaussian noise added to each gradient (0: exact).
        seed: seed of the gradient noise.
        fmt: animation format: ``"gif"``, ``"mp4"`` (needs ffmpeg) or ``"none"``.
        out: output folder.
        tune: the same as ``lr="tuned"``.
        frames: most frames in the animation; steps are grouped to fit.
        lr: how the optimizers get their learning rates: ``"seed"`` (each surface's default,
            drawn from the seeds' pictures), ``"equal"`` (``lr_value`` for every optimizer, so
            that no hand-picked rate decides the picture), ``"tuned"`` (each optimizer's best of
            7 log-spaced values, by final value).
        lr_value: the learning rate of ``lr="equal"`` (default 0.01).
        distance_tol, value_tol: the two tolerances, when they differ from ``tol``.
        command: the command line each page records as its provenance (None: the
            ``optimlab surface`` line equivalent to these arguments).

    Returns:
        A :class:`SurfaceResult`: the runs, their measurements (``.table()``) and the files.
    """
    if function is None:
        function = DEFAULT_SURFACES
    names = [n for n in function.split(",") if n.strip()] if isinstance(function, str) else function
    surfaces = [n if isinstance(n, Surface) else get_surface(n) for n in names]
    if not surfaces:
        raise UserError("No surface given (expected e.g. --function rosenbrock)")
    specs = None if optimizers is None else parse_specs(optimizers)
    if specs is not None and not specs:
        raise UserError("No optimizers given (expected e.g. --optimizers adam:lr=0.05,nag)")
    if lr not in LR_MODES:
        raise UserError(f"Unknown --lr {lr!r} (expected one of {', '.join(LR_MODES)})")
    if tune and lr == "equal":
        raise UserError("Give either --tune or --lr equal, not both (--tune is --lr tuned)")
    if lr_value is not None and lr != "equal":
        raise UserError("--lr-value goes with --lr equal")
    mode = "tuned" if tune else lr
    point = parse_point(start) if isinstance(start, str) else start
    settings = Settings(steps=steps, start=point, tol=tol, noise=noise, seed=seed,
                        distance_tol=distance_tol, value_tol=value_tol)
    if mode == "equal":
        value = 0.01 if lr_value is None else lr_value
        plans = [equal_lr(without_lr(s.specs) if specs is None else specs, value)
                 for s in surfaces]
    else:
        plans = [list(s.specs) if specs is None else specs for s in surfaces]
    fmt = check_format(fmt)
    frame_steps(1, frames)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"Cannot write to {out}: it is a file, not a folder")
    if command is None:
        command = command_for("surface", {
            "function": ",".join(x.name for x in surfaces), "optimizers": specs, "steps": steps,
            "start": None if point is None else f"{point[0]:g},{point[1]:g}", "tol": tol,
            "noise": noise or None, "seed": seed or None, "format": fmt, "out": str(out),
            "tune": tune, "frames": frames, "lr": None if lr == "seed" else lr,
            "lr_value": lr_value, "distance_tol": distance_tol, "value_tol": value_tol})
    config = {"function": [s.name for s in surfaces],
              "optimizers": None if specs is None else [s.label() for s in specs],
              "steps": steps, "start": None if point is None else list(point), "tol": tol,
              "noise": noise, "seed": seed, "format": fmt, "tune": tune, "frames": frames,
              "lr": mode, "lr_value": lr_value, "distance_tol": distance_tol,
              "value_tol": value_tol}
    result = SurfaceResult()
    with open_for_write(out, "surface", config, {}) as folder:
        for s, plan in zip(surfaces, plans):
            run = run_paths(s, plan, settings, tune=mode == "tuned", lr_mode=mode)
            result.runs.append(run)
            for name in output_names(s.name, fmt):
                folder.file(name)
            result.files.append(write_outputs(run, out, fmt=fmt, max_frames=frames, command=command))
    return result
