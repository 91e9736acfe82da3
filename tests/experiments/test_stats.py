"""experiments.stats against hand computations with scipy.stats.t.ppf."""

import math

import numpy as np
import pytest
from scipy import stats

from gemix_monai.experiments.stats import (
    Interval,
    bootstrap_interval,
    interval,
    paired_differences,
    paired_interval,
    t_interval,
)

VALUES = [0.70, 0.72, 0.75, 0.71, 0.74]


def test_t_interval_equals_the_hand_computation():
    n = 5
    mean = (0.70 + 0.72 + 0.75 + 0.71 + 0.74) / n  # 0.724
    ss = sum((v - mean) ** 2 for v in VALUES)  # 0.00172
    sd = math.sqrt(ss / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)  # t_{0.975, 4} = 2.776...
    iv = t_interval(VALUES)
    assert iv.n == 5 and iv.defined and iv.method == "t" and iv.confidence == 0.95
    assert iv.mean == pytest.approx(0.724, abs=1e-12)
    assert iv.half_width == pytest.approx(half, rel=1e-12)
    assert (iv.lo, iv.hi) == pytest.approx((mean - half, mean + half), rel=1e-12)
    assert half == pytest.approx(2.7764451 * math.sqrt(0.00172 / 4) / math.sqrt(5), rel=1e-6)
    assert iv.excludes_zero


def test_t_interval_other_confidence_and_non_finite_values_are_dropped():
    iv = t_interval(VALUES + [float("nan")], confidence=0.9)
    sd = np.std(VALUES, ddof=1)
    assert iv.n == 5
    assert iv.half_width == pytest.approx(stats.t.ppf(0.95, 4) * sd / math.sqrt(5))
    with pytest.raises(ValueError, match="confidence"):
        t_interval(VALUES, confidence=95)


def test_paired_differences_match_by_key_and_equal_the_hand_computation():
    a = {(0, s): v for s, v in enumerate(VALUES)}
    b = {(0, 0): 0.68, (0, 1): 0.71, (0, 2): 0.70, (0, 3): 0.72, (0, 4): 0.70, (0, 9): 0.5}  # (0, 9) has no partner
    keys, d = paired_differences(a, b)
    assert keys == [(0, s) for s in range(5)]
    expected = [0.02, 0.01, 0.05, -0.01, 0.04]
    assert d == pytest.approx(expected)
    mean = sum(expected) / 5  # 0.022
    sd = math.sqrt(sum((x - mean) ** 2 for x in expected) / 4)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    iv = paired_interval(a, b)
    assert iv.n == 5
    assert (iv.mean, iv.lo, iv.hi) == pytest.approx((mean, mean - half, mean + half))
    assert iv.lo < 0 < iv.hi and not iv.excludes_zero  # -0.0068 .. 0.0508


def test_interval_of_one_value_is_undefined_not_zero_width():
    for iv in (t_interval([0.7]), bootstrap_interval([0.7]), paired_interval({1: 0.7}, {1: 0.6})):
        assert not iv.defined and iv.n == 1
        assert math.isnan(iv.lo) and math.isnan(iv.hi) and math.isnan(iv.half_width)
        assert "undefined" in iv.note
        assert not iv.excludes_zero
    assert t_interval([0.7]).mean == 0.7
    empty = t_interval([])
    assert empty.n == 0 and math.isnan(empty.mean) and not empty.defined


def test_equal_values_give_a_computed_zero_width_interval():
    iv = t_interval([0.5, 0.5, 0.5])
    assert iv.defined and iv.half_width == 0.0 and iv.lo == iv.hi == 0.5


def test_bootstrap_is_reproducible_with_a_seed_and_a_percentile_interval():
    a = bootstrap_interval(VALUES, seed=3, n_resamples=2000)
    b = bootstrap_interval(VALUES, seed=3, n_resamples=2000)
    assert a == b and a.method == "bootstrap" and a.defined
    rng = np.random.default_rng(3)
    x = np.asarray(VALUES)
    means = x[rng.integers(0, 5, size=(2000, 5))].mean(axis=1)
    assert (a.lo, a.hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert min(VALUES) <= a.lo <= a.mean <= a.hi <= max(VALUES)
    assert interval(VALUES, "bootstrap", seed=3, n_resamples=2000) == a
    with pytest.raises(ValueError, match="jackknife"):
        interval(VALUES, "jackknife")


def test_interval_to_dict_carries_the_flags():
    d = t_interval([0.7]).to_dict()
    assert d["defined"] is False and d["excludes_zero"] is False and d["n"] == 1
    assert isinstance(t_interval(VALUES), Interval)
