"""optimlab tune in one process: spaces, equal budgets, no test-set leak, determinism, report, CLI.

Also a script: ``python tests/lab/test_tune.py worker NAME ID`` registers the synthetic tasks below
and runs one tuning worker on the study NAME in ``$OPTIMLAB_STORAGE`` (used by
``test_tune_workers.py``, so that worker processes need no dataset files).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optimlab.lab import tune
from optimlab.lab.errors import UserError
from optimlab.lab.spec import parse_spec
from optimlab.lab.tasks import Dataset, Task, register

# ---- synthetic tasks (no files, ~0.1 s a trial) ----------------------------------------------------
CENTERS = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def _draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.arange(n) % 3
    return CENTERS[y] + 1.1 * torch.randn(n, 2, generator=g), y


def _blobs(_options=None) -> Dataset:
    g = torch.Generator().manual_seed(7)
    x, y = _draw(300, g)
    xt, yt = _draw(90, g)
    return Dataset(x, y, xt, yt, source="three Gaussian blobs")


def _leaky(_options=None) -> Dataset:
    """Test labels shifted by one class: the better a model, the worse its test accuracy."""
    d = _blobs()
    return Dataset(d.x_train, d.y_train, d.x_test, (d.y_test + 1) % 3, source="blobs, bad test labels")


class _Poisoned(torch.Tensor):
    """A tensor that fails on any use: planted as the test split of a task being tuned."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the test split was read ({getattr(func, '__name__', func)})")


def _poisoned(_options=None) -> Dataset:
    d = _blobs()
    return Dataset(d.x_train, d.y_train, torch.zeros(90, 2).as_subclass(_Poisoned),
                   torch.zeros(90, dtype=torch.long).as_subclass(_Poisoned), source="poisoned test")


def _model(seed: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 3))


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # unbounded gradients: SGD with lr far above 2/L grows the weights geometrically to inf
    return F.mse_loss(outputs, F.one_hot(targets, 3).to(outputs.dtype))


#: the synthetic tasks, added to the registry only while a test of this module runs
SYNTHETIC = {
    name: Task(name=name, description="synthetic blobs for the tuner's tests", load=load,
               model=_model, loss=loss, batch_size=30, epochs=2, optimizers=("sgd", "adam"))
    for name, load, loss in (("synth-blobs", _blobs, F.cross_entropy),
                             ("synth-leaky", _leaky, F.cross_entropy),
                             ("synth-poisoned", _poisoned, F.cross_entropy),
                             ("synth-mse", _blobs, _mse))
}


