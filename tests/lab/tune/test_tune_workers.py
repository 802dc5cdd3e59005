"""Several tuning worker processes on one study: SQLite, a real PostgreSQL server, kill -9.

Each worker is ``python tests/lab/tune/synthetic.py worker NAME ID`` (the tuner's worker loop with
the synthetic tasks registered); the storage URL goes through ``OPTIMLAB_STORAGE``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from optuna.trial import TrialState
from synthetic import make_study

from optimlab.lab.tune.config import STORAGE_ENV, TuneConfig
from optimlab.lab.tune.results import load_results
from optimlab.lab.tune.storage import default_storage_url, open_storage
from optimlab.lab.urls import password_of

HERE = Path(__file__).resolve().parent
POSTGRES_ENV = "OPTIMLAB_TEST_POSTGRES_URL"


def _create(url: str, name: str, **kw) -> TuneConfig:
    return make_study(url, name, **{"epochs": 1, **kw})[1]


def _start(url: str, name: str, worker_id: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", **{STORAGE_ENV: url})
    return subprocess.Popen(
        [sys.executable, str(HERE / "synthetic.py"), "worker", name, worker_id],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(procs: list[subprocess.Popen], timeout: float = 150) -> str:
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=timeout)
        out.append(text)
    return "\n".join(out)


def _check_exact_budget(url: str, name: str, cfg: TuneConfig, *, failed: int = 0) -> None:
    storage = open_storage(url)
    n_failed = 0
    for sub, _, _ in cfg.studies(name):
        trials = storage.get_all_trials(storage.get_study_id_from_name(sub))
        done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        assert len(done) == cfg.budget, (sub, [t.state.name for t in trials])
        # one finished trial per budget slot: none run twice, none lost
        assert sorted(t.user_attrs["slot"] for t in done) == list(range(cfg.budget))
        assert not [t for t in trials if t.state.name in ("WAITING", "RUNNING")]
        n_failed += sum(t.state.name == "FAIL" for t in trials)
    assert n_failed == failed


def _two_workers(url: str, name: str) -> tuple[TuneConfig, str]:
    # the workers start first and wait for the study: both begin when it is ready
    procs = [_start(url, name, str(i)) for i in range(2)]
    cfg = _create(url, name)
    output = _finish(procs)
    assert [p.returncode for p in procs] == [0, 0], output
    return cfg, output


def test_two_workers_on_sqlite_finish_exactly_the_budget(tmp_path):
    url = default_storage_url(tmp_path)
    cfg, _ = _two_workers(url, "s")
    _check_exact_budget(url, "s", cfg)
    storage = open_storage(url)
    workers = {t.user_attrs["worker"].split("@")[0]
               for sub, _, _ in cfg.studies("s")
               for t in storage.get_all_trials(storage.get_study_id_from_name(sub))}
    assert workers == {"0", "1"}  # both took part


@pytest.mark.postgres
def test_two_workers_on_postgresql_finish_exactly_the_budget():
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (.ci/run starts a PostgreSQL server and sets it)")
    name = f"test-{uuid.uuid4().hex[:8]}"
    cfg, output = _two_workers(url, name)
    _check_exact_budget(url, name, cfg)
    password = password_of(url)
    assert password and password not in output
    from optimlab.lab.tune_report import summarize

    results = load_results(open_storage(url), name)
    assert password not in results.storage and "***" in results.storage
    assert len(summarize(results)[0].rows) == 2


def _trial_state(url: str, trial_id: int) -> str:
    path = url.split("sqlite:///", 1)[1]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT state FROM trials WHERE trial_id = ?", (trial_id,)).fetchone()[0]
    finally:
        db.close()


def test_a_worker_killed_mid_trial_loses_nothing_and_duplicates_nothing(tmp_path):
    url = default_storage_url(tmp_path)
    procs = {str(i): _start(url, "s", str(i)) for i in range(2)}
    cfg = _create(url, "s", optimizers="sgd", budget=4, epochs=2)
    storage = open_storage(url)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        for sub, _, _ in cfg.studies("s"):
            for t in storage.get_all_trials(storage.get_study_id_from_name(sub),
                                            states=(TrialState.RUNNING,)):
                # whichever worker is training (claimed and sampled) is the victim: on a busy
                # machine one worker may take every trial before the other has started
                wid = t.user_attrs.get("worker", "").split("@")[0]
                if wid not in procs or "spec" not in t.user_attrs:
                    continue
                proc = procs[wid]
                proc.send_signal(signal.SIGSTOP)  # freeze it, then make sure it is mid-trial
                # read the committed state without a transaction of our own: the frozen worker
                # may hold SQLite's write lock, which the storage's BEGIN IMMEDIATE would wait on
                if _trial_state(url, t._trial_id) == "RUNNING":
                    proc.kill()  # SIGKILL: no cleanup, the trial stays RUNNING
                    victim = (sub, t.number, wid)
                else:
                    proc.send_signal(signal.SIGCONT)
                break
            if victim:
                break
        time.sleep(0.02)
    assert victim is not None, "no worker was caught mid-trial"
    sub, number, killed = victim
    survivor = "1" if killed == "0" else "0"
    procs[killed].wait(timeout=30)
    out = _finish([procs[survivor]])
    assert procs[survivor].returncode == 0, out
    _check_exact_budget(url, "s", cfg, failed=1)
    trials = storage.get_all_trials(storage.get_study_id_from_name(sub))
    dead = trials[number]
    assert dead.state.name == "FAIL"
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert len(retry) == 1 and retry[0].state.name in ("COMPLETE", "PRUNED")
    assert retry[0].params == dead.params and retry[0].user_attrs["slot"] == dead.user_attrs["slot"]
    assert retry[0].user_attrs["worker"].startswith(f"{survivor}@")
