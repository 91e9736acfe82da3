"""experiments.stats against hand computations with scipy.stats.t.ppf."""

import math

import numpy as np
import pytest
from scipy import stats

from gemix_monai.experiments.stats import (
    MIN_N,
    Bounds,
    Interval,
    bootstrap_interval,
    interval,
    metric_range,
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
    assert d["n_too_small"] is True and d["clipped"] is False and d["bounds"] is None
    assert isinstance(t_interval(VALUES), Interval)
    d = t_interval([0.9, 0.172], bounds=metric_range("fnr/cyst")).to_dict()
    assert d["clipped"] is True and d["bounds"] == (0.0, 1.0) and d["n_too_small"] is True


# ---------------------------------------------------------------------------------------------- the metric's range

T_975_1 = 12.706204736174705  # scipy.stats.t.ppf(0.975, 1)


def test_metric_range_of_rates_scores_their_differences_and_hd95():
    for name in ("accuracy", "macro_f1", "macro_auroc", "ece", "fnr/hemangioma", "f1/cyst", "auroc/x", "dice"):
        assert metric_range(name) == Bounds(0.0, 1.0, name)
        assert metric_range(name, difference=True) == Bounds(-1.0, 1.0, name, True)
    assert metric_range("hd95") == Bounds(0.0, math.inf, "hd95")
    assert metric_range("hd95", difference=True) == Bounds(-math.inf, math.inf, "hd95", True)
    assert metric_range("fnr/x").of_differences() == metric_range("fnr/x", difference=True)
    assert metric_range("fnr/x", difference=True).of_differences() == metric_range("fnr/x", difference=True)
    with pytest.raises(ValueError, match=r"^metric_range: no known range for metric 'loss'; known metrics: accuracy, "):
        metric_range("loss")


def test_a_rate_interval_of_two_seeds_is_clipped_to_0_1_and_marked_too_small():
    # the demo's FNR over 2 seeds: 0.536 [-4.089, 5.161] before this rule
    iv = t_interval([0.9, 0.172], bounds=metric_range("fnr/hemangioma"))
    half = T_975_1 * (0.728 / math.sqrt(2)) / math.sqrt(2)  # t * s / sqrt(n), s = |0.9 - 0.172| / sqrt(2)
    assert half == pytest.approx(4.625058523967588, rel=1e-12)
    assert iv.mean == pytest.approx(0.536, abs=1e-15) and iv.half_width == pytest.approx(half, rel=1e-12)
    assert (iv.lo, iv.hi) == (0.0, 1.0)
    assert iv.defined and iv.clipped and iv.n_too_small and iv.bounds == (0.0, 1.0) and not iv.excludes_zero
    assert iv.marks() == "clipped; n=2 too small"
    assert iv.brief() == "0.536 [0.000, 1.000] (clipped; n=2 too small)"
    unclipped = t_interval([0.9, 0.172])
    assert (unclipped.lo, unclipped.hi) == pytest.approx((0.536 - half, 0.536 + half), rel=1e-12)
    assert not unclipped.clipped and unclipped.brief() == "0.536 [-4.089, 5.161] (n=2 too small)"


def test_a_paired_difference_of_rates_is_clipped_to_minus_1_1():
    a = {0: 0.95, 1: 0.33, 2: 0.31}
    b = {0: 0.05, 1: 0.30, 2: 0.31}  # differences 0.90, 0.03, 0.00
    d = [0.90, 0.03, 0.00]
    mean = 0.31
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)  # sqrt(0.4743 / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)  # 4.302652729911275 * 0.4869804924...  / 1.7320508...
    assert half == pytest.approx(1.2698293848650162, rel=1e-12)
    for bounds in (metric_range("fnr/cyst"), metric_range("fnr/cyst", difference=True)):
        iv = paired_interval(a, b, bounds=bounds)
        assert iv.mean == pytest.approx(0.31, abs=1e-15) and iv.n == 3
        assert iv.lo == pytest.approx(0.31 - half, rel=1e-12) and iv.hi == 1.0  # 1.58 cut to 1
        assert iv.clipped and not iv.n_too_small and iv.bounds == (-1.0, 1.0) and not iv.excludes_zero
        assert iv.brief(signed=True) == "+0.310 [-0.960, +1.000] (clipped)"
    direct = interval(d, bounds=metric_range("fnr/cyst", difference=True))
    assert (direct.lo, direct.hi, direct.clipped) == (pytest.approx(0.31 - half, rel=1e-12), 1.0, True)


