"""``optimlab claims`` on a reduced configuration, through the same code path as the default:
verdict rules, a planted false claim, determinism for a seed, the CSV, the page and the CLI."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from optimlab.lab.claims import (
    CLAIMS,
    EXPERIMENTS,
    Claim,
    Scale,
    SurfaceExperiment,
    TrainingExperiment,
    run_claims,
    write_outputs,
)
from optimlab.lab.claims.catalog import check, ratio_above
from optimlab.lab.claims.run import CSV_COLUMNS, rows
from optimlab.lab.claims.verdicts import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    above,
    combine,
    within,
)
from optimlab.lab.errors import UserError
from optimlab.lab.stats import Interval

#: every experiment of the catalog, shrunk: 2 learning rates, 1 epoch, 2 seeds, 2 starts
SMALL = Scale(seeds=2, tune_seeds=1, replicates=1, grid_points=2, epochs=1, starts=2,
              per_decade=1, surface_steps=30)

#: the saddle on a coarse grid: enough to tell which optimizer escapes first
SADDLE = SurfaceExperiment("saddle-small", "saddle", ("sgd", "rmsprop"), steps=80,
                           x_range=(0.5, 1.5), y_range=(1e-4, 1e-2), y_log=True,
                           lr_low=1e-2, lr_high=1.0, per_decade=2)

HOSTILE = '<img src=x onerror="alert(1)">&</script>'


def _iv(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 0.95, 5)


@pytest.mark.parametrize(("test", "low", "high", "verdict"), [
    (above(0.0), 0.1, 0.3, HOLDS),
    (above(0.0), -0.3, -0.1, DOES_NOT_HOLD),
    (above(0.0), -0.1, 0.3, INCONCLUSIVE),
    (above(0.0, 0.5), 0.1, 0.3, HOLDS),  # significant, even if small
    (above(0.0, 0.5), -0.1, 0.3, DOES_NOT_HOLD),  # any advantage is below the margin that counts
    (above(0.0, 0.5), -0.1, 0.7, INCONCLUSIVE),
    (above(-0.5), -0.4, 0.2, HOLDS),  # non-inferiority within the margin
    (within(1.0), -0.5, 0.9, HOLDS),
    (within(1.0), 1.2, 1.5, DOES_NOT_HOLD),
    (within(1.0), 0.5, 1.5, INCONCLUSIVE),
    (above(0.0), math.nan, math.nan, INCONCLUSIVE),
])
def test_verdict_rules(test, low, high, verdict):
    assert test.decide(_iv(low, high)) == verdict


def test_a_claim_holds_only_when_every_check_holds():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([HOLDS, INCONCLUSIVE, DOES_NOT_HOLD]) == DOES_NOT_HOLD


def test_a_planted_false_claim_does_not_hold():
    planted = Claim("planted", "SGD escapes a saddle at least as fast as RMSProp.", "none",
                    "saddle-small", (check("RMSProp needs as many steps as SGD", "escape_ratio",
                                           ratio_above(1.0), a="rmsprop", b="sgd"),))
    real = next(c for c in CLAIMS if c.id == "rmsprop-escapes-saddle")
    real = Claim(real.id, real.text, real.seed, "saddle-small", real.checks)
    report = run_claims([planted, real], Scale(starts=5), experiments={"saddle-small": SADDLE})
    verdicts = {r.claim.id: r.verdict for r in report.claims}
    assert verdicts == {"planted": DOES_NOT_HOLD, "rmsprop-escapes-saddle": HOLDS}


TINY = TrainingExperiment("tiny", "iris-softmax", ("sgd", "adam"), epochs=2, grid_points=2,
                          fixed=(("adam-default", "adam:lr=0.001"),))
TINY_CLAIM = Claim("tiny", HOSTILE, "001", "tiny", (
    check("Adam beats SGD " + HOSTILE, "accuracy_difference", above(0.0), a="adam", b="sgd"),
    check("early loss", "loss_ratio", ratio_above(1.0), a="sgd", b="adam-default", part="early"),
))


def test_rows_are_deterministic_for_a_seed_whatever_the_jobs():
    scale = Scale(seeds=3, tune_seeds=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI runs: workers are then forked, not spawned
    try:
        first = rows(run_claims([TINY_CLAIM], scale, experiments={"tiny": TINY}))
        again = rows(run_claims([TINY_CLAIM], scale, experiments={"tiny": TINY}, jobs=2))
        other = rows(run_claims([TINY_CLAIM], Scale(seed=5, seeds=3, tune_seeds=1),
                                experiments={"tiny": TINY}))
    finally:
        torch.set_num_threads(threads)
    assert first == again
    assert [r["estimate"] for r in first] != [r["estimate"] for r in other]
    assert list(first[0]) == list(CSV_COLUMNS)


def test_a_claim_comparing_what_its_experiment_does_not_run_is_refused():
    bad = Claim("bad", "x", "000", "tiny", (check("x", "accuracy_difference", above(0.0),
                                                  a="nadam", b="sgd"),))
    with pytest.raises(UserError, match="names 'nadam', which experiment 'tiny' does not run"):
        run_claims([bad], experiments={"tiny": TINY})


@pytest.fixture(scope="module")
def catalog_report(tmp_path_factory):
    """Every claim of the catalog on the reduced scale, written out once for the tests below."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI runs
    try:
        report = run_claims(CLAIMS, SMALL)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("claims")
    return report, write_outputs(report, out)


