"""Fuzzing the command line with bad input: every one is exit code 2 and one line on stderr, no
traceback, and an existing output folder stays byte-identical.

Each example is one valid command line with one bad value (or a bad path) put in; the commands
run in this process (the ``run_cli`` fixture), so an example costs milliseconds. A generated value
that happens to be valid is filtered out, so that no example starts real work.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimlab.lab import compare
from optimlab.lab.errors import UserError
from optimlab.lab.limits import LIMITS
from optimlab.lab.schedules import parse_schedule
from optimlab.lab.spec import parse_spec, split_specs
from optimlab.lab.surface.catalog import SURFACES
from optimlab.lab.tasks import task_names

# run_cli and snapshot are function-scoped but keep no state between calls
FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])

# ---- the folder that must not change ---------------------------------------------------------


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """A finished comparison, a plain file, and a folder holding another program's results.db."""
    root = tmp_path_factory.mktemp("fuzz")
    compare(task="iris-softmax", optimizers="sgd:lr=0.1", epochs=1, seeds=1, out=root / "done")
    (root / "a-file").write_text("not a folder\n")
    foreign = root / "foreign"
    foreign.mkdir()
    db = sqlite3.connect(foreign / "results.db")
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, owner TEXT)")
    db.execute("INSERT INTO runs VALUES (1, 'another program')")
    db.commit()
    db.close()
    return {"out": root / "done", "file": root / "a-file", "foreign": foreign, "root": root}


@pytest.fixture
def refused(places, run_cli, snapshot):
    """``refused(argv)``: optimlab ARGV exits 2 with one line and no file under the places
    changes."""

    def check(argv: list[str]) -> None:
        before = snapshot(places["root"])
        code, out, err = run_cli(*argv)
        shown = " ".join(a if len(a) < 60 else a[:60] + "..." for a in argv)
        assert code == 2, f"exit {code} for {shown}: {err[-2000:]}"
        assert "Traceback" not in err and out == "", f"{shown}: {out[-500:]} {err[-2000:]}"
        assert err.startswith("optimlab: error: ") and err.count("\n") == 1, f"{shown}: {err!r}"
        assert snapshot(places["root"]) == before, f"{shown} changed files"

    return check


# ---- bad values ---------------------------------------------------------------------------------

_NOT_INTS = st.sampled_from(["abc", "1e3", "1.5", "\u00b2", "\u0663", "", " ", "0x10", "--", "1_0_",
                             "9" * 5000, "-9" * 3, "nan", "inf"])


def bad_count(name: str, minimum: int = 1) -> st.SearchStrategy[str]:
    """Text that is not a count in ``minimum .. LIMITS[name]``."""
    return st.one_of(
        _NOT_INTS,
        st.integers(max_value=minimum - 1).map(str),
        st.integers(min_value=LIMITS[name] + 1, max_value=10**40).map(str),
    )


_SPEC_ALPHABET = "adamsgdnrtpc:=,@+/.-_e0123456789 \u00b2\u00e9x"


def _spec_fails(text: str) -> bool:
    try:
        specs = [parse_spec(s) for s in split_specs(text)]
    except UserError:
        return True
    labels = [s.label() for s in specs]
    return not specs or len(set(labels)) < len(labels)


def _schedule_fails(text: str) -> bool:
    try:
        parse_schedule(text)
    except UserError:
        return True
    return False


def bad_spec() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([
            "adam:lr=1,lr=2", "adam@keras@paper", "adam@3@4+sgd", "adam@\u00b2",
            "adam:fused=true,foreach=true", "adam:lr=" + "9" * 5000, "adam@" + "9" * 4000,
            "adam:lr=-1", "adam:lr=nan", "sgd@3", "sgd@3+", "+", "adam:lr=1e+", "adam,adam",
        ]),
        st.text(_SPEC_ALPHABET, min_size=1, max_size=40),
    ).filter(_spec_fails)


def bad_schedule() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["poly", "exp", "exp:gamma=2", "warmup:steps=0", "cosine+exp:gamma=0.5",
                         "exp:gamma=0.5,gamma=0.6", "step:step_size=" + "9" * 3000]),
        st.text("expcosinwarmuptl:=,+.0123456789_", min_size=1, max_size=30),
    ).filter(_schedule_fails)


