"""optimlab.lab.tune(): the whole workflow as one call, and every bad option refused before the
storage or the output folder is touched."""

from __future__ import annotations

import csv

import pytest
from synthetic import add_all

from optimlab import lab
from optimlab.lab.errors import UserError
from optimlab.lab.tune import TuneListener

#: a small study: one optimizer, one trial of one epoch, one final seed
SMALL = {"task": "synth-blobs", "optimizers": "sgd", "budget": 1, "epochs": 1, "seeds": 1,
         "heartbeat_interval": 1, "grace_period": 2}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    events = []

    class Listener(TuneListener):
        def study_ready(self, study, storage, config):
            events.append(("ready", study, storage))

        def trials(self, done, total):
            events.append(("trials", done, total))

        def finals(self, done, total):
            events.append(("finals", done, total))

    with pytest.MonkeyPatch.context() as mp:
        add_all(mp)
        result = lab.tune(**SMALL, out=out, listener=Listener())
    return out, result, events


def test_tune_returns_its_table_and_the_files_it_wrote(tuned):
    out, result, events = tuned
    assert [p.name for p in result.paths] == ["report.html", "tune_summary.csv"]
    with open(out / "tune_summary.csv", newline="") as f:
        assert result.table() == list(csv.DictReader(f))
    (row,) = result.table()
    assert (row["task"], row["optimizer"], row["trials_complete"]) == ("synth-blobs", "sgd", "1")
    assert result.storage == f"sqlite:///{(out / 'tune.db').resolve()}"
    assert ("ready", "optimlab-tune", result.storage) in events
    assert ("trials", 1, 1) in events and ("finals", 1, 1) in events


BAD_OPTIONS = [
    ({"budget": 0}, "Invalid budget 0"),
    ({"space": "grid"}, "Unknown search space 'grid'"),
    ({"validation_fraction": 1.0}, "Invalid validation fraction 1.0"),
    ({"optimizers": "adamz"}, "Unknown optimizer 'adamz'"),
    ({"optimizers": "adam@2+sgd"}, "Cannot tune the multi-phase spec"),
    ({"task": "nope"}, "Unknown task 'nope'"),
    ({"heartbeat_interval": 5, "grace_period": 5}, "Invalid grace period 5"),
    ({"workers": -1}, "Invalid workers -1"),
    ({"threads": 0}, "Invalid threads 0"),
    ({"lr_range": "1:0.1"}, "Invalid lr range '1:0.1'"),
    ({"epochs": 0}, "Invalid epochs 0"),
    ({"seeds": 0}, "Invalid seeds 0"),
    ({"batch_size": "half"}, "Invalid batch size 'half'"),
    ({"storage": "ftp://user:pw@host/x"}, "Invalid storage 'ftp://user:\\*\\*\\*@host/x'"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_a_bad_option_leaves_an_existing_output_folder_byte_identical(
    tuned, snapshot, options, message
):
    out = tuned[0]
    before = snapshot(out)
    assert "tune.db" in before and "report.html" in before
    with pytest.raises(UserError, match=message):
        lab.tune(**{**SMALL, **options}, out=out)
    assert snapshot(out) == before