def test_every_claim_of_the_catalog_runs_and_is_written(catalog_report):
    report, (csv_path, html_path) = catalog_report
    assert set(report.experiments) == set(EXPERIMENTS)
    with open(csv_path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["claim_id"] for r in table] == [c.id for c in CLAIMS for _ in c.checks]
    assert {r["verdict"] for r in table} <= {HOLDS, DOES_NOT_HOLD, INCONCLUSIVE}
    for r in table:
        assert r["evidence"] and r["test"].startswith("holds if")
    page = html_path.read_text(encoding="utf-8")
    assert "https://" not in page.split("<script>", 1)[0]  # plotly.js is inline: works offline
    for c in CLAIMS:
        assert f'id="{c.id}"' in page


def test_user_strings_are_escaped_on_the_page(tmp_path):
    report = run_claims([TINY_CLAIM], Scale(seeds=2, tune_seeds=1, replicates=1),
                        experiments={"tiny": TINY})
    _, html_path = write_outputs(report, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    assert HOSTILE not in page and "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&lt;/script&gt;" in page


@pytest.mark.chromium
def test_the_page_renders_offline_in_chromium(catalog_report, browser):
    _, (_, html_path) = catalog_report
    errors, dom = browser(html_path)
    assert errors == []
    n_checks = sum(len(c.checks) for c in CLAIMS)
    assert dom.count('class="main-svg"') >= 2 * n_checks  # one chart per check, two svg layers


def test_cli_lists_the_claims_and_refuses_unknown_ones(run_cli):
    code, out, _ = run_cli("claims", "--list")
    assert code == 0 and "adagrad-stalls" in out and "nadam-matches-adam" in out
    code, out, err = run_cli("claims", "--only", "nope")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("optimlab: error: Unknown claim nope (expected one or more of")
    code, _, err = run_cli("claims", "--seeds", "1")
    assert code == 2 and "Invalid seeds 1" in err


def test_cli_refuses_a_folder_that_is_not_optimlabs_before_running(run_cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _out, err = run_cli("claims", "--only", "rmsprop-escapes-saddle", "--out", str(tmp_path))
    assert code == 2 and err.startswith("optimlab: error: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_checks_counts_and_data_before_it_makes_the_folder(run_cli, tmp_path):
    out = tmp_path / "new"
    for args in (("--jobs", "0"), ("--jobs", "-1"), ("--starts", str(10**7)),
                 ("--data-dir", str(tmp_path / "missing"))):
        code, _out, err = run_cli("claims", "--only", "lr-matters-most", "--out", str(out), *args)
        assert code == 2 and err.startswith("optimlab: error: ") and err.count("\n") == 1, (args, err)
        assert not out.exists(), args


def test_written_outputs_are_recorded_in_the_folder_manifest(tmp_path):
    report = run_claims([TINY_CLAIM], Scale(seeds=2, tune_seeds=1, replicates=1),
                        experiments={"tiny": TINY})
    write_outputs(report, tmp_path / "c")
    again = write_outputs(report, tmp_path / "c")  # optimlab's own folder: rewritten in place
    assert {p.name for p in again} == {"claims.csv", "claims.html"}
    assert "optimlab.json" in {p.name for p in (tmp_path / "c").iterdir()}


@pytest.mark.chromium
@pytest.mark.parametrize("width", (390, 1400))
def test_the_page_fits_390_and_1400_px_in_the_pages_look(catalog_report, layout_at, width):
    _, (_, html_path) = catalog_report
    page = html_path.read_text(encoding="utf-8")
    assert 'class="card provenance"' in page and "Reproduce with" in page  # command, versions, date
    layout = layout_at(html_path, width)
    assert layout.errors == []
    assert layout.scroll_width <= layout.inner_width, f"the claims page overflows at {width} px"
    assert layout.charts
    for chart in layout.charts:  # each chart shrinks to its card
        assert chart["svg"] is not None and chart["svg"] <= chart["box"] + 1, chart