def bad_name(valid: list[str]) -> st.SearchStrategy[str]:
    return st.text("abcdefghijklmnopqrstuvwxyz-_.0123456789\u00e9", min_size=1, max_size=20).filter(
        lambda s: s not in valid and not s.startswith("-")
    )


# ---- one test per command -----------------------------------------------------------------------

_COMPARE_BASE = ["--task", "iris-softmax", "--optimizers", "sgd:lr=0.1", "--epochs", "1",
                 "--seeds", "1", "--quiet"]


@st.composite
def compare_argv(draw, places) -> list[str]:
    option, value = draw(st.one_of(
        st.tuples(st.just("--seeds"), bad_count("seeds")),
        st.tuples(st.just("--epochs"), bad_count("epochs")),
        st.tuples(st.just("--batch-size"), st.one_of(bad_count("batch_size"), st.just("full2"))),
        st.tuples(st.just("--jobs"), bad_count("jobs")),
        st.tuples(st.just("--nproc"), st.sampled_from(["0", "-1", "abc"])),
        st.tuples(st.just("--threads"), st.sampled_from(["0", "-1", "abc"])),
        st.tuples(st.just("--optimizers"), bad_spec()),
        st.tuples(st.just("--schedule"), bad_schedule()),
        st.tuples(st.just("--task"), bad_name(task_names())),
        st.tuples(st.just("--no-such-option"), st.just("1")),
        st.tuples(st.just("--out"), st.sampled_from([str(places["file"]),
                                                     str(places["file"] / "below"),
                                                     str(places["foreign"])])),
        st.tuples(st.just("--resume"), st.sampled_from(["--epochs=2", "--seeds=2",
                                                        "--optimizers=sgd:lr=0.2",
                                                        f"--data-dir={places['foreign']}"])),
    ))
    return ["compare", *_COMPARE_BASE, "--out", str(places["out"]), option, value]


@FUZZ
@given(data=st.data())
def test_compare_refuses_bad_input(places, refused, data):
    refused(data.draw(compare_argv(places)))


_TUNE_BASE = ["--task", "iris-softmax", "--optimizers", "sgd", "--budget", "1", "--epochs", "1",
              "--seeds", "1", "--workers", "1", "--quiet"]


@FUZZ
@given(data=st.data())
def test_tune_refuses_bad_input(places, refused, data):
    option, value = data.draw(st.one_of(
        st.tuples(st.just("--budget"), bad_count("budget")),
        st.tuples(st.just("--seeds"), bad_count("seeds")),
        st.tuples(st.just("--epochs"), st.one_of(_NOT_INTS, st.just("-1"),
                                                 st.just(str(LIMITS["epochs"] + 1)))),
        st.tuples(st.just("--batch-size"), st.one_of(bad_count("batch_size"), st.just("full2"))),
        st.tuples(st.just("--optimizers"), bad_spec()),
        st.tuples(st.just("--task"), bad_name(task_names())),
        st.tuples(st.just("--space"), bad_name(["lr-only", "full"])),
        st.tuples(st.just("--lr-range"), st.sampled_from(["1", "1:0", "0:1", "a:b", "-1:1", "1e3:1e-3",
                                                          "nan:1", "1:inf", ":"])),
        st.tuples(st.just("--validation-fraction"), st.sampled_from(["0", "1", "-0.5", "nan", "2"])),
        st.tuples(st.just("--workers"), st.sampled_from(["-1", "abc"])),
        st.tuples(st.just("--threads"), st.sampled_from(["0", "-1"])),
        st.tuples(st.just("--storage"), st.sampled_from(["ftp://host/db", "nonsense", "mongodb://x"])),
        st.tuples(st.just("--grace-period"), st.sampled_from(["1", "10"])),
        st.tuples(st.just("--seed"), st.sampled_from(["-1", str(2**63), "abc"])),
        # an accuracy target is a fraction: 90 (for 90%) would never be reached
        st.tuples(st.just("--target"), st.sampled_from(["2", "90", "-0.5", "0", "nan", "inf", "abc"])),
        st.tuples(st.just("--out"), st.sampled_from([str(places["file"]), str(places["foreign"])])),
    ))
    refused(["tune", *_TUNE_BASE, "--out", str(places["out"]), option, value])


