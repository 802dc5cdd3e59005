"""optimlab tune in one process: spaces, equal budgets, no test-set leak, determinism, report, CLI.

The synthetic tasks (``synthetic.py``) are registered for every test here (``conftest.py``).
"""

from __future__ import annotations

import csv
import json
import math

import pytest
from synthetic import add_all, make_study

from optimlab.lab.errors import UserError
from optimlab.lab.runspec import RunSpec
from optimlab.lab.spec import parse_spec
from optimlab.lab.tune.config import STORAGE_ENV, TuneConfig
from optimlab.lab.tune.finals import best_trial, run_finals
from optimlab.lab.tune.results import load_results
from optimlab.lab.tune.space import SPACES, dimensions, hyperparameters, parse_lr_range, trial_spec
from optimlab.lab.tune.storage import (
    complete_count,
    counts,
    create_study,
    default_storage_url,
    mask_url,
    open_storage,
    scrub,
)
from optimlab.lab.tune.worker import _claim, work


def finished_states(storage, sub: str) -> list[str]:
    return [t.state.name for t in storage.get_all_trials(storage.get_study_id_from_name(sub))]


# ---- search spaces ----------------------------------------------------------------------------------
def test_every_registered_optimizer_has_a_declared_space_in_both_protocols():
    from optimlab.optim import available

    for space in SPACES.values():
        assert set(space.dimensions) == set(available()), space.name
        assert space.source
        for name, dims in space.dimensions.items():
            assert dims[0].name == "lr" and dims[0].log, name
            for d in dims:
                assert 0 < d.low < d.high, (name, d)
    assert [d.name for d in SPACES["lr-only"].dimensions["adam"]] == ["lr"]
    full_adam = [d.name for d in SPACES["full"].dimensions["adam"]]
    assert full_adam == ["lr", "one_minus_beta1", "one_minus_beta2", "eps"]  # Choi et al.: eps too


def test_sampled_values_map_to_valid_optimizer_hyperparameters():
    phase = parse_spec("adam").phases[0]
    dims = dimensions("full", phase)
    # the corners of the space must all build valid optimizers
    for corner in ("low", "high"):
        values = {d.name: getattr(d, corner) for d in dims}
        spec = trial_spec(phase, hyperparameters(phase, dims, values))
        parsed = parse_spec(spec.label()).phases[0].hyperparameters
        assert parsed["betas"] == (1 - values["one_minus_beta1"], 1 - values["one_minus_beta2"])
        assert parsed["eps"] == values["eps"] and parsed["lr"] == values["lr"]
    for name in ("momentum", "nag", "adadelta", "rmsprop", "adagrad", "nadam", "adamax"):
        p = parse_spec(name).phases[0]
        d = dimensions("full", p)
        for corner in ("low", "high"):
            parse_spec(trial_spec(p, hyperparameters(
                p, d, {x.name: getattr(x, corner) for x in d})).label())


def test_hyperparameters_fixed_by_the_spec_are_not_tuned_and_lr_range_overrides():
    phase = parse_spec("adam:betas=0.9/0.99@keras").phases[0]
    dims = dimensions("full", phase, lr_range=(1e-5, 1e2))
    assert [d.name for d in dims] == ["lr", "eps"]
    assert (dims[0].low, dims[0].high) == (1e-5, 1e2)
    spec = trial_spec(phase, hyperparameters(phase, dims, {"lr": 0.01, "eps": 1e-3}))
    assert spec.label() == "adam:betas=0.9/0.99,lr=0.01,eps=0.001@keras"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": 0}, "Invalid budget 0"),
    ({"space": "grid"}, "Unknown search space 'grid'"),
    ({"validation_fraction": 0.0}, "Invalid validation fraction 0.0"),
    ({"optimizers": "adam@2+sgd"}, "Cannot tune the multi-phase spec"),
    ({"optimizers": "adam,sgd,adam"}, "listed twice"),
    ({"tasks": ["nope"]}, "Unknown task 'nope'"),
    ({"heartbeat_interval": 5, "grace_period": 5}, "Invalid grace period 5"),
])
def test_bad_configurations_fail_with_one_line(kwargs, message):
    args = {"tasks": ["synth-blobs"], "optimizers": "sgd"}
    args.update(kwargs)
    with pytest.raises(UserError, match=message) as info:
        TuneConfig.create(**args)
    assert "\n" not in str(info.value)


