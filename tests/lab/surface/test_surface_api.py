"""optimlab.lab.surface(): the command as one call, and every bad option refused before anything
is run or written."""

from __future__ import annotations

import csv

import pytest

from optimlab import lab
from optimlab.lab.errors import UserError
from optimlab.lab.outdir import verify

SMALL = {"function": "valley", "optimizers": "sgd:lr=0.1,adam:lr=0.3", "steps": 8, "fmt": "none"}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    out = tmp_path_factory.mktemp("drawn")
    return out, lab.surface(**SMALL, out=out)


def test_surface_returns_its_table_and_the_files_it_wrote(drawn):
    out, result = drawn
    assert sorted(p.name for p in result.paths) == ["valley.csv", "valley.html", "valley.png"]
    # beside them only optimlab's manifest and lock, which list them as optimlab's own
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in result.paths),
                                                            ".optimlab.lock", "optimlab.json"])
    assert set(verify(out, "surface")["files"]) >= {p.name for p in result.paths}
    with open(out / "valley.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert result.table() == [{"surface": "valley", **r} for r in rows]
    assert [r["optimizer"] for r in rows] == ["sgd:lr=0.1", "adam:lr=0.3"]


BAD_OPTIONS = [
    ({"function": "nope"}, "Unknown surface 'nope'"),
    ({"function": ","}, "No surface given"),
    ({"optimizers": "adamm"}, "Unknown optimizer 'adamm'"),
    ({"optimizers": "adam:lr=-1"}, "Invalid learning rate"),
    ({"optimizers": ","}, "No optimizers given"),
    ({"start": "nan,1"}, "Invalid start 'nan,1'"),
    ({"start": (1.0,)}, "Invalid start"),
    ({"steps": 0}, "Invalid steps: 0"),
    ({"tol": 0}, "Invalid tol: 0"),
    ({"noise": -1.0}, "Invalid noise: -1.0"),
    ({"fmt": "avi"}, "Invalid format 'avi'"),
    ({"frames": 1}, "Invalid frames: 1"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_a_bad_option_leaves_an_existing_output_folder_byte_identical(
    drawn, snapshot, options, message
):
    out = drawn[0]
    before = snapshot(out)
    with pytest.raises(UserError, match=message):
        lab.surface(**{**SMALL, **options}, out=out)
    assert snapshot(out) == before
