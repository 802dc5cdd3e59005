"""The pictures of a surface run: contours on a log scale of the surface, one coloured path per
optimizer (colours of :mod:`optimlab.lab.pages`), as a PNG and as a GIF or MP4 animation.

``<surface>.png`` shows contours on log-spaced levels of ``f - min_domain f`` with every full
path; ``<surface>.gif`` (or ``.mp4``) grows the paths, one frame per group of steps. Both are
written atomically.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import pages
from ..errors import UserError
from ..files import atomic_output, atomic_write_bytes
from ..limits import LIMITS, short
from .catalog import Surface
from .run import PathMetrics, SurfaceRun, Trajectory

FORMATS = ("gif", "mp4", "none")

# Picture geometry: the plot on the left, the legend (labels with hyperparameters) on the right.
FIGSIZE = (8.4, 4.8)  # inches
PNG_DPI = 100
ANIMATION_DPI = 75  # 630 x 360 pixels: small GIFs, even sizes for H.264
FRAME_MS = 80
LAST_FRAME_MS = 1500
DEFAULT_MAX_FRAMES = 60


def check_format(fmt: str) -> str:
    """Validate an animation format; ``mp4`` needs ``ffmpeg`` on the PATH."""
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise UserError(f"Invalid format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if fmt == "mp4" and shutil.which("ffmpeg") is None:
        raise UserError(
            "--format mp4 needs ffmpeg on the PATH, and none was found (use --format gif)"
        )
    return fmt


def path_colors(run: SurfaceRun) -> list[str]:
    """The colour of each path: its optimizer name's (:func:`optimlab.lab.pages.colors`)."""
    return pages.colors([p.label for p in run.trajectories])


def frame_steps(steps: int, max_frames: int = DEFAULT_MAX_FRAMES) -> list[int]:
    """The steps an animation shows: ``0, k, 2k, ...`` and ``steps``, at most ``max_frames``.

    ``k = ceil(steps / (max_frames - 1))`` steps make one group; each frame ends one group.
    """
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 2:
        raise UserError(f"Invalid frames: {max_frames!r} (expected an integer >= 2)")
    if max_frames > LIMITS["frames"]:
        raise UserError(f"Invalid frames: {short(str(max_frames))} (at most {LIMITS['frames']:,})")
    group = max(1, math.ceil(steps / (max_frames - 1)))
    shown = list(range(0, steps, group))
    return [*shown, steps]


def animation_size() -> tuple[int, int]:
    """Width and height in pixels of every GIF/MP4 frame."""
    return (round(FIGSIZE[0] * ANIMATION_DPI), round(FIGSIZE[1] * ANIMATION_DPI))


