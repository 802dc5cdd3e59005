"""The pictures of a surface run: the surface shaded on a logarithmic scale with its colour bar,
one path per optimizer in its name's colour (:mod:`optimlab.lab.pages`) with a dash and markers of
its own, as a PNG and as a GIF or MP4 animation (:mod:`.view` computes what they show).

``<surface>.png`` shows every full path; ``<surface>.gif`` (or ``.mp4``) grows the paths, one frame
per group of steps. Both are 1000 x 560 pixels with the legend at 10.5 pt (15 px); both are
written atomically.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from .. import pages
from ..errors import UserError
from ..files import atomic_output, atomic_write_bytes
from ..limits import LIMITS, short
from . import view
from .run import PathMetrics, SurfaceRun, Trajectory
from .view import ContourScale

__all__ = ["ContourScale", "Picture", "animation_size", "frame_steps", "write_gif", "write_png"]

FORMATS = ("gif", "mp4", "none")

# Picture geometry: the plot and its colour bar on the left, the legend on the right.
FIGSIZE = (10.0, 5.6)  # inches
#: the longest legend entry on one line (longer ones break after the name), the title's line length
LEGEND_CHARS, TITLE_CHARS = 38, 52
PNG_DPI = 100
ANIMATION_DPI = 100  # 1000 x 560 pixels, even sizes for H.264
LEGEND_PT = 10.5  # 14.6 px at 100 dpi
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


def _legend_lines(label: str) -> str:
    """A legend entry that would run past the picture's right edge, on two lines: the path's
    name, then what happened to it."""
    name, sep, what = label.partition(": ")
    return f"{name}:\n{what}" if sep and len(label) > LEGEND_CHARS else label


def legend_label(trajectory: Trajectory, metrics: PathMetrics) -> str:
    """A path's full spec with its learning rate, and what happened to it (the page's hover text)."""
    text = trajectory.label
    if trajectory.lr and "lr=" not in text.split("+", 1)[0]:
        text += f" (lr {'+'.join(f'{x:.3g}' for x in trajectory.lr)})"
    what = view.status(trajectory, metrics)
    return f"{text} ({what})" if what else text


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
    """The static picture (shading, colour bar, start, minima, legend) and one line per path."""

    def __init__(self, run: SurfaceRun) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        surface = run.surface
        self.run = run
        self.box = view.frame(run)
        self.fig = Figure(figsize=FIGSIZE, dpi=ANIMATION_DPI, facecolor="white")
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.ax = self.fig.add_axes((0.06, 0.1, 0.44, 0.8))
        gx, gy, gz = view.grid(surface, self.box, 160)
        scale = ContourScale.for_values(surface, gz)
        field = scale.transform(gz)
        levels = scale.levels(field)
        shading = ax.contourf(gx, gy, field, levels=levels, cmap="Greys_r", alpha=0.6)
        ax.contour(gx, gy, field, levels=levels, colors="0.4", linewidths=0.35)
        cax = self.fig.add_axes((0.51, 0.1, 0.011, 0.8))
        bar = self.fig.colorbar(shading, cax=cax)
        ticks, tick_labels = view.colorbar_ticks(scale, field)
        bar.set_ticks(ticks, labels=tick_labels, fontsize=9)
        bar.outline.set_visible(False)
        cax.set_title("f(x, y)", fontsize=10, loc="left", pad=6)
        (x0, x1), (y0, y1) = self.box
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x", fontsize=11)
        ax.set_ylabel("y", fontsize=11)
        ax.tick_params(labelsize=10)
        ax.set_title(textwrap.fill(f"{surface.name}: {surface.formula}", TITLE_CHARS), fontsize=12,
                     loc="left")
        words = "Dark: low f; light: high f. " + subtitle(run, "; ") + "."
        self.fig.text(0.6, 0.1, textwrap.fill(words, 58), fontsize=9, color="0.3", va="bottom")
        handles: list = [Line2D([], [], marker="o", color="black", ls="", label="start")]
        ax.plot(*run.start, "o", color="black", markersize=7, zorder=5)
        if surface.minima:
            mx, my = np.asarray(surface.minima).T
            ax.plot(mx, my, "*", color="gold", markeredgecolor="black", markersize=14, zorder=5)
            handles.append(Line2D([], [], marker="*", color="gold", markeredgecolor="black",
                                  markersize=12, ls="", label="minimum"))
        elif surface.critical_point is not None:
            ax.plot(*surface.critical_point, "P", color="white", markeredgecolor="black",
                    markersize=10, zorder=5)
            handles.append(Line2D([], [], marker="P", color="white", markeredgecolor="black",
                                  ls="", label="saddle point (no minimum)"))
        self.styles = view.path_styles(run)
        self.colors = [s.color for s in self.styles]
        self.lines, self.heads, self.crosses = [], [], []
        for path, style, label in zip(run.trajectories, self.styles, view.labels(run)):
            (line,) = ax.plot([], [], color=style.color, lw=1.9, linestyle=style.mpl_dash,
                              marker=style.mpl_marker, markersize=5.5, markevery=[],
                              markeredgecolor="white", markeredgewidth=0.6, label=_legend_lines(label),
                              zorder=3)
            (head,) = ax.plot([], [], "o", color=style.color, markersize=6, markeredgecolor="black",
                              markeredgewidth=0.6, zorder=4)
            (cross,) = ax.plot([], [], "x", color=style.color, markersize=12, mew=2.5, zorder=6)
            self.lines.append(line)
            self.heads.append(head)
            self.crosses.append(cross)
            handles.append(line)
        self.fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.59, 0.92),
                        fontsize=LEGEND_PT, frameon=False, handlelength=2.6, labelspacing=0.45)
        self.counter = self.fig.text(0.495, 0.115, "", fontsize=10, ha="right", va="bottom",
                                     bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1.5})

    def show(self, step: int) -> None:
        """Set every path to its first ``step`` steps."""
        for path, style, line, head, cross in zip(
            self.run.trajectories, self.styles, self.lines, self.heads, self.crosses
        ):
            shown = path.points[: step + 1]
            line.set_data(shown[:, 0], shown[:, 1])
            line.set_markevery([k for k in style.mark_steps if k < len(shown)])
            end_reached = path.diverged and step >= path.stopped_at
            last = view.clip(shown[-1], self.box)
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


def _gif_palette(final: Image.Image, path_colors: list[str]) -> Image.Image:
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
    background_colors = max(16, 256 - len(exact))  # the shading's and the colour bar's greys
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
