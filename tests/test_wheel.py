"""optimlab as people install it: a wheel, in a fresh virtual environment, away from the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    import optimlab

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["COLUMNS"] = "200"
    # build from a copy of the sources, so that the build writes nothing into the checkout
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "--disable-pip-version-check", "-w", str(dist), str(source)], tmp_path, env)
    (wheel,) = dist.glob("optimlab-*.whl")
    assert wheel.name.startswith(f"optimlab-{optimlab.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "optimlab/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    # a fresh venv that sees this environment's dependencies through a .pth line: .pth files in
    # that folder (the editable install's among them) are not processed, so the only optimlab
    # it can import is the wheel's
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     tmp_path, env).strip())
    (site / "optimlab_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
          "--disable-pip-version-check", str(wheel)], tmp_path, env)

    where = _run([str(python), "-c", "import optimlab; print(optimlab.__file__)"], tmp_path, env)
    assert Path(where.strip()).resolve().is_relative_to(venv.resolve())
    optimlab_cli = str(venv / "bin" / "optimlab")
    assert _run([optimlab_cli, "--version"], tmp_path, env).strip() == f"optimlab {optimlab.__version__}"
    assert "iris-softmax" in _run([optimlab_cli, "list", "tasks"], tmp_path, env)
    table = _run([optimlab_cli, "bench", "step", "--params", "20000", "--tensors", "4",
                  "--optimizers", "adam", "--conventions", "pytorch", "--repeats", "3", "--no-torch"],
                 tmp_path, env)
    assert "adam" in table and "pytorch" in table