def test_parse_lr_range():
    assert parse_lr_range("1e-5:1e2") == (1e-5, 100.0)
    for bad in ("1e-2", "1:0.1", "0:1", "a:b"):
        with pytest.raises(UserError, match="Invalid lr range"):
            parse_lr_range(bad)


# ---- passwords ------------------------------------------------------------------------------------
def test_passwords_are_masked_in_urls_and_scrubbed_from_messages():
    url = "postgresql://tuner:s3cr%40t@db.example:5432/optimlab"
    assert mask_url(url) == "postgresql://tuner:***@db.example:5432/optimlab"
    text = f"could not connect to {url}; password s3cr@t rejected"
    scrubbed = scrub(text, url)
    assert "s3cr" not in scrubbed and "tuner:***@db.example" in scrubbed
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_an_unreachable_server_is_one_line_without_the_password():
    url = "postgresql://tuner:hunter2@127.0.0.1:1/optimlab"
    with pytest.raises(UserError) as info:
        open_storage(url)
    message = str(info.value)
    assert "hunter2" not in message and "tuner:***@127.0.0.1:1" in message
    assert "\n" not in message
    with pytest.raises(UserError, match="Invalid storage 'ftp://u:\\*\\*\\*@h/x'"):
        open_storage("ftp://u:pw@h/x")


# ---- budgets --------------------------------------------------------------------------------------
def test_every_optimizer_gets_exactly_the_budget_and_no_worker_exceeds_it(tmp_path):
    url, cfg = make_study(tmp_path, optimizers="sgd,momentum,adam", budget=3)
    first = work(url, "s")
    assert len(first.trials) == 9
    storage = open_storage(url)
    for sub, _, _ in cfg.studies("s"):
        c = counts(storage, sub)
        assert complete_count(storage, sub) == c["COMPLETE"] == 3, (sub, c)
        assert c["PRUNED"] == c["WAITING"] == c["RUNNING"] == c["FAIL"] == 0  # 2 epochs: no pruning
        slots = sorted(t.user_attrs["slot"] for t in storage.get_all_trials(
            storage.get_study_id_from_name(sub)))
        assert slots == [0, 1, 2]
    # the budget is met: another worker finds nothing to run and creates no trial
    assert work(url, "s").trials == []
    assert sum(len(finished_states(storage, sub)) for sub, _, _ in cfg.studies("s")) == 9
    # the budget is part of the study: reopening it with another budget is refused
    other = TuneConfig.create(tasks=["synth-blobs"], optimizers="sgd,momentum,adam",
                                   budget=4, epochs=2, seeds=2, heartbeat_interval=1,
                                   grace_period=2)
    with pytest.raises(UserError, match="budget: 3 -> 4"):
        create_study(storage, "s", other)


def test_one_worker_with_the_same_seed_replays_the_same_trials(tmp_path):
    params = []
    for folder in ("a", "b"):
        url, cfg = make_study(tmp_path / folder, space="full", optimizers="adam", epochs=1)
        work(url, "s")
        storage = open_storage(url)
        params.append([(t.params, t.state.name, t.value)
                       for sub, _, _ in cfg.studies("s")
                       for t in storage.get_all_trials(storage.get_study_id_from_name(sub))])
    assert params[0] == params[1]
    url, cfg = make_study(tmp_path / "c", space="full", optimizers="adam", epochs=1, seed=1)
    work(url, "s")
    storage = open_storage(url)
    other = [t.params for sub, _, _ in cfg.studies("s")
             for t in storage.get_all_trials(storage.get_study_id_from_name(sub))]
    assert other != [p for p, _, _ in params[0]]