@dataclass(frozen=True)
class ContourScale:
    """How contours are spaced: evenly in ``t(f)``, a logarithmic transform of the surface.

    * ``log``: ``t = log10(max(f - min f, floor))`` with ``min f`` over the plotted grid (so
      ``f - min f >= 0`` also where ``f`` is negative) and ``floor = 10**-decades * max(f - min f)``;
    * ``symlog`` (surfaces without minima whose values take both signs, e.g. saddles):
      ``t = sign(f) * log10(1 + |f| / c)`` with ``c = 10**-decades * max |f|``, symmetric about
      the value 0 of the saddle point.
    """

    kind: str
    offset: float
    scale: float
    label: str

    @classmethod
    def for_values(cls, surface: Surface, z: np.ndarray, decades: float = 4.0) -> ContourScale:
        low, high = float(np.nanmin(z)), float(np.nanmax(z))
        if not surface.minima and low < 0 < high:
            c = max(-low, high) * 10.0**-decades
            return cls("symlog", 0.0, c, "sign(f) log10(1 + |f|/c)")
        top = high - low if high > low else 1.0
        return cls("log", low, top * 10.0**-decades, "log10(f - min f)")

    def transform(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "symlog":
            return np.sign(z) * np.log10(1.0 + np.abs(z) / self.scale)
        return np.log10(np.maximum(z - self.offset, self.scale))

    def levels(self, t: np.ndarray, n: int = 25) -> np.ndarray:
        """``n`` evenly spaced levels of ``t`` (an odd ``n`` puts one at 0 under symlog)."""
        low, high = float(np.nanmin(t)), float(np.nanmax(t))
        if self.kind == "symlog":
            bound = max(-low, high)
            return np.linspace(-bound, bound, n)
        return np.linspace(low, high if high > low else low + 1.0, n)


def legend_label(trajectory: Trajectory, metrics: PathMetrics) -> str:
    """The path's spec with its learning rate, and how it ended."""
    text = trajectory.label
    if "lr=" not in text.split("+", 1)[0]:
        text += f" (lr {'+'.join(f'{x:.3g}' for x in trajectory.lr)})"
    if metrics.diverged:
        text += f" (diverged at step {metrics.diverged_at_step})"
    elif metrics.escaped_at_step is not None:
        text += f" (escaped at step {metrics.escaped_at_step})"
    elif metrics.steps_to_distance_tol is not None:
        text += f" (within tol at step {metrics.steps_to_distance_tol})"
    elif metrics.end_state == "value converged":
        text += f" (value within tol at step {metrics.steps_to_value_tol}, not the point)"
    return text


def subtitle(run: SurfaceRun, sep: str = "\n") -> str:
    parts = [f"{run.steps} steps from ({run.start[0]:g}, {run.start[1]:g})"]
    if run.noise > 0:
        parts.append(f"gradient noise sigma={run.noise:g}, seed {run.seed}")
    if run.lr_mode == "tuned" or any(p.tuned for p in run.trajectories):
        parts.append("lr: each optimizer's best of a grid, by final value")
    elif run.lr_mode == "equal":
        lrs = {x for p in run.trajectories for x in p.lr}
        parts.append(f"lr: {', '.join(f'{x:g}' for x in sorted(lrs))} for every optimizer")
    else:
        parts.append("lr: each optimizer's default on this surface")
    if not run.surface.bounded:
        parts.append(f"unbounded below: 'escaped' = f <= {run.surface.escape_value:g}")
    return sep.join(parts)


class Picture:
    """The static picture (contours, start, minima, legend) and one line per path."""

    def __init__(self, run: SurfaceRun) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        surface = run.surface
        self.run = run
        self.fig = Figure(figsize=FIGSIZE, dpi=ANIMATION_DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.ax = self.fig.add_axes((0.075, 0.11, 0.5, 0.8))
        gx, gy, gz = (t.numpy() for t in surface.grid(160))
        scale = ContourScale.for_values(surface, gz)
        field = scale.transform(gz)
        levels = scale.levels(field)
        ax.contourf(gx, gy, field, levels=levels, cmap="Greys_r", alpha=0.6)
        ax.contour(gx, gy, field, levels=levels, colors="0.4", linewidths=0.35)
        (x0, x1), (y0, y1) = surface.domain
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"{surface.name}: {surface.formula}", fontsize=10, loc="left")
        self.fig.text(0.6, 0.11, subtitle(run), fontsize=7, color="0.3", va="bottom")
        handles: list = []
        ax.plot(*run.start, "o", color="black", markersize=6, zorder=5)
        handles.append(Line2D([], [], marker="o", color="black", ls="", label="start"))
        if surface.minima:
            mx, my = np.asarray(surface.minima).T
            ax.plot(mx, my, "*", color="gold", markeredgecolor="black", markersize=13, zorder=5)
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="*",
                    color="gold",
                    markeredgecolor="black",
                    markersize=11,
                    ls="",
                    label="minimum",
                )
            )
        elif surface.critical_point is not None:
            ax.plot(
                *surface.critical_point,
                "P",
                color="white",
                markeredgecolor="black",
                markersize=9,
                zorder=5,
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="P",
                    color="white",
                    markeredgecolor="black",
                    ls="",
                    label="saddle point (no minimum)",
                )
            )

        self.lines, self.heads, self.crosses = [], [], []
        self.colors = path_colors(run)
        for i, (path, metrics) in enumerate(zip(run.trajectories, run.metrics)):
            c = self.colors[i]
            (line,) = ax.plot(
                [],
                [],
                "-",
                color=c,
                lw=1.6,
                label=legend_label(path, metrics),
                zorder=3,
            )
            (head,) = ax.plot(
                [],
                [],
                "o",
                color=c,
                markersize=5,
                markeredgecolor="black",
                markeredgewidth=0.5,
                zorder=4,
            )
            (cross,) = ax.plot([], [], "x", color=c, markersize=11, mew=2.5, zorder=6)
            self.lines.append(line)
            self.heads.append(head)
            self.crosses.append(cross)
            handles.append(line)
        self.fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.6, 0.915),
            fontsize=7.5,
            frameon=False,
            handlelength=1.6,
        )
        self.counter = self.fig.text(0.57, 0.115, "", fontsize=8, ha="right", va="bottom")

    def _clip(self, point: np.ndarray) -> np.ndarray:
        (x0, x1), (y0, y1) = self.run.surface.domain
        return np.array([min(max(point[0], x0), x1), min(max(point[1], y0), y1)])

    def show(self, step: int) -> None:
        """Set every path to its first ``step`` steps."""
        for path, line, head, cross in zip(
            self.run.trajectories, self.lines, self.heads, self.crosses
        ):
            shown = path.points[: step + 1]
            line.set_data(shown[:, 0], shown[:, 1])
            end_reached = path.diverged and step >= path.stopped_at
            last = self._clip(shown[-1])
            head.set_data([last[0]], [last[1]])
            # diverged: the path stops at its last finite point, marked by an x (kept in view)
            cross.set_data(([last[0]], [last[1]]) if end_reached else ([], []))
            head.set_visible(not end_reached)
        self.counter.set_text(f"step {step} / {self.run.steps}")

    def set_animated(self, animated: bool) -> None:
        """Animated artists are left out of full draws, so that frames can blit them."""
        for artist in self.artists():
            artist.set_animated(animated)

    def artists(self) -> list:
        return [*self.lines, *self.heads, *self.crosses, self.counter]