def add_synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the synthetic tasks until ``monkeypatch`` is undone (the registry stays clean
    for the other test modules of this process)."""
    from optimlab.lab import tasks

    tasks.task_names()  # load the catalog first
    for name, task in SYNTHETIC.items():
        monkeypatch.setitem(tasks._TASKS, name, task)


@pytest.fixture(autouse=True)
def _synthetic_tasks(monkeypatch):
    add_synthetic(monkeypatch)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: torch's intra-op threads only contend with the other test worker
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_study(tmp_path: Path, name: str = "s", **kw) -> tuple[str, tune.TuneConfig]:
    args = {"tasks": ["synth-blobs"], "optimizers": "sgd,adam", "budget": 3, "epochs": 2, "seeds": 2,
                "heartbeat_interval": 1, "grace_period": 2}
    args.update(kw)
    cfg = tune.TuneConfig.create(**args)
    url = tune.default_storage_url(tmp_path)
    tune.create_study(tune.open_storage(url), name, cfg)
    return url, cfg


def finished_states(storage, sub: str) -> list[str]:
    return [t.state.name for t in storage.get_all_trials(storage.get_study_id_from_name(sub))]


# ---- search spaces ----------------------------------------------------------------------------------
def test_every_registered_optimizer_has_a_declared_space_in_both_protocols():
    from optimlab.optim import available

    for space in tune.SPACES.values():
        assert set(space.dimensions) == set(available()), space.name
        assert space.source
        for name, dims in space.dimensions.items():
            assert dims[0].name == "lr" and dims[0].log, name
            for d in dims:
                assert 0 < d.low < d.high, (name, d)
    assert [d.name for d in tune.SPACES["lr-only"].dimensions["adam"]] == ["lr"]
    full_adam = [d.name for d in tune.SPACES["full"].dimensions["adam"]]
    assert full_adam == ["lr", "one_minus_beta1", "one_minus_beta2", "eps"]  # Choi et al.: eps too


def test_sampled_values_map_to_valid_optimizer_hyperparameters():
    phase = parse_spec("adam").phases[0]
    dims = tune.dimensions("full", phase)
    # the corners of the space must all build valid optimizers
    for corner in ("low", "high"):
        values = {d.name: getattr(d, corner) for d in dims}
        spec = tune.trial_spec(phase, tune.hyperparameters(phase, dims, values))
        parsed = parse_spec(spec).phases[0].hyperparameters
        assert parsed["betas"] == (1 - values["one_minus_beta1"], 1 - values["one_minus_beta2"])
        assert parsed["eps"] == values["eps"] and parsed["lr"] == values["lr"]
    for name in ("momentum", "nag", "adadelta", "rmsprop", "adagrad", "nadam", "adamax"):
        p = parse_spec(name).phases[0]
        d = tune.dimensions("full", p)
        for corner in ("low", "high"):
            parse_spec(tune.trial_spec(p, tune.hyperparameters(
                p, d, {x.name: getattr(x, corner) for x in d})))


def test_hyperparameters_fixed_by_the_spec_are_not_tuned_and_lr_range_overrides():
    phase = parse_spec("adam:betas=0.9/0.99@keras").phases[0]
    dims = tune.dimensions("full", phase, lr_range=(1e-5, 1e2))
    assert [d.name for d in dims] == ["lr", "eps"]
    assert (dims[0].low, dims[0].high) == (1e-5, 1e2)
    spec = tune.trial_spec(phase, tune.hyperparameters(phase, dims, {"lr": 0.01, "eps": 1e-3}))
    assert spec == "adam:betas=0.9/0.99,lr=0.01,eps=0.001@keras"


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
        tune.TuneConfig.create(**args)
    assert "\n" not in str(info.value)


def test_parse_lr_range():
    assert tune.parse_lr_range("1e-5:1e2") == (1e-5, 100.0)
    for bad in ("1e-2", "1:0.1", "0:1", "a:b"):
        with pytest.raises(UserError, match="Invalid lr range"):
            tune.parse_lr_range(bad)


# ---- passwords ------------------------------------------------------------------------------------
def test_passwords_are_masked_in_urls_and_scrubbed_from_messages():
    url = "postgresql://tuner:s3cr%40t@db.example:5432/optimlab"
    assert tune.mask_url(url) == "postgresql://tuner:***@db.example:5432/optimlab"
    text = f"could not connect to {url}; password s3cr@t rejected"
    scrubbed = tune.scrub(text, url)
    assert "s3cr" not in scrubbed and "tuner:***@db.example" in scrubbed
    assert tune.mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_an_unreachable_server_is_one_line_without_the_password():
    url = "postgresql://tuner:hunter2@127.0.0.1:1/optimlab"
    with pytest.raises(UserError) as info:
        tune.open_storage(url)
    message = str(info.value)
    assert "hunter2" not in message and "tuner:***@127.0.0.1:1" in message
    assert "\n" not in message
    with pytest.raises(UserError, match="Invalid storage 'ftp://u:\\*\\*\\*@h/x'"):
        tune.open_storage("ftp://u:pw@h/x")


# ---- budgets --------------------------------------------------------------------------------------
def test_every_optimizer_gets_exactly_the_budget_and_no_worker_exceeds_it(tmp_path):
    url, cfg = make_study(tmp_path, optimizers="sgd,momentum,adam", budget=3)
    first = tune.work(url, "s")
    assert len(first.trials) == 9
    storage = tune.open_storage(url)
    for sub, _, _ in cfg.studies("s"):
        c = tune.counts(storage, sub)
        assert c["COMPLETE"] + c["PRUNED"] == 3, (sub, c)
        assert c["WAITING"] == c["RUNNING"] == c["FAIL"] == 0
        slots = sorted(t.user_attrs["slot"] for t in storage.get_all_trials(
            storage.get_study_id_from_name(sub)))
        assert slots == [0, 1, 2]
    # the budget is met: another worker finds nothing to run and creates no trial
    assert tune.work(url, "s").trials == []
    assert sum(len(finished_states(storage, sub)) for sub, _, _ in cfg.studies("s")) == 9
    # the budget is part of the study: reopening it with another budget is refused
    other = tune.TuneConfig.create(tasks=["synth-blobs"], optimizers="sgd,momentum,adam",
                                   budget=4, epochs=2, seeds=2, heartbeat_interval=1,
                                   grace_period=2)
    with pytest.raises(UserError, match="budget: 3 -> 4"):
        tune.create_study(storage, "s", other)


def test_one_worker_with_the_same_seed_replays_the_same_trials(tmp_path):
    params = []
    for folder in ("a", "b"):
        url, cfg = make_study(tmp_path / folder, space="full", optimizers="adam", epochs=1)
        tune.work(url, "s")
        storage = tune.open_storage(url)
        params.append([(t.params, t.state.name, t.value)
                       for sub, _, _ in cfg.studies("s")
                       for t in storage.get_all_trials(storage.get_study_id_from_name(sub))])
    assert params[0] == params[1]
    url, cfg = make_study(tmp_path / "c", space="full", optimizers="adam", epochs=1, seed=1)
    tune.work(url, "s")
    storage = tune.open_storage(url)
    other = [t.params for sub, _, _ in cfg.studies("s")
             for t in storage.get_all_trials(storage.get_study_id_from_name(sub))]
    assert other != [p for p, _, _ in params[0]]


def test_concurrent_claims_on_sqlite_give_each_waiting_trial_to_exactly_one_worker(tmp_path):
    # four connections race over 60 waiting trials; with Python's lazy sqlite3 transactions
    # (plain RDBStorage) about a third of the trials are claimed twice, BEGIN IMMEDIATE fixes it
    import threading

    import optuna

    url = tune.default_storage_url(tmp_path)
    storage = tune.open_storage(url)
    study = optuna.create_study(study_name="race", storage=storage)
    for slot in range(60):
        study.enqueue_trial({}, user_attrs={"slot": slot})
    study_id = storage.get_study_id_from_name("race")
    claims: list[int] = []
    barrier = threading.Barrier(4)

    def claim_all() -> None:
        mine = tune.open_storage(url)
        barrier.wait()
        while (trial_id := tune._claim(mine, study_id)) is not None:
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
    tune.work(url, "s")  # any read of the poisoned test tensors would fail a trial
    storage = tune.open_storage(url)
    assert tune.counts(storage, "s/synth-poisoned/sgd")["FAIL"] == 0
    assert tune.finished_count(storage, "s/synth-poisoned/sgd") == 3


def test_selection_follows_validation_even_when_test_labels_favour_another_config(tmp_path):
    from optimlab.lab import runner

    url, cfg = make_study(tmp_path, tasks=["synth-leaky"], optimizers="sgd", budget=4,
                          lr_range=(1e-4, 3.0))
    tune.work(url, "s")
    storage = tune.open_storage(url)
    sub = "s/synth-leaky/sgd"
    trials = [t for t in storage.get_all_trials(storage.get_study_id_from_name(sub))
              if t.state.name == "COMPLETE"]
    best = tune.best_trial(storage, sub)
    assert best.value == max(t.value for t in trials)
    # what the (planted, wrong) test labels would have chosen: a different configuration
    test_acc = {}
    for t in trials:
        result = runner.run(runner.RunSpec("synth-leaky", t.user_attrs["spec"], seed=cfg.seed,
                                           epochs=cfg.epochs))
        test_acc[t.number] = result.epochs[-1].test_accuracy
    leak_choice = max(test_acc, key=test_acc.get)
    assert leak_choice != best.number, "the planted test labels must favour another config"
    assert test_acc[best.number] < test_acc[leak_choice]


# ---- pruning and divergence -----------------------------------------------------------------------
def test_diverged_trials_are_pruned_and_count_against_the_budget(tmp_path):
    url, _cfg = make_study(tmp_path, tasks=["synth-mse"], optimizers="sgd", budget=3,
                           lr_range=(1e3, 1e5))
    tune.work(url, "s")
    storage = tune.open_storage(url)
    trials = storage.get_all_trials(storage.get_study_id_from_name("s/synth-mse/sgd"))
    assert [t.state.name for t in trials] == ["PRUNED"] * 3
    assert all(t.user_attrs["status"] == "diverged" and t.user_attrs["diverged_step"] >= 1
               for t in trials)
    assert tune.best_trial(storage, "s/synth-mse/sgd") is None


def test_trials_below_the_median_are_pruned_at_an_epoch(tmp_path):
    url, _cfg = make_study(tmp_path, optimizers="sgd", budget=5, epochs=2, lr_range=(1e-4, 10.0))
    tune.work(url, "s")
    storage = tune.open_storage(url)
    trials = storage.get_all_trials(storage.get_study_id_from_name("s/synth-blobs/sgd"))
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, [(t.params, t.intermediate_values) for t in trials]
    for t in pruned:  # stopped before the last epoch, with its curve so far
        assert len(t.user_attrs["curve"]) < 2
        assert list(t.intermediate_values) == [p[0] for p in t.user_attrs["curve"]]


# ---- final runs, report and CLI -------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """Two tasks x two optimizers, tuned and evaluated over 2 seeds (shared by the report tests)."""
    tmp = tmp_path_factory.mktemp("study")
    name = '<script>alert("x")</script>'
    with pytest.MonkeyPatch.context() as mp:
        add_synthetic(mp)
        url, cfg = make_study(tmp, name=name, tasks=["synth-blobs", "synth-leaky"], budget=2,
                              seeds=2, epochs=1)
        tune.work(url, name)
        storage = tune.open_storage(url)
        tune.run_finals(storage, name, cfg)
    return tmp, storage, name, cfg


def test_final_runs_use_the_best_config_over_seeds_on_the_test_split(finished_study):
    from optimlab.lab import runner

    _, storage, name, cfg = finished_study
    results = tune.load_results(storage, name)
    r = results.results[("synth-blobs", "adam")]
    assert [f["seed"] for f in r.finals] == [0, 1]
    assert {f["spec"] for f in r.finals} == {r.best.user_attrs["spec"]}
    again = runner.run(runner.RunSpec("synth-blobs", r.best.user_attrs["spec"], seed=1,
                                      epochs=cfg.epochs))
    assert r.finals[1]["test_accuracy"] == again.epochs[-1].test_accuracy
    # run_finals resumes: nothing left to run
    calls = []
    tune.run_finals(storage, name, cfg, progress=lambda d, t: calls.append(t))
    assert calls == [0]


def test_report_csv_and_html(finished_study, browser):
    from optimlab.lab.tune_report import CSV_COLUMNS, summarize, write_report

    tmp, storage, name, cfg = finished_study
    results = tune.load_results(storage, name)
    html_path, csv_path = write_report(results, tmp / "out")
    rows = list(csv.DictReader(csv_path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["task"], r["optimizer"]) for r in rows] == [
        ("synth-blobs", "sgd"), ("synth-blobs", "adam"), ("synth-leaky", "sgd"),
        ("synth-leaky", "adam")]
    for r in rows:
        assert r["budget"] == "2" and int(r["trials_complete"]) + int(r["trials_pruned"]) == 2
        assert r["seeds_finished"] == "2"
    summaries = summarize(results)
    for s in summaries:
        assert s.verdict.line().startswith(f"{s.task}: ")
        assert math.isclose(s.target, 0.99 * max(
            max(p[1] for p in results.results[(s.task, o)].best.user_attrs["curve"])
            for o in cfg.optimizers))
    text = html_path.read_text()
    assert '<script>alert("x")</script>' not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    errors, dom = browser(html_path)
    assert errors == []
    assert dom.count('class="plot-container plotly"') == 6  # 2 per task + 2 profiles
    assert "Learning-rate sensitivity: synth-blobs" in dom


def test_cli_tunes_tests_and_prints_the_ranking(tmp_path, capsys, monkeypatch):
    from optimlab.lab import cli

    monkeypatch.setattr(sys, "argv", [
        "optimlab", "tune", "--task", "synth-blobs", "--optimizers", "sgd,adam:betas=0.9/0.99",
        "--budget", "2", "--epochs", "1", "--seeds", "2", "--out", str(tmp_path), "--space",
        "full", "--quiet"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 0
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
def test_cli_mistakes_are_one_line_and_exit_2(args, message, tmp_path, capsys, monkeypatch):
    from optimlab.lab import cli

    monkeypatch.delenv(tune.STORAGE_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["optimlab", "tune", "--out", str(tmp_path), *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optimlab: error: ") and message in err and "\n" not in err


# ---- worker entry for test_tune_workers.py ----------------------------------------------------------
if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "worker":
    import os

    for _task in SYNTHETIC.values():
        register(_task)
    torch.set_num_threads(1)
    tune.work(os.environ[tune.STORAGE_ENV], sys.argv[2], worker_id=sys.argv[3])