def test_concurrent_claims_on_sqlite_give_each_waiting_trial_to_exactly_one_worker(tmp_path):
    # four connections race over 60 waiting trials; with Python's lazy sqlite3 transactions
    # (plain RDBStorage) about a third of the trials are claimed twice, BEGIN IMMEDIATE fixes it
    import threading

    import optuna

    url = default_storage_url(tmp_path)
    storage = open_storage(url)
    study = optuna.create_study(study_name="race", storage=storage)
    for slot in range(60):
        study.enqueue_trial({}, user_attrs={"slot": slot})
    study_id = storage.get_study_id_from_name("race")
    claims: list[int] = []
    barrier = threading.Barrier(4)

    def claim_all() -> None:
        mine = open_storage(url)
        barrier.wait()
        while (trial_id := _claim(mine, study_id)) is not None:
            claims.append(trial_id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claims) == 60 and len(set(claims)) == 60


# ---- the test split is never used for selection ---------------------------------------------------
def test_tuning_never_reads_the_test_split(tmp_path):
    url, _cfg = make_study(tmp_path, tasks=["synth-poisoned"], optimizers="sgd", budget=3)
    work(url, "s")  # any read of the poisoned test tensors would fail a trial
    storage = open_storage(url)
    assert counts(storage, "s/synth-poisoned/sgd")["FAIL"] == 0
    assert complete_count(storage, "s/synth-poisoned/sgd") == 3


def test_selection_follows_validation_even_when_test_labels_favour_another_config(tmp_path):
    from optimlab.lab import runner

    url, cfg = make_study(tmp_path, tasks=["synth-leaky"], optimizers="sgd", budget=4,
                          lr_range=(1e-4, 3.0))
    work(url, "s")
    storage = open_storage(url)
    sub = "s/synth-leaky/sgd"
    trials = [t for t in storage.get_all_trials(storage.get_study_id_from_name(sub))
              if t.state.name == "COMPLETE"]
    best = best_trial(storage, sub)
    assert best.value == max(t.value for t in trials)
    # what the (planted, wrong) test labels would have chosen: a different configuration
    test_acc = {}
    for t in trials:
        result = runner.run(RunSpec("synth-leaky", t.user_attrs["spec"], seed=cfg.seed,
                                           epochs=cfg.epochs))
        test_acc[t.number] = result.epochs[-1].test_accuracy
    leak_choice = max(test_acc, key=test_acc.get)
    assert leak_choice != best.number, "the planted test labels must favour another config"
    assert test_acc[best.number] < test_acc[leak_choice]


# ---- pruning and divergence -----------------------------------------------------------------------
def test_diverged_trials_score_zero_count_against_the_budget_and_are_never_the_best(tmp_path):
    url, _cfg = make_study(tmp_path, tasks=["synth-mse"], optimizers="sgd", budget=3,
                           lr_range=(1e3, 1e5))
    work(url, "s")
    storage = open_storage(url)
    trials = storage.get_all_trials(storage.get_study_id_from_name("s/synth-mse/sgd"))
    # a divergence is an outcome, not a trial to replace: three evaluations, all of score 0
    assert [(t.state.name, t.value) for t in trials] == [("COMPLETE", 0.0)] * 3
    assert all(t.user_attrs["status"] == "diverged" and t.user_attrs["diverged_step"] >= 1
               for t in trials)
    assert best_trial(storage, "s/synth-mse/sgd") is None


def test_pruning_is_off_with_two_epochs(tmp_path):
    # a wide lr range: half its trials would fall below the median after epoch 1
    url, cfg = make_study(tmp_path, optimizers="sgd", budget=4, epochs=2, lr_range=(1e-4, 10.0))
    work(url, "s")
    storage = open_storage(url)
    c = counts(storage, "s/synth-blobs/sgd")
    assert c["PRUNED"] == 0 and c["COMPLETE"] == cfg.budget


