"""The report: rebuilt from the store alone, escaped, self-contained, drawn in headless Chromium."""

from __future__ import annotations

import csv
import math

import pytest

from optimlab.lab.compare.report import render_report
from optimlab.lab.compare.summary import SUMMARY_COLUMNS
from optimlab.lab.runspec import EpochRecord
from optimlab.lab.store import Store

HOSTILE = '<img src=x onerror="alert(1)">&</script>'


def _store(out, *, hostile: bool = False) -> None:
    """A store written directly: two optimizers, three seeds, one seed of the second diverged."""
    with Store.open(out) as store:
        store.set_experiment({"task": "toy", "optimizers": ["a", "b"], "epochs": 2, "seeds": 3,
                              "batch_size": 8, "schedule": None})
        for name in ("adam:lr=0.001", HOSTILE if hostile else "sgd:lr=0.1"):
            for seed in range(3):
                rid = f"toy|{name}|seed={seed}"
                store.begin_run(rid, task="toy", optimizer=name, seed=seed, config={},
                                source=HOSTILE if hostile else "synthetic")
                if name != "adam:lr=0.001" and seed == 2:
                    steps = [(1, 2.0, 0.01), (2, 40.0, 0.02), (3, math.nan, 0.03)]
                    store.write_progress(rid, steps=steps, epochs=[], wall_time_s=0.03, step_time_share=0.4,
                                         status="diverged", diverged_step=3)
                    continue
                steps = [(s, 2.0 / (s + seed), 0.01 * s) for s in range(1, 9)]
                epochs = [EpochRecord(e, 1.0 / e, 1.1 / e, 0.5 + 0.1 * e + 0.01 * seed, 0.04 * e, 4 * e)
                          for e in (1, 2)]
                store.write_progress(rid, steps=steps, epochs=epochs, wall_time_s=0.08 + seed,
                                     step_time_share=0.25, status="finished")


def test_summary_csv_has_exactly_the_columns_and_means_over_finished_runs(tmp_path):
    _store(tmp_path)
    rows = render_report(tmp_path, figures=False)
    with open(tmp_path / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0].keys()) == SUMMARY_COLUMNS
    adam, sgd = table
    assert adam["optimizer"] == "adam:lr=0.001" and adam["seeds"] == "3" and adam["diverged_runs"] == "0"
    assert float(adam["test_accuracy_mean"]) == pytest.approx(0.71)
    assert float(adam["wall_time_s_mean"]) == pytest.approx(1.08)
    # t(0.975, 2) * sd / sqrt(3) with accuracies 0.70, 0.71, 0.72
    assert float(adam["test_accuracy_ci95"]) == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    assert (sgd["seeds"], sgd["diverged_runs"]) == ("3", "1")
    assert float(sgd["test_accuracy_mean"]) == pytest.approx(0.705)  # seeds 0 and 1 only
    assert rows[1].diverged_at == [(2, 3)]


def test_report_escapes_user_strings_and_is_reproducible(tmp_path):
    _store(tmp_path, hostile=True)
    render_report(tmp_path, figures=False)
    first = (tmp_path / "report.html").read_bytes()
    page = first.decode("utf-8")
    assert HOSTILE not in page and "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&lt;/script&gt;" in page
    assert "seed 2 at step 3" in page
    assert "https://" not in page.split("<script>", 1)[0]  # nothing fetched: plotly.js is inline
    render_report(tmp_path, figures=False)
    assert (tmp_path / "report.html").read_bytes() == first


@pytest.mark.chromium
def test_report_opens_in_headless_chromium_with_drawn_charts(tmp_path, browser):
    _store(tmp_path)
    render_report(tmp_path, figures=True)
    errors, dom = browser(tmp_path / "report.html")
    assert errors == []
    assert dom.count('class="main-svg"') >= 8  # four charts, two svg layers each
    assert "diverged at step 3" in dom  # the diverged run's legend entry was drawn
    for name in ("loss.png", "loss_time.png", "accuracy.png", "step_share.png"):
        assert (tmp_path / name).stat().st_size > 1000
