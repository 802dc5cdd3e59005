"""Targets, Dolan-Moré performance profiles, Holm's correction and the verdicts (time-to-target
itself is tested in tests/lab/test_protocol.py)."""

from __future__ import annotations

import math

import pytest

from optimlab.lab.stats import holm_adjust
from optimlab.lab.tune.profiles import (
    performance_profile,
    performance_ratios,
    profile_taus,
    validation_target,
    verdict,
)


def test_holm_adjustment_by_hand():
    # sorted 0.01, 0.02, 0.04 with m = 3: 3*0.01 = 0.03, max(0.03, 2*0.02) = 0.04,
    # max(0.04, 1*0.04) = 0.04; returned in the input order
    assert holm_adjust([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # capped at 1, monotone, nan kept out of m
    assert holm_adjust([0.5, 0.9, math.nan]) == pytest.approx([1.0, 1.0, math.nan], nan_ok=True)
    assert holm_adjust([]) == []


def test_validation_target_is_relative_to_the_best_unless_declared():
    assert validation_target({"a": 0.9, "b": 0.8, "c": math.nan}) == pytest.approx(0.891)
    assert validation_target({"a": 0.9}, declared=0.75) == 0.75
    assert math.isnan(validation_target({"a": math.nan}))


def test_performance_profile_of_three_solvers_on_three_problems():
    times = {
        "p1": {"a": 10.0, "b": 20.0, "c": math.inf},
        "p2": {"a": 30.0, "b": 15.0, "c": 45.0},
        "p3": {"a": math.inf, "b": math.inf, "c": math.inf},  # unsolved by all
    }
    ratios = performance_ratios(times)
    assert ratios["p1"] == {"a": 1.0, "b": 2.0, "c": math.inf}
    assert ratios["p2"] == {"a": 2.0, "b": 1.0, "c": 3.0}
    assert all(math.isinf(r) for r in ratios["p3"].values())
    prof = performance_profile(times, [1.0, 2.0, 3.0, 100.0])
    assert prof["a"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert prof["b"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert prof["c"] == pytest.approx([0, 0, 1 / 3, 1 / 3])
    taus = profile_taus(times)
    assert taus[0] == 1.0 and {2.0, 3.0} <= set(taus) and taus == sorted(taus)


def test_verdict_separates_significant_differences_from_noise():
    samples = {
        "adam": [0.95, 0.96, 0.955, 0.957, 0.953],
        "nadam": [0.951, 0.958, 0.949, 0.96, 0.955],  # same level: noise
        "sgd": [0.80, 0.81, 0.79, 0.805, 0.80],  # clearly worse
        "adagrad": [0.9],  # one seed: untestable
    }
    v = verdict("mnist-mlp", samples)
    assert v.best == "adam"
    by_name = {c.optimizer: c for c in v.comparisons}
    assert by_name["sgd"].significant and not by_name["nadam"].significant
    assert math.isnan(by_name["adagrad"].p_adjusted)
    # Holm: the adjusted p-value is at least the raw one
    assert all(c.p_adjusted >= c.p_value for c in v.comparisons if not math.isnan(c.p_value))
    line = v.line()
    assert line.startswith("mnist-mlp: adam is best (test accuracy 95.50% ± ")
    assert "significantly worse (Welch, Holm-adjusted p < 0.05): sgd (p=" in line
    assert "within seed noise of adam: nadam (p=" in line
    assert "untestable (fewer than 2 finished seeds): adagrad" in line
    assert "\n" not in line


def test_a_difference_over_seeds_within_tuning_noise_is_not_called_worse():
    samples = {"adam": [0.95, 0.96, 0.955, 0.957, 0.953],
               "sgd": [0.90, 0.905, 0.91, 0.90, 0.902],
               "rmsprop": [0.90, 0.905, 0.91, 0.90, 0.902]}
    trials = {
        "adam": [0.95, 0.94, 0.93, 0.945, 0.2, 0.94],
        # sgd's every trial is far below adam's best few: beyond tuning noise
        "sgd": [0.80, 0.82, 0.5, 0.81, 0.3, 0.79],
        # rmsprop found one trial above adam's best: another draw of the trials could have
        # found as good a configuration
        "rmsprop": [0.96, 0.3, 0.4, 0.5, 0.2, 0.6],
    }
    v = verdict("t", samples, trials=trials)
    by_name = {c.optimizer: c for c in v.comparisons}
    assert by_name["sgd"].significant and by_name["sgd"].beyond_tuning_noise
    assert by_name["sgd"].tuning.separated
    assert by_name["rmsprop"].significant and not by_name["rmsprop"].beyond_tuning_noise
    line = v.line()
    assert "beyond tuning noise): sgd (p=" in line
    assert "within tuning noise (another draw of the trials could have found as good a " in line
    assert "rmsprop (p=" in line.split("within tuning noise")[1]


def test_verdict_without_runs():
    assert verdict("t", {"a": []}).line() == "t: no optimizer has a finished run; nothing to compare."
    assert "no other optimizer" in verdict("t", {"a": [0.5, 0.6]}).line()