def test_six_epochs_prune_nothing_before_epoch_3_and_keep_the_budget_of_complete_trials(tmp_path):
    from optimlab.lab.tune.worker import MAX_PRUNED_PER_SLOT

    url, cfg = make_study(tmp_path, optimizers="sgd", budget=5, epochs=6, lr_range=(1e-5, 30.0))
    work(url, "s")
    storage = open_storage(url)
    pruned_any = False
    for sub, _, _ in cfg.studies("s"):
        trials = storage.get_all_trials(storage.get_study_id_from_name(sub))
        pruned = [t for t in trials if t.state.name == "PRUNED"]
        pruned_any = pruned_any or bool(pruned)
        for t in pruned:  # stopped at epoch 3 or later, with its curve so far
            assert 3 <= max(t.intermediate_values) < 6
            assert list(t.intermediate_values) == [p[0] for p in t.user_attrs["curve"]]
            assert t.user_attrs.get("pruned_before", 0) < MAX_PRUNED_PER_SLOT
        # every pruned trial's slot got a new trial: exactly the budget of complete ones
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        assert len(complete) == complete_count(storage, sub) == cfg.budget
        assert sorted(t.user_attrs["slot"] for t in complete) == list(range(cfg.budget))
        assert all(len(t.intermediate_values) == 6 for t in complete)
    assert pruned_any, "the study should have pruned some trial (else this test shows nothing)"


# ---- final runs, report and CLI -------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """Two tasks x two optimizers, tuned and evaluated over 2 seeds (shared by the report tests)."""
    tmp = tmp_path_factory.mktemp("study")
    name = '<script>alert("x")</script>'
    with pytest.MonkeyPatch.context() as mp:
        add_all(mp)
        url, cfg = make_study(tmp, name=name, tasks=["synth-blobs", "synth-leaky"], budget=2,
                              seeds=2, epochs=1)
        work(url, name)
        storage = open_storage(url)
        run_finals(storage, name, cfg)
    return tmp, storage, name, cfg


def test_final_runs_use_the_best_config_over_seeds_on_the_test_split(finished_study):
    from optimlab.lab import runner

    _, storage, name, cfg = finished_study
    results = load_results(storage, name)
    r = results.results[("synth-blobs", "adam")]
    assert [f["seed"] for f in r.finals] == [1, 2]  # never the trials' seed 0
    assert {f["spec"] for f in r.finals} == {r.best.user_attrs["spec"]}
    # AlgoPerf's protocol: trained without the validation split, evaluated on it at a fixed
    # interval of steps, then tested once on the test split
    spec = RunSpec("synth-blobs", r.best.user_attrs["spec"], seed=2, epochs=cfg.epochs,
                   validation_fraction=cfg.validation_fraction)
    again = runner.run(spec, evaluate_every=r.finals[1]["eval_interval"], test_at_end=True)
    assert r.finals[1]["test_accuracy"] == again.final_test[1]
    assert [e[0] for e in r.finals[1]["evaluations"]] == [e.step for e in again.evaluations]
    interval, steps = r.finals[1]["eval_interval"], r.finals[1]["steps"]
    assert 1 <= interval < steps  # several evaluations an epoch, not one
    assert [e[0] for e in r.finals[1]["evaluations"]] == [
        k for k in range(1, steps + 1) if k % interval == 0 or k == steps]
    # run_finals resumes: nothing left to run
    calls = []
    run_finals(storage, name, cfg, progress=lambda d, t: calls.append(t))
    assert calls == [0]


def test_report_csv_and_html(finished_study, browser):
    from optimlab.lab.tune.report import write_report
    from optimlab.lab.tune.results import CSV_COLUMNS, summarize

    tmp, storage, name, cfg = finished_study
    results = load_results(storage, name)
    html_path, csv_path = write_report(results, tmp / "out")
    rows = list(csv.DictReader(csv_path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["task"], r["optimizer"]) for r in rows] == [
        ("synth-blobs", "sgd"), ("synth-blobs", "adam"), ("synth-leaky", "sgd"),
        ("synth-leaky", "adam")]
    for r in rows:
        assert r["budget"] == r["trials_complete"] == "2" and r["trials_pruned"] == "0"
        assert float(r["lr_low"]) < float(r["lr_high"])
        assert json.loads(r["search_space"])["lr"] == [float(r["lr_low"]), float(r["lr_high"])]
        curve = json.loads(r["expected_best_by_trials"])
        assert len(curve) == 2 and curve[0] <= curve[1]
        assert math.isclose(curve[1], float(r["best_validation_accuracy"]), abs_tol=1e-6)
        assert r["seeds_finished"] == "2"
        # time-to-target per final seed: a median step, or "inf" with the seeds that reached it
        reached = int(r["seeds_reached_target"])
        assert 0 <= reached <= 2 and int(r["steps_run"]) > 0
        assert (r["steps_to_target_median"] != "inf") == (reached == 2)  # median of 2 seeds
    summaries = summarize(results)
    for s in summaries:
        assert s.verdict.line().startswith(f"{s.task}: ")
        # the synthetic tasks declare no target: 0.99 x the best any final run reached
        assert s.target_source == "relative"
        assert math.isclose(s.target, 0.99 * max(
            e[1] for o in cfg.optimizers for f in results.results[(s.task, o)].finals
            for e in f["evaluations"]))
    text = html_path.read_text()
    assert '<script>alert("x")</script>' not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    errors, dom = browser(html_path)
    assert errors == []
    # per task: one lr-sensitivity panel per optimizer (2), expected best by trials, the final
    # runs' validation curves; two tasks: 2 performance profiles
    assert dom.count('class="plot-container plotly"') == 10
    assert "Learning-rate sensitivity: synth-blobs" in dom


