"""``optimlab surface``: arguments, outputs, and one-line errors with exit code 2."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from optimlab.lab.surface import draw
from optimlab.optim import SEED_OPTIMIZERS


def test_general_form_writes_every_output(run_cli, tmp_path):
    code, out, _ = run_cli(
        "surface",
        "--function", "rosenbrock", "--optimizers", "adam:lr=0.05,betas=0.9/0.99,nag",
        "--steps", "40", "--frames", "6", "--start=-1.5,2", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".optimlab.lock", "optimlab.json",
        "rosenbrock.csv", "rosenbrock.gif", "rosenbrock.html", "rosenbrock.png",
    ]  # fmt: skip
    with open(tmp_path / "rosenbrock.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["optimizer"] for r in rows] == ["adam:lr=0.05,betas=0.9/0.99", "nag"]
    assert all(r["steps"] == "40" for r in rows)
    with Image.open(tmp_path / "rosenbrock.gif") as im:
        assert im.n_frames == 6  # steps 0, 8, ..., 40
    assert "rosenbrock" in out and "adam:lr=0.05" in out


def test_defaults_draw_saddle_and_valley_with_the_seed_optimizers(run_cli, tmp_path):
    code, out, _ = run_cli(
        "surface", "--steps", "15", "--format", "none", "--out", str(tmp_path)
    )
    assert code == 0, out
    for name in ("saddle", "valley"):
        with open(tmp_path / f"{name}.csv", newline="") as f:
            names = [r["optimizer"].split(":")[0] for r in csv.DictReader(f)]
        assert names == list(SEED_OPTIMIZERS)
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert not (tmp_path / f"{name}.gif").exists()


def test_tune_puts_the_chosen_lr_in_the_csv(run_cli, tmp_path):
    code, out, _ = run_cli(
        "surface", "-f", "valley", "-o", "sgd:lr=0.01", "--steps", "30",
        "--tune", "--format", "none", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, out
    with open(tmp_path / "valley.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["tuned"] == "true" and row["optimizer"] == f"sgd:lr={row['lr']}"
    assert row["lr"] != "0.01"  # 30 steps: a larger rate gets further


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--function", "nope"], "Unknown surface 'nope' (expected one of saddle, valley"),
        (["--optimizers", "adamm"], "Unknown optimizer 'adamm'"),
        (["--optimizers", "adam:lr=-1"], "Invalid learning rate"),
        (["--start", "nan,1"], "Invalid start 'nan,1' (expected two finite numbers x,y"),
        (["--start", "1"], "Invalid start '1'"),
        (["--steps", "0"], "Invalid steps: 0 (expected an integer >= 1)"),
        (["--steps", "-5"], "Invalid steps: -5"),
        (["--tol", "0"], "Invalid tol: 0.0"),
        (["--noise", "-1"], "Invalid noise: -1.0"),
        (["--format", "avi"], "Invalid format 'avi' (expected one of gif, mp4, none)"),
        (["--frames", "1"], "Invalid frames: 1 (expected an integer >= 2)"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(run_cli, tmp_path, args, message):
    code, _, err = run_cli("surface", *args, "--out", str(tmp_path / "o"))
    assert code == 2
    assert err.startswith("optimlab: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing is written before the input is checked


def test_mp4_without_ffmpeg_is_a_one_line_error(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    code, _, err = run_cli("surface", "--format", "mp4", "--out", str(tmp_path / "o"))
    assert code == 2 and "--format mp4 needs ffmpeg on the PATH" in err
    assert not (tmp_path / "o").exists()
