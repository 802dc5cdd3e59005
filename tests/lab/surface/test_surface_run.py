"""optimlab.lab.surfaces and optimlab.lab.surface: the surfaces, runs, measurements and pictures."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from optimlab.lab.errors import UserError
from optimlab.lab.surface.api import write_csv, write_outputs
from optimlab.lab.surface.catalog import (
    DEFAULT_SURFACES,
    SURFACES,
    Surface,
    get_surface,
    surface_names,
)
from optimlab.lab.surface.draw import animation_size, frame_steps, write_gif, write_png
from optimlab.lab.surface.page import html_figure, write_html
from optimlab.lab.surface.run import CSV_COLUMNS, run_surface, run_trajectory, tune_learning_rate
from optimlab.optim import SEED_OPTIMIZERS


def _gradient(surface: Surface, point) -> torch.Tensor:
    p = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    surface(p).backward()
    return p.grad


# ---- the surfaces ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_builtin_surface_data_is_consistent(name):
    s = get_surface(name)
    (x0, x1), (y0, y1) = s.domain
    assert x0 < x1 and y0 < y1
    assert x0 <= s.start[0] <= x1 and y0 <= s.start[1] <= y1
    for point in s.reference_points():
        # minima and saddle points are stationary: the constants are right to 1e-6
        assert torch.linalg.vector_norm(_gradient(s, point)) < 1e-6, point
    if s.minima:
        # no grid point of the plotted domain is lower than the stated minimum value
        assert float(s.grid(101)[2].min()) >= s.minimum_value - 1e-9
        assert s.escape_value is None
    else:
        # unbounded below: values under the escape level exist, and the start is above it
        assert s.critical_point is not None and s.escape_value < s.value(s.start)
        assert float(s.grid(101)[2].min()) < s.escape_value
    for spec in s.optimizers:
        run = run_trajectory(s, spec, steps=3)
        assert run.points.shape == (4, 2)


def test_seed_surfaces_are_the_defaults_and_draw_every_seed_optimizer():
    assert DEFAULT_SURFACES == ("saddle", "valley", "rotated-valley")
    for name in DEFAULT_SURFACES:
        names = [spec.split(":")[0] for spec in get_surface(name).optimizers]
        assert names == list(SEED_OPTIMIZERS)


def test_known_values():
    assert get_surface("rosenbrock").value((1, 1)) == 0.0
    assert get_surface("rosenbrock").value((0, 0)) == 1.0  # (1-0)^2 + 100 (0-0)^2
    assert get_surface("beale").value((3, 0.5)) == 0.0
    assert get_surface("saddle").value((2, 3)) == -5.0  # 4 - 9
    assert get_surface("valley").value((10, 1)) == pytest.approx(10.0)  # 0.05*100 + 5*1
    assert get_surface("monkey-saddle").value((1, 1)) == -2.0  # 1 - 3
    assert get_surface("rastrigin").value((0, 0)) == 0.0
    assert get_surface("himmelblau").value((3, 2)) == 0.0


def test_unknown_surface_lists_the_choices():
    with pytest.raises(UserError, match=r"Unknown surface 'nope' \(expected one of saddle, valley"):
        get_surface("nope")
    assert surface_names()[:2] == ["saddle", "valley"]


def test_user_defined_surface():
    bowl = Surface.from_function(
        lambda x, y: (x - 1) ** 2 + 10 * torch.sin(y) ** 2,
        name="bowl",
        domain=((-2, 3), (-2, 2)),
        start=(-1.5, 1.0),
        minima=[(1, 0)],
    )
    run = run_surface(bowl, "adam:lr=0.1,sgd:lr=0.02", steps=300, tol=1e-2)
    assert [m.steps_to_distance_tol is not None for m in run.metrics] == [True, True]
    assert [m.end_state for m in run.metrics] == ["converged", "converged"]
    assert all(m.distance_to_nearest_minimum < 1e-2 for m in run.metrics)
    # without minima: distances go to the critical point, and 'escaped' is one below the start
    ridge = Surface.from_function(
        lambda x, y: -(y**2) + 0 * x, domain=((-1, 1), (-1, 1)), start=(0, 0.1),
        critical_point=(0, 0),
    )  # fmt: skip
    assert ridge.escape_value == pytest.approx(-0.01 - 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": (math.nan, 0)}, r"Invalid start: \(nan, 0\) \(expected finite numbers x, y\)"),
        ({"start": (1,)}, r"Invalid start: \(1,\) \(expected two numbers x, y\)"),
        ({"domain": ((1, -1), (0, 1))}, r"Invalid domain: .*x_min < x_max"),
        ({"name": "a b"}, r"Invalid surface name: 'a b'"),
        ({"f": lambda x, y: torch.tensor(1.0) + 0 * x.sum()}, r"must work elementwise on grids"),
        ({"f": lambda x, y: torch.log(x)}, r"not finite at its start"),
    ],
)
def test_user_defined_surface_rejects_bad_input(kwargs, message):
    args = {"f": lambda x, y: x**2 + y**2, "domain": ((-1, 1), (-1, 1)), "start": (-0.5, 0.5)}
    args.update(kwargs)
    f = args.pop("f")
    with pytest.raises(UserError, match=message):
        Surface.from_function(f, **args)


# ---- runs: the seed's claims as numbers --------------------------------------------------------


def test_valley_momentum_reaches_tolerance_before_sgd_at_the_same_lr():
    run = run_surface("valley", "sgd:lr=0.1,momentum:lr=0.1", steps=600, tol=1e-3)
    sgd, momentum = run.metrics
    # in value: measured 86 vs 414 steps; in distance SGD is not within 1e-3 after 600 steps
    assert momentum.steps_to_value_tol < sgd.steps_to_value_tol / 3
    assert momentum.steps_to_distance_tol is not None and sgd.steps_to_distance_tol is None


def test_saddle_sgd_stays_on_the_ridge_while_rmsprop_and_adam_leave_it():
    run = run_surface(
        "saddle", "sgd:lr=0.02,rmsprop:lr=0.01,adam:lr=0.02", steps=100, start=(1.0, 1e-3)
    )
    sgd, rmsprop, adam = run.trajectories
    # SGD: y_t = (1 + 2 lr)^t y_0 = 1.04^100 * 1e-3 ~ 0.05, while x has reached the saddle point
    assert abs(sgd.points[-1, 1]) == pytest.approx(1.04**100 * 1e-3, rel=1e-9)
    assert abs(sgd.points[-1, 1]) < 0.1 and abs(sgd.points[-1, 0]) < 0.02
    for path, m in zip((rmsprop, adam), run.metrics[1:]):
        assert abs(path.points[-1, 1]) > 1.0
        assert m.escaped_at_step is not None and m.final_value < -1.0
    assert run.metrics[0].escaped_at_step is None
    assert run.metrics[0].distance_to_nearest_minimum is None  # no minimum on a saddle


def test_one_sgd_step_by_hand_and_recorded_times():
    # valley at (-9, 2): grad = (0.1 x, 10 y) = (-0.9, 20); with lr 0.01: (-8.991, 1.8)
    path = run_trajectory(get_surface("valley"), "sgd:lr=0.01", steps=5)
    assert path.points[1].tolist() == pytest.approx([-8.991, 1.8], abs=1e-12)
    assert path.values[0] == pytest.approx(0.05 * 81 + 5 * 4)
    assert path.step_seconds.shape == (5,) and (path.step_seconds > 0).all()
    assert path.points.dtype == np.float64


def test_phases_count_steps_and_restart_the_state():
    path = run_trajectory(get_surface("valley"), "adam:lr=0.1@3+sgd:lr=0.01", steps=6)
    for t in (3, 4, 5):
        x, y = path.points[t]
        assert path.points[t + 1].tolist() == pytest.approx([x - 0.01 * 0.1 * x, y - 0.01 * 10 * y])
    adam_only = run_trajectory(get_surface("valley"), "adam:lr=0.1", steps=3)
    np.testing.assert_array_equal(path.points[:4], adam_only.points)
    assert path.lr == (0.1, 0.01)


def test_noise_is_seeded():
    valley = get_surface("valley")
    a = run_trajectory(valley, "sgd:lr=0.05", steps=20, noise=0.5, seed=1)
    b = run_trajectory(valley, "sgd:lr=0.05", steps=20, noise=0.5, seed=1)
    c = run_trajectory(valley, "sgd:lr=0.05", steps=20, noise=0.5, seed=2)
    exact = run_trajectory(valley, "sgd:lr=0.05", steps=20)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points) and not np.array_equal(a.points, exact.points)
    # the first step sees g + 0.5 xi with xi the generator's first two normals
    xi = torch.randn(2, generator=torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    grad = np.array([0.1 * -9.0, 10 * 2.0])
    np.testing.assert_allclose(a.points[1], [-9.0, 2.0] - 0.05 * (grad + 0.5 * xi), rtol=1e-12)


def test_divergence_beyond_the_radius_is_recorded_and_the_path_kept():
    run = run_surface("valley", "sgd:lr=0.5,adam:lr=0.1", steps=50)
    sgd, adam = run.trajectories
    # y_t = (1 - 10 lr)^t y_0 = (-4)^t * 2 leaves 1000 * diagonal (~20,900) at step 7
    assert sgd.stopped_at == 7 and len(sgd.points) == 7 and np.isfinite(sgd.points).all()
    assert sgd.stop == "diverged" and run.metrics[0].end_state == "diverged"
    assert run.metrics[0].diverged and run.metrics[0].diverged_at_step == 7
    assert not adam.diverged and len(adam.points) == 51


def test_divergence_at_a_non_finite_value_stops_there():
    # sqrt(x) pushed below 0: x = 1 -> 0.5 -> 0.5 - 0.5/sqrt(0.5) < 0, where f is NaN
    cliff = Surface.from_function(
        lambda x, y: torch.sqrt(x) + y**2, domain=((0, 2), (-1, 1)), start=(1, 0.5)
    )
    path = run_trajectory(cliff, "sgd:lr=1", steps=10)
    assert path.stopped_at == 2 and path.diverged and path.points.shape == (2, 2)
    assert np.isfinite(path.values).all()
    run = run_surface(cliff, "sgd:lr=1,sgd:lr=0.01", steps=10)
    assert [m.diverged for m in run.metrics] == [True, False]
    assert [m.diverged_at_step for m in run.metrics] == [2, None]


def test_tune_picks_the_best_final_value_and_labels_it():
    valley = get_surface("valley")
    tuned = tune_learning_rate(valley, "sgd:lr=0.01", steps=40)
    grid = [float(f"{0.01 * 10 ** (k / 2):.3g}") for k in range(-3, 4)]
    finals = {lr: run_trajectory(valley, f"sgd:lr={lr}", steps=40) for lr in grid}
    ok = {lr: p.values[-1] for lr, p in finals.items() if not p.diverged}
    best = min(ok, key=ok.get)
    assert finals[0.316].diverged  # 1 - 10 * 0.316 < -1: a diverging candidate is never chosen
    assert tuned.tuned and tuned.lr == (best,) and tuned.label == f"sgd:lr={best:g}"
    np.testing.assert_array_equal(tuned.points, finals[best].points)
    run = run_surface("valley", "sgd", steps=40, tune=True)
    # without an lr, the grid is centred on the surface's own sgd value (0.18)
    assert run.metrics[0].tuned and 0.18 / 40 < run.metrics[0].lr[0] < 0.18 * 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, r"Invalid steps: 0 \(expected an integer >= 1\)"),
        ({"start": (1, math.inf)}, r"Invalid start: \(1, inf\) \(expected finite numbers x,y\)"),
        ({"tol": -1.0}, r"Invalid tol: -1.0"),
        ({"noise": math.nan}, r"Invalid noise: nan"),
        ({"optimizers": "adamm"}, r"Unknown optimizer 'adamm'"),
        ({"optimizers": []}, r"No optimizers given"),
    ],
)
def test_run_surface_rejects_bad_settings(kwargs, message):
    with pytest.raises(UserError, match=message):
        run_surface("valley", **kwargs)


# ---- outputs -----------------------------------------------------------------------------------


def test_frame_steps_group_the_steps():
    assert frame_steps(40, 11) == list(range(0, 41, 4))
    assert frame_steps(10, 60) == list(range(11))
    assert frame_steps(7, 3) == [0, 4, 7]
    with pytest.raises(UserError, match="Invalid frames: 1"):
        frame_steps(10, 1)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One small run of three optimizers, one of which diverges, written as every output."""
    out = tmp_path_factory.mktemp("surface")
    run = run_surface("valley", "sgd:lr=0.5,momentum:lr=0.05,adam:lr=0.3", steps=40)
    files = write_outputs(run, out, fmt="gif", max_frames=11)
    return run, out, files


