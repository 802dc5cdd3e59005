"""tune -> compare as one path (``optimlab compare --tuned-from``), and a comparison that says
what it compares: where its hyperparameters come from and the effective step of momentum."""

from __future__ import annotations

import csv
import math
import re

import pytest
from synthetic import add_all

from optimlab import lab
from optimlab.lab.compare.plan import GIVEN_SETTINGS, effective_lr
from optimlab.lab.errors import UserError
from optimlab.lab.spec import parse_spec


@pytest.mark.parametrize(("spec", "expected"), [
    ("sgd:lr=0.1", 0.1),
    ("momentum:lr=0.01", 0.1),  # heavy ball, momentum 0.9: ten times its lr
    ("nag:lr=0.01,momentum=0.9", 0.1),
    ("momentum:lr=0.01@keras", 0.1),  # velocity form: the same steady step
    ("momentum:lr=0.1,form=ema", 0.1),  # the EMA averages: no amplification
    ("momentum:lr=0.01,momentum=0.5,dampening=0.5", 0.01),
    ("adam:lr=0.001", 0.001),
    ("torch.optim:SGD:lr=0.01,momentum=0.9", 0.1),  # a class by reference: its own defaults
    ("torch.optim:Adam", 0.001),
])
def test_effective_step_of_momentum_methods(spec, expected):
    assert math.isclose(effective_lr(parse_spec(spec).phases[0]), expected, rel_tol=1e-12)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    with pytest.MonkeyPatch.context() as mp:
        add_all(mp)
        result = lab.tune(task="synth-blobs", optimizers="sgd,momentum", budget=2, epochs=1,
                          seeds=1, out=out, heartbeat_interval=1, grace_period=2)
    return out, result


def test_compare_runs_what_the_study_selected_and_says_so(study, tmp_path):
    tune_out, tuned = study
    out = tmp_path / "cmp"
    result = lab.compare(task="synth-blobs", tuned_from=tune_out, seeds=1, out=out, jobs=1)
    best = {o: tuned.results.results[("synth-blobs", o)].best.user_attrs["spec"]
            for o in ("sgd", "momentum")}
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["optimizer"] for r in rows] == [best["sgd"], best["momentum"]]
    assert result.config["epochs"] == 1  # the study's epochs: what the choice was made for
    assert result.config["hyperparameters"].startswith("tuned: each optimizer's best of 2")
    momentum = rows[1]
    assert math.isclose(float(momentum["effective_lr"]), float(momentum["lr"]) / (1 - 0.9))
    page = (out / "report.html").read_text()
    assert "tuned: each optimizer&#x27;s best of 2 complete trials" in page


def test_an_untuned_comparison_says_it_is_untuned(tmp_path):
    result = lab.compare(task="synth-blobs", optimizers="sgd:lr=0.1,momentum:lr=0.01",
                         seeds=1, epochs=1, out=tmp_path, jobs=1)
    assert result.config["hyperparameters"] == GIVEN_SETTINGS
    assert "untuned" in (tmp_path / "report.html").read_text()
    seeded = lab.compare(task="synth-blobs", seeds=1, epochs=1, out=tmp_path / "s", jobs=1)
    assert seeded.config["hyperparameters"].startswith("the seeds' fixed settings")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"optimizers": "sgd"}, "Give either --optimizers or --tuned-from, not both"),
    ({"task": "synth-leaky"}, "did not tune task 'synth-leaky' (it tuned synth-blobs)"),
])
def test_tuned_from_mistakes_are_one_line(study, tmp_path, kwargs, message):
    args = {"task": "synth-blobs", "tuned_from": study[0], "out": tmp_path / "x", **kwargs}
    with pytest.raises(UserError, match=re.escape(message)):
        lab.compare(**args)
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="No tuning study in"):
        lab.compare(task="synth-blobs", tuned_from=tmp_path, out=tmp_path / "y")