@FUZZ
@given(data=st.data())
def test_surface_refuses_bad_input(places, refused, data):
    option, value = data.draw(st.one_of(
        st.tuples(st.just("--steps"), bad_count("steps")),
        st.tuples(st.just("--frames"), bad_count("frames", minimum=2)),
        st.tuples(st.just("--start"), st.sampled_from(["1", "a,b", "1,2,3", "nan,1", "inf,0", ""])),
        st.tuples(st.just("--tol"), st.sampled_from(["0", "-1", "nan", "inf", "abc"])),
        st.tuples(st.just("--noise"), st.sampled_from(["-1", "nan", "inf", "abc"])),
        st.tuples(st.just("--format"), bad_name(["gif", "mp4", "none"])),
        st.tuples(st.just("--function"), bad_name(list(SURFACES))),
        st.tuples(st.just("--optimizers"), bad_spec()),
        st.tuples(st.just("--out"), st.sampled_from([str(places["file"]), str(places["foreign"])])),
    ))
    argv = ["surface", "--function", "saddle", "--steps", "5", "--format", "none",
            "--out", str(places["out"]), option, value]
    refused(argv)


@FUZZ
@given(data=st.data())
def test_claims_refuses_bad_input(places, refused, data):
    """Every count is checked against its bound before a folder is made or an experiment runs
    (``--out`` names a folder that does not exist yet: it must not appear)."""
    option, value = data.draw(st.one_of(
        st.tuples(st.just("--seeds"), bad_count("seeds", minimum=2)),
        st.tuples(st.just("--tune-seeds"), bad_count("tune_seeds")),
        st.tuples(st.just("--replicates"), bad_count("replicates")),
        st.tuples(st.just("--grid"), bad_count("grid_points", minimum=2)),
        st.tuples(st.just("--starts"), bad_count("starts", minimum=2)),
        st.tuples(st.just("--epochs"), bad_count("epochs")),
        st.tuples(st.just("--jobs"), bad_count("jobs")),
        st.tuples(st.just("--seed"), st.sampled_from(["-1", str(2**63), "abc"])),
        st.tuples(st.just("--only"), bad_name(["rmsprop-escapes-saddle"])),
        st.tuples(st.just("--out"), st.sampled_from([str(places["file"]), str(places["foreign"]),
                                                     str(places["out"])])),
    ))
    out = [] if option == "--out" else ["--out", str(places["root"] / "claims-new")]
    refused(["claims", "--only", "rmsprop-escapes-saddle", *out, option, value])


@FUZZ
@given(data=st.data())
def test_report_list_and_bench_refuse_bad_input(places, refused, data):
    argv = data.draw(st.one_of(
        st.sampled_from([
            ["report", str(places["file"])],
            ["report", str(places["foreign"])],
            ["report", str(places["root"] / "missing")],
            ["report"],
            ["report", str(places["out"]), str(places["out"]), "--out", str(places["root"] / "twice")],
            ["bench", "step", "--json", str(places["root"] / "missing" / "r.json")],
            ["bench", "step", "--json", str(places["foreign"])],
            ["bench", "nope"],
            ["bench", "step", "--params", "1000", "--tensors", "2000"],  # no such layout: refused, not run
        ]),
        bad_name(["tasks", "optimizers"]).map(lambda w: ["list", w]),
        st.tuples(
            st.sampled_from(["--params", "--tensors", "--repeats", "--threads", "--dtype",
                             "--optimizers", "--conventions"]),
            st.data(),
        ).map(lambda t: ["bench", "step", t[0], t[1].draw(_bench_value(t[0]))]),
    ))
    refused(argv)


def _bench_value(option: str) -> st.SearchStrategy[str]:
    if option == "--params":
        return st.one_of(_NOT_INTS, st.integers(max_value=999).map(str),
                         st.just(str(LIMITS["params"] + 1)))
    if option in ("--tensors", "--threads"):
        return st.one_of(_NOT_INTS, st.integers(max_value=0).map(str))
    if option == "--repeats":
        return st.one_of(_NOT_INTS, st.integers(max_value=2).map(str))
    if option == "--dtype":
        return bad_name(["float32", "float64", "bfloat16"])
    if option == "--optimizers":
        return st.sampled_from(["nope", "adam,nope", "adam-"])
    return st.sampled_from(["nope", "keras,nope", "paper-"])