@pytest.mark.chromium
def test_report_fits_390_and_1400_px_in_the_pages_look(finished_study, layout_at):
    from optimlab.lab import pages
    from optimlab.lab.tune.report import render_html, write_report
    from optimlab.lab.tune.results import summarize

    tmp, storage, name, _ = finished_study
    results = load_results(storage, name)
    html_path, _ = write_report(results, tmp / "look")
    for width in (390, 1400):
        layout = layout_at(html_path, width)
        assert layout.errors == [] and layout.scroll_width <= layout.inner_width == width
        assert all(c["svg"] is not None and c["svg"] <= c["box"] + 1 for c in layout.charts)
    charts = pages.page_charts(html_path.read_text(encoding="utf-8"))
    panels = [c for c in charts if c["id"].startswith("sensitivity-synth-blobs")]
    assert len(panels) == 2  # small multiples: one panel per optimizer, no legend to read
    assert {p["layout"]["showlegend"] for p in panels} == {False}
    assert len({tuple(p["layout"]["yaxis"]["range"]) for p in panels}) == 1  # one y-range
    for c in charts:  # each optimizer in its name's colour, as on every page
        for t in c["data"]:
            color = t.get("line", t.get("marker", {})).get("color")
            if t.get("name") in ("sgd", "adam") and color:
                assert color == pages.color(t["name"])
    text = html_path.read_text(encoding="utf-8")
    assert "searched" in text and "lr 0.001 to" in text and "test accuracy (%)" in text
    one_task = render_html(results, summarize(results)[:1])
    assert "Performance profiles" in one_task and "with one task every curve is a step" in one_task
    assert "profile-steps" not in one_task


def test_cli_tunes_tests_and_prints_the_ranking(tmp_path, run_cli):
    code, _, err = run_cli(
        "tune", "--task", "synth-blobs", "--optimizers", "sgd,adam:betas=0.9/0.99",
        "--budget", "2", "--epochs", "1", "--seeds", "2", "--out", str(tmp_path), "--space",
        "full", "--quiet")
    assert code == 0, err
    assert (tmp_path / "report.html").is_file() and (tmp_path / "tune.db").is_file()
    rows = list(csv.DictReader((tmp_path / "tune_summary.csv").open()))
    assert [r["optimizer"] for r in rows] == ["sgd", "adam:betas=0.9/0.99"]
    assert all("0.9, 0.99" in r["best_hyperparameters"] for r in rows[1:])


@pytest.mark.parametrize(("args", "message"), [
    (["--space", "grid"], "Unknown search space 'grid' (expected one of lr-only, full)"),
    (["--budget", "0"], "Invalid budget 0 (expected a whole number >= 1)"),
    (["--worker"], "--worker needs --storage URL"),
    (["--optimizers", "adamz"], "Unknown optimizer 'adamz'"),
])
def test_cli_mistakes_are_one_line_and_exit_2(args, message, tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    code, _, err = run_cli("tune", "--out", str(tmp_path), *args)
    assert code == 2
    err = err.strip()
    assert err.startswith("optimlab: error: ") and message in err and "\n" not in err
