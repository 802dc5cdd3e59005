"""The protocol's measurements against brute force: expected best of n trials, tuning noise,
time-to-target on a synthetic curve, and the order-statistic interval of the median."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from optimlab.lab.protocol import (
    Crossing,
    best_of_n,
    expected_best,
    expected_best_curve,
    summarize_crossings,
    time_to_target,
    tuning_gap,
)
from optimlab.lab.stats import median_interval, t_interval

# a small study: six trials, two of them tied
SCORES = [0.81, 0.93, 0.88, 0.93, 0.42, 0.90]


@pytest.mark.parametrize("n", range(1, len(SCORES) + 1))
def test_expected_best_without_replacement_equals_every_subset(n):
    bests = [max(c) for c in itertools.combinations(SCORES, n)]
    got = expected_best(SCORES, n)
    assert got.mean == pytest.approx(statistics.fmean(bests), rel=1e-12)
    assert got.std == pytest.approx(statistics.pstdev(bests), abs=1e-12)


@pytest.mark.parametrize("n", range(1, 5))
def test_expected_best_with_replacement_equals_every_draw(n):
    bests = [max(d) for d in itertools.product(SCORES, repeat=n)]
    got = expected_best(SCORES, n, replacement=True)
    assert got.mean == pytest.approx(statistics.fmean(bests), rel=1e-12)
    assert got.std == pytest.approx(statistics.pstdev(bests), abs=1e-12)


def test_expected_best_of_losses_takes_the_lowest():
    losses = [2.0, 0.5, 1.0]
    bests = [min(c) for c in itertools.combinations(losses, 2)]
    assert expected_best(losses, 2, higher_is_better=False).mean == pytest.approx(
        statistics.fmean(bests))


def test_expected_best_curve_rises_from_the_mean_to_the_maximum():
    curve = expected_best_curve(SCORES)
    assert [p.n for p in curve] == list(range(1, 7))
    assert curve[0].mean == pytest.approx(statistics.fmean(SCORES))
    assert curve[-1].mean == pytest.approx(max(SCORES)) and curve[-1].std == pytest.approx(0)
    assert all(a.mean <= b.mean + 1e-15 for a, b in itertools.pairwise(curve))


def test_best_of_n_merges_ties_and_sums_to_one():
    values, probs = best_of_n(SCORES, 3)
    assert values == sorted(set(SCORES))
    assert sum(probs) == pytest.approx(1.0)
    assert probs[values.index(0.42)] == 0.0  # the worst trial is never the best of three


@pytest.mark.parametrize("args, message", [
    (([], 1), "no scores"),
    (([0.1, math.nan], 1), "nan"),
    (([0.1, 0.2], 3), "at most the 2 trials"),
    (([0.1], 0), "Invalid n"),
])
def test_best_of_n_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        best_of_n(*args)


def _brute_gap(a, b, level):
    """Every bootstrap redraw of both studies, enumerated."""
    gaps = {}
    for da in itertools.product(a, repeat=len(a)):
        for db in itertools.product(b, repeat=len(b)):
            g = max(da) - max(db)
            gaps[g] = gaps.get(g, 0) + 1
    total = sum(gaps.values())
    alpha, cdf, low, high = (1 - level) / 2, 0.0, None, None
    for g in sorted(gaps):
        cdf += gaps[g] / total
        if low is None and cdf >= alpha - 1e-12:
            low = g
        if high is None and cdf >= 1 - alpha - 1e-12:
            high = g
    better = sum(c for g, c in gaps.items() if g > 0) / total
    return low, high, better


@pytest.mark.parametrize("a, b", [
    ([0.90, 0.91, 0.95], [0.80, 0.85, 0.86]),  # a's every trial beats b's best
    ([0.90, 0.70, 0.60], [0.88, 0.87, 0.86]),  # a's best is one lucky trial
    ([0.5, 0.6], [0.6, 0.5, 0.55, 0.4]),
])
def test_tuning_gap_equals_every_bootstrap_redraw(a, b):
    got = tuning_gap(a, b, level=0.9)
    low, high, better = _brute_gap(a, b, 0.9)
    assert (got.low, got.high) == pytest.approx((low, high))
    assert got.prob_a_better == pytest.approx(better)
    assert got.observed == pytest.approx(max(a) - max(b))


def test_tuning_gap_separates_only_a_consistent_lead():
    assert tuning_gap([0.90, 0.91, 0.95, 0.92], [0.80, 0.85, 0.86, 0.84]).separated
    lucky = tuning_gap([0.95, 0.70, 0.60, 0.65], [0.88, 0.87, 0.86, 0.89])
    assert lucky.observed > 0 and not lucky.separated and not lucky.reversed


def test_time_to_target_returns_the_known_crossing_on_a_synthetic_curve():
    # accuracy(t) = 1 - exp(-t / 100), evaluated every 10 steps: it crosses 0.5 at
    # t = 100 ln 2 = 69.3, so the first evaluation at or past the target is step 70
    steps = list(range(0, 301, 10))
    acc = [1 - math.exp(-t / 100) for t in steps]
    secs = [0.01 * t for t in steps]
    hit = time_to_target(steps, acc, 0.5, seconds=secs)
    assert hit == Crossing(70, pytest.approx(0.7), 300)
    assert hit.reached and hit.describe() == "step 70 (0.7 s)"
    # the loss form: first evaluation at or below the target
    loss = [math.exp(-t / 100) for t in steps]
    assert time_to_target(steps, loss, 0.5, higher_is_better=False).step == 70


def test_not_reached_is_distinct_from_any_step():
    steps = list(range(10, 301, 10))
    acc = [1 - math.exp(-t / 100) for t in steps]
    miss = time_to_target(steps, acc, 0.99)
    assert not miss.reached and miss.step is None and miss.seconds is None
    assert miss.steps_or_inf() == math.inf
    assert miss.describe() == "not reached in 300 steps"
    nan_curve = time_to_target([10, 20], [math.nan, math.nan], 0.0, steps_run=25,
                               diverged_step=25)
    assert nan_curve.describe() == "not reached in 25 steps (diverged at step 25)"


def test_time_to_target_rejects_bad_curves():
    with pytest.raises(ValueError, match="increasing"):
        time_to_target([10, 10], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="same length"):
        time_to_target([10, 20], [0.1], 0.5)


def test_median_interval_from_order_statistics():
    five = median_interval([5, 1, 4, 2, 3])
    # n = 5: even [min, max] covers the median with 1 - 2/32 = 93.75% only
    assert (five.estimate, five.low, five.high) == (3, 1, 5)
    assert five.level == pytest.approx(1 - 2 / 32)
    ten = median_interval(list(range(1, 11)))
    # n = 10: [x_(2), x_(9)] covers with 1 - 2 * 11/1024 = 97.9%; [x_(3), x_(8)] only 89%
    assert (ten.estimate, ten.low, ten.high) == (5.5, 2, 9)
    assert ten.level == pytest.approx(1 - 22 / 1024)
    with pytest.raises(ValueError, match="nan"):
        median_interval([1.0, math.nan])


def test_summarize_crossings_keeps_not_reached_apart():
    runs = [Crossing(70, 0.7, 300), Crossing(90, 0.9, 300), Crossing(None, None, 300)]
    s = summarize_crossings(runs)
    assert s.steps.estimate == 90 and s.steps.high == math.inf and s.reached == 2
    assert s.describe().startswith("median 90 steps [70, not reached]")
    missed = summarize_crossings([Crossing(None, None, 300)] * 2 + [Crossing(70, 0.7, 300)])
    assert missed.describe() == "median: not reached in 300 steps (1/3 seeds reached)"


def test_t_interval_matches_the_t_distribution():
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv.estimate == 2.0 and iv.high - 2.0 == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert math.isnan(t_interval([1.0]).low)