def test_an_interval_inside_the_range_is_not_clipped_and_its_numbers_do_not_change():
    plain, bounded = t_interval(VALUES), t_interval(VALUES, bounds=metric_range("macro_f1"))
    assert (bounded.mean, bounded.lo, bounded.hi, bounded.half_width) == (
        plain.mean,
        plain.lo,
        plain.hi,
        plain.half_width,
    )
    assert not bounded.clipped and bounded.bounds == (0.0, 1.0) and bounded.marks() == ""
    assert bounded.brief() == "0.724 [0.698, 0.750]"


def test_hd95_is_cut_at_zero_only():
    iv = t_interval([2.0, 3.0, 30.0], bounds=metric_range("hd95"))
    sd = math.sqrt(((2 - 35 / 3) ** 2 + (3 - 35 / 3) ** 2 + (30 - 35 / 3) ** 2) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert iv.lo == 0.0 and iv.hi == pytest.approx(35 / 3 + half, rel=1e-12) and iv.clipped
    assert iv.brief() == "11.667 [0.000, 51.127] (clipped)" and iv.bounds == (0.0, math.inf)
    diff = t_interval([-20.0, 1.0, 5.0], bounds=metric_range("hd95", difference=True))
    assert not diff.clipped and diff.lo == pytest.approx(-14.0 / 3 - diff.half_width)


def test_a_value_outside_the_metric_range_is_an_error_naming_the_metric():
    with pytest.raises(ValueError) as caught:
        t_interval([0.5, 1.2, 0.7], bounds=metric_range("fnr/cyst"))
    assert str(caught.value) == (
        "values of fnr/cyst must lie in [0, 1], got [1.2]: a value outside the metric's range is a bug upstream, "
        "not a measurement"
    )
    with pytest.raises(ValueError, match=r"^values of macro_f1 must lie in \[0, 1\], got \[-0.1\]"):
        paired_interval({0: -0.1, 1: 0.5}, {0: 0.2, 1: 0.3}, bounds=metric_range("macro_f1"))
    with pytest.raises(ValueError, match=r"^differences of dice must lie in \[-1, 1\], got \[1.5\]"):
        bootstrap_interval([1.5, 0.2], bounds=metric_range("dice", difference=True))
    with pytest.raises(TypeError, match="bounds must be a Bounds"):
        t_interval(VALUES, bounds=(0, 1))
    assert t_interval([1.0 + 1e-12, 0.5], bounds=metric_range("accuracy")).n == 2  # rounding is not an error


def test_n_too_small_below_three_values():
    assert MIN_N == 3
    two, three = t_interval([0.6, 0.7]), t_interval([0.6, 0.7, 0.65])
    assert two.defined and two.n_too_small and two.brief() == "0.650 [0.015, 1.285] (n=2 too small)"
    assert three.defined and not three.n_too_small and three.marks() == ""
    one = t_interval([0.6], bounds=metric_range("accuracy"))
    assert not one.defined and one.n_too_small and one.marks() == "" and one.brief() == "0.600 (n=1: no interval)"
    assert one.bounds == (0.0, 1.0) and not one.clipped


def test_a_bootstrap_interval_never_leaves_the_range():
    iv = bootstrap_interval([0.0, 0.0, 1.0], n_resamples=2000, bounds=metric_range("sensitivity/x"))
    assert (iv.lo, iv.hi) == (0.0, 1.0) and not iv.clipped and iv.method == "bootstrap"
