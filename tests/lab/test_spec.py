"""The optimizer-spec grammar: every number float() reads, no duplicates, one line per mistake."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimlab.lab.errors import UserError
from optimlab.lab.schedules import parse_schedule
from optimlab.lab.spec import (
    OptimizerSpec,
    Phase,
    parse_spec,
    split_specs,
    split_top,
    unused_phases,
)
from optimlab.optim import available, conventions


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("sgd:lr=1e16", "sgd:lr=1e16"),
        ("sgd:lr=1e+16", "sgd:lr=1e16"),
        ("adam:lr=2e+1", "adam:lr=20.0"),
        ("adam:lr=2E+1@3+sgd:lr=1e+2", "adam:lr=20.0@3+sgd:lr=100.0"),
        ("adam:betas=0.9/9.99e-1", "adam:betas=0.9/0.999"),
        ("sgd:lr=1_000", "sgd:lr=1000"),
        ("sgd:lr=.5", "sgd:lr=0.5"),
        ("adam@keras@3+sgd", "adam@keras@3+sgd"),
    ],
)
def test_every_number_float_reads_is_a_number(text, label):
    assert parse_spec(text).label() == label


def test_an_exponent_sign_is_not_a_phase_separator():
    assert split_top("adam:lr=2e+1@3+sgd:lr=1e+16") == ["adam:lr=2e+1@3", "sgd:lr=1e+16"]
    assert split_top("adam@5+sgd") == ["adam@5", "sgd"]
    assert split_top("adam:eps=1e+sgd") == ["adam:eps=1e", "sgd"]  # no digit after: a separator
    assert split_specs("adam:lr=1e+1,betas=0.9/0.99,sgd:lr=2e+2") == [
        "adam:lr=1e+1,betas=0.9/0.99", "sgd:lr=2e+2"]
    assert parse_schedule("warmup:steps=1e+2+cosine").label() == "warmup:steps=100+cosine"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("adam:lr=1,lr=2", "Hyperparameter 'lr' given twice"),
        ("adam@keras@paper", r"Convention given twice in 'adam@keras@paper' \(@keras and @paper\)"),
        ("adam@keras@keras", "Convention given twice"),
        ("adam@3@4+sgd", r"Phase length given twice in 'adam@3@4' \(@3 and @4\)"),
        ("adam@\u00b2", "Invalid '@\u00b2'"),
        ("adam@\u0663", "Invalid '@\u0663'"),  # an Arabic-Indic digit: isdigit() but not ASCII
        ("adam:fused=true,foreach=true", "`fused` and `foreach` cannot be `True` together"),
        ("adam:lr=" + "9" * 5000, "is too long"),
        ("adam:lr=" + "9" * 100, "Invalid number 9{40}... \\(100 characters\\) \\(at most 64"),
        ("adam@" + "9" * 30, "Invalid phase length .* \\(expected epochs from 1 to 1,000,000\\)"),
        ("adam@0", "Invalid phase length '0'"),
        ("adam:lr=inf", "Invalid learning rate: inf"),
        ("adam:lr=nan", "Invalid learning rate: nan"),
        ("adam:lr=1e+", "Invalid value '1e'"),
        ("exp:gamma=0.5,gamma=0.6", None),
    ],
)
def test_mistakes_are_one_line_user_errors(text, message):
    if message is None:  # a schedule
        with pytest.raises(UserError, match="Schedule parameter 'gamma' given twice"):
            parse_schedule(text)
        return
    with pytest.raises(UserError, match=message) as info:
        parse_spec(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_phases_that_never_run_are_warned_about(caplog):
    spec = parse_spec("adam@50+sgd")
    assert unused_phases(spec, 2) == [spec.phases[1]]
    assert unused_phases(spec, 51) == []
    from optimlab.lab.compare.plan import CompareConfig

    with caplog.at_level(logging.WARNING, logger="optimlab.lab.spec"):
        CompareConfig.create(task="iris-softmax", optimizers=("adam@50+sgd",), epochs=2)
    assert "phase 'sgd' never runs in 2 epoch(s)" in caplog.text


# ---- parse(format(spec)) == spec ------------------------------------------------------------

_numbers = st.one_of(
    st.floats(min_value=1e-30, max_value=1e30, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=10**15),
)


@st.composite
def _phase(draw, last: bool) -> Phase:
    hps = {}
    if draw(st.booleans()):
        hps["lr"] = draw(_numbers)
    if draw(st.booleans()):
        hps["weight_decay"] = draw(st.one_of(st.floats(0, 1e3), st.integers(0, 1000)))
    return Phase(
        name=draw(st.sampled_from(available())),
        convention=draw(st.sampled_from(conventions())),
        hyperparameters=hps,
        epochs=None if last else draw(st.integers(1, 10**6)),
    )


@st.composite
def _spec(draw) -> OptimizerSpec:
    n = draw(st.integers(1, 3))
    phases = [draw(_phase(last=False)) for _ in range(n - 1)]
    last = draw(_phase(last=True))
    if draw(st.booleans()):
        last = Phase(last.name, last.convention, last.hyperparameters, draw(st.integers(1, 10**6)))
    return OptimizerSpec((*phases, last))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_spec())
def test_parse_of_the_label_gives_the_spec_back(spec):
    assert parse_spec(spec.label()) == spec