def png_bytes(figure: Picture) -> bytes:
    figure.set_animated(False)
    figure.show(figure.run.steps)
    buffer = io.BytesIO()
    figure.fig.savefig(buffer, format="png", dpi=PNG_DPI)
    return buffer.getvalue()


def write_png(run: SurfaceRun, path: str | os.PathLike) -> Path:
    """The contour plot with every full path, written atomically."""
    return atomic_write_bytes(path, png_bytes(Picture(run)))


def _frames(figure: Picture, max_frames: int) -> tuple[list[int], Callable[[int], np.ndarray]]:
    """The steps of each frame and a function that renders one frame as RGB.

    The contours, markers and legend are drawn once; each frame restores that background and
    draws only the paths and the step counter (blitting).
    """
    figure.set_animated(True)
    canvas = figure.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(figure.fig.bbox)

    def render(step: int) -> np.ndarray:
        canvas.restore_region(background)
        figure.show(step)
        for artist in figure.artists():
            figure.fig.draw_artist(artist)
        return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()

    return frame_steps(figure.run.steps, max_frames), render


def _gif_palette(final: Image.Image, path_colors: list[str], background_colors: int = 40
                 ) -> Image.Image:
    """A palette image: the exact path colours (and their blends with white and grey, which
    antialiased lines produce), black, white and gold, then the background's own colours.

    A median cut alone merges the thin coloured paths into the greys that cover most pixels.
    """

    exact = [(0, 0, 0), (255, 255, 255), (255, 215, 0)]
    for c in path_colors:
        rgb = pages.rgb(c)
        exact.append(rgb)
        for other, w in (((255, 255, 255), 0.5), ((128, 128, 128), 0.5), ((255, 255, 255), 0.75)):
            exact.append(tuple(round(w * o + (1 - w) * c) for c, o in zip(rgb, other)))
    quantized = final.quantize(colors=background_colors, method=Image.Quantize.MEDIANCUT)
    background = quantized.getpalette()[: 3 * background_colors]
    flat = [v for c in exact for v in c] + background
    flat += [0] * (768 - len(flat))
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat[:768])
    return palette


def gif_bytes(figure: Picture, max_frames: int) -> bytes:

    steps, render = _frames(figure, max_frames)
    rgb = [Image.fromarray(render(s)) for s in steps]
    palette = _gif_palette(rgb[-1], figure.colors)
    # One palette for every frame and no dithering: unchanged pixels stay identical between
    # frames, so the GIF stores only the rectangle that changed.
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in rgb]
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
        optimize=False,
    )
    return buffer.getvalue()


def write_gif(
    run: SurfaceRun, path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES
) -> Path:
    """The animation as a looping GIF: one frame per group of steps (:func:`frame_steps`)."""
    return atomic_write_bytes(path, gif_bytes(Picture(run), max_frames))


def write_mp4(
    run: SurfaceRun, path: str | os.PathLike, max_frames: int = DEFAULT_MAX_FRAMES
) -> Path:
    """The animation as H.264 MP4 through ``ffmpeg`` (raises :class:`UserError` without it)."""
    return write_picture_mp4(Picture(run), path, max_frames)


def write_picture_mp4(figure: Picture, path: str | os.PathLike, max_frames: int) -> Path:
    check_format("mp4")
    steps, render = _frames(figure, max_frames)
    width, height = animation_size()
    with atomic_output(path) as tmp:
        command = [
            shutil.which("ffmpeg") or "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            f"{1000 / FRAME_MS:g}",
            "-i",
            "-",
            "-vcodec",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(tmp),
        ]
        with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdin is not None
            for s in steps:
                proc.stdin.write(render(s).tobytes())
            # hold the last frame, as the GIF does
            for _ in range(LAST_FRAME_MS // FRAME_MS):
                proc.stdin.write(render(steps[-1]).tobytes())
            _, err = proc.communicate()
        if proc.returncode != 0:
            raise UserError(f"ffmpeg failed: {err.decode(errors='replace').strip()[:300]}")
    return Path(path)