def test_outputs_are_written_atomically(written, tmp_path, monkeypatch):
    _, out, files = written
    assert [f.name for f in files] == ["valley.png", "valley.gif", "valley.html", "valley.csv"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in files)  # no temp files
    # every writer of another run into a copy of the folder fails at the last moment (the
    # rename over the old file): each old file must come through whole, and no temp stays
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = run_surface("valley", "sgd:lr=0.1,adam:lr=0.2", steps=20)

    def crash(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    for write in (write_png, write_gif, write_html, write_csv):
        with pytest.raises(OSError, match="killed before the rename"):
            write(other, tmp_path / f"valley.{write.__name__.split('_')[1]}")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_png_is_a_valid_picture(written):
    _, out, _ = written
    data = (out / "valley.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with Image.open(out / "valley.png") as im:
        im.verify()
    with Image.open(out / "valley.png") as im:
        assert im.size == (1000, 560)  # 10 x 5.6 inches at 100 dpi
        # the paths are drawn in colour on a grey background
        rgb = np.asarray(im.convert("RGB")).astype(int)
        assert (np.abs(rgb - [31, 119, 180]).sum(axis=2) < 40).sum() > 20  # first path's blue


def test_gif_has_one_frame_per_step_group(written):
    _, out, _ = written
    with Image.open(out / "valley.gif") as im:
        assert im.n_frames == 11  # steps 0, 4, ..., 40
        assert im.size == animation_size() == (1000, 560)
        assert im.info.get("loop") == 0


def test_csv_has_one_row_per_optimizer(written):
    run, out, _ = written
    with open(out / "valley.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["optimizer"] for r in rows] == ["sgd:lr=0.5", "momentum:lr=0.05", "adam:lr=0.3"]
    assert [r["diverged"] for r in rows] == ["true", "false", "false"]
    assert rows[0]["diverged_at_step"] == "7" and rows[0]["steps_to_distance_tol"] == ""
    assert rows[0]["end_state"] == "diverged" and rows[0]["lr"] == "0.5"
    for row, m in zip(rows, run.metrics):
        for key in ("steps_to_distance_tol", "steps_to_value_tol"):
            reached = getattr(m, key)
            assert row[key] == ("" if reached is None else str(reached))
    assert float(rows[1]["final_value"]) == pytest.approx(run.trajectories[1].values[-1])
    assert float(rows[1]["distance_to_nearest_minimum"]) == pytest.approx(
        np.linalg.norm(run.trajectories[1].points[-1])
    )


def test_diverged_path_is_drawn_as_diverged(written):
    run, _, _ = written
    figure = html_figure(run, max_frames=11)
    names = [t.get("name", "") for t in figure["data"]]
    assert "sgd (lr=0.5): diverged at step 7" in names
    head = figure["data"][names.index("sgd (lr=0.5): diverged at step 7") + 1]
    assert head["marker"]["symbol"] == "x"
    last = figure["frames"][-1]["data"]
    assert len(last[0]["x"]) == 7 and last[1]["marker"]["symbol"] == "x"
    assert figure["frames"][1]["data"][1]["marker"]["symbol"] == "circle"  # step 4: not yet


@pytest.mark.chromium
def test_html_opens_in_chromium_without_errors(tmp_path, browser):
    formula = "<script>alert('x')</script> & f"
    bowl = Surface.from_function(
        lambda x, y: x**2 + 3 * y**2, name="bowl", formula=formula,
        domain=((-2, 2), (-2, 2)), start=(-1.5, 1.5), minima=[(0, 0)],
    )  # fmt: skip
    run = run_surface(bowl, "sgd:lr=0.05,adam:lr=0.1,sgd:lr=0.4", steps=30)
    (path,) = [
        f for f in write_outputs(run, tmp_path, fmt="none", max_frames=8) if f.suffix == ".html"
    ]
    text = path.read_text(encoding="utf-8")
    assert "<script>alert" not in text and "&lt;script&gt;alert" in text
    assert "<script src=" not in text  # plotly.js is inlined: nothing to fetch
    errors, dom = browser(path)
    assert errors == []
    assert "plotly" in dom and "slider-container" in dom and "updatemenu" in dom
    assert "sgd (lr=0.4): diverged at step" in dom and "adam (lr=0.1)" in dom


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_mp4_through_ffmpeg(tmp_path):
    run = run_surface("saddle", "sgd:lr=0.02,adam:lr=0.02", steps=20)
    files = write_outputs(run, tmp_path, fmt="mp4", max_frames=6)
    (video,) = [f for f in files if f.suffix == ".mp4"]
    data = video.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 1000
    if shutil.which("ffprobe"):
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=width,height,nb_frames",
             "-of", "csv=p=0", str(video)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        # 6 frames, then the last held for LAST_FRAME_MS / FRAME_MS = 18 more
        assert probe.stdout.strip() == "630,360,24"


# ---- learning rates that no hand decides, and ends the CSV can name ----------------------------


def test_equal_lr_gives_every_path_the_same_lr(tmp_path):
    from optimlab.lab.surface import surface

    result = surface(function="valley,saddle", lr="equal", lr_value=0.02, steps=20, fmt="none",
                     out=tmp_path)
    for name in ("valley", "saddle"):
        with open(tmp_path / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["optimizer"].split(":")[0] for r in rows] == list(SEED_OPTIMIZERS)
        assert {r["lr"] for r in rows} == {"0.02"}
    assert {x for r in result.runs for t in r.trajectories for x in t.lr} == {0.02}
    with pytest.raises(UserError, match="--lr equal sets every optimizer's learning rate"):
        surface(function="valley", optimizers="adam:lr=0.1", lr="equal", out=tmp_path)
    with pytest.raises(UserError, match="Unknown --lr 'best'"):
        surface(function="valley", lr="best", out=tmp_path)


def test_an_escape_on_the_saddle_is_never_a_divergence():
    run = run_surface("saddle")  # the default steps: long enough for every path to escape
    assert [m.end_state for m in run.metrics] == ["escaped"] * len(run.metrics)
    assert not any(m.diverged for m in run.metrics)
    # SGD escapes late, at step 177: the picture's "stuck" SGD was only slow
    sgd = next(m for m in run.metrics if m.optimizer.startswith("sgd:"))
    assert sgd.escaped_at_step == 177
    far = run_trajectory(get_surface("saddle"), "adadelta:lr=1", steps=300)
    assert far.stop == "escaped" and not far.diverged  # left the radius going down


def test_distance_and_value_tolerances_are_apart():
    # on the flat floor the value is within 1e-3 long before the point is
    m = run_surface("valley", "momentum:lr=0.018", steps=600).metrics[0]
    assert m.steps_to_value_tol < m.steps_to_distance_tol
    early = run_surface("valley", "momentum:lr=0.018", steps=250).metrics[0]
    assert early.end_state == "value converged" and early.distance_to_nearest_minimum > 1e-3


def test_rotated_valley_takes_away_the_per_coordinate_advantage():
    valley, rotated = get_surface("valley"), get_surface("rotated-valley")
    assert rotated.value(rotated.start) == pytest.approx(valley.value(valley.start))
    for name, lr in (("sgd", 0.18), ("adam", 0.3)):
        a = run_surface(valley, f"{name}:lr={lr}").metrics[0]
        b = run_surface(rotated, f"{name}:lr={lr}").metrics[0]
        if name == "sgd":  # rotation-invariant: the same path, turned
            assert a.steps_to_distance_tol == b.steps_to_distance_tol
        else:  # per-coordinate steps fit the axis-aligned valley only
            assert b.steps_to_distance_tol > 2 * a.steps_to_distance_tol


@pytest.mark.parametrize("name", ["valley", "rotated-valley", "saddle"])
def test_every_text_of_the_picture_lies_inside_it(name):
    """Legend entries (spec, lr and what happened), the title and the notes stay within the
    1000 x 560 picture, and the title does not run into the colour bar's label."""
    from matplotlib.text import Text

    from optimlab.lab.surface.draw import Picture

    picture = Picture(run_surface(name))
    fig = picture.fig
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert any("step" in t.get_text() for t in texts)
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width + 0.5, (t.get_text(), box)
        assert box.y0 >= 0 and box.y1 <= height + 0.5, (t.get_text(), box)
    title = picture.ax.title.get_window_extent(renderer)
    bar = next(t for t in texts if t.get_text() == "f(x, y)").get_window_extent(renderer)
    assert not title.overlaps(bar)
