"""Recording-level bootstrap intervals and paired differences (shared/stats.py)."""
import numpy as np
import pytest

from shared.stats import Interval, bootstrap_mean, bootstrap_ratio, format_interval, paired_difference


def test_mean_value_counts_and_interval_brackets_it():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(40), 10)
    values = (rng.random(400) < 0.7).astype(float)
    ci = bootstrap_mean(values, groups, seed=0)
    assert ci.value == pytest.approx(values.mean())
    assert (ci.n, ci.n_groups) == (400, 40)
    assert ci.lo < ci.value < ci.hi
    # binomial half-width at n=400 is ~4.5 points; clusters of independent items stay close to it
    assert 0.02 < (ci.hi - ci.lo) / 2 < 0.08


def test_clustered_items_widen_the_interval():
    # every recording all right or all wrong: 40 effective samples, not 400
    rng = np.random.default_rng(2)
    per_rec = (rng.random(40) < 0.5).astype(float)
    groups = np.repeat(np.arange(40), 10)
    clustered = bootstrap_mean(np.repeat(per_rec, 10), groups, seed=0)
    independent = bootstrap_mean(np.repeat(per_rec, 10), np.arange(400), seed=0)
    assert (clustered.hi - clustered.lo) > 2.5 * (independent.hi - independent.lo)


def test_single_group_has_no_spread_and_same_seed_same_interval():
    ci = bootstrap_mean([1, 0, 1], ["r", "r", "r"])
    assert ci.lo == ci.hi == ci.value
    a = bootstrap_mean([1, 0, 1, 1, 0], list("aabbc"), seed=3)
    b = bootstrap_mean([1, 0, 1, 1, 0], list("aabbc"), seed=3)
    assert a == b


def test_ratio_is_a_rate():
    ci = bootstrap_ratio([3, 1, 0, 2], [1.0, 1.0, 0.5, 0.5], ["a", "b", "c", "d"])
    assert ci.value == pytest.approx(6 / 3)


def test_paired_difference_detects_a_real_gain_and_not_a_null_one():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(50), 8)
    base = (rng.random(400) < 0.5).astype(float)
    better = np.maximum(base, (rng.random(400) < 0.4).astype(float))
    gain = paired_difference(better, base, groups, seed=0)
    assert gain.value > 0.15 and gain.excludes_zero and gain.p_value < 0.01
    same = paired_difference(base, base[::-1].copy(), groups, seed=0)
    assert not same.excludes_zero or abs(same.value) < 0.05


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="lengths differ"):
        bootstrap_mean([1, 0], ["a"])
    with pytest.raises(ValueError, match="nothing to average"):
        bootstrap_mean([], [])
    with pytest.raises(ValueError, match="no items"):
        paired_difference([], [], [])


def test_format_and_round_trip():
    ci = Interval(0.625, 0.551, 0.698, 80, 40)
    assert format_interval(ci) == "62.5 [55.1, 69.8]"
    assert format_interval(ci.to_dict()) == "62.5 [55.1, 69.8]"
    assert format_interval(Interval(0.1, 0.05, 0.2, 3, 2), signed=True) == "+10.0 [+5.0, +20.0]"
    assert format_interval(None) == "-"


def test_paired_ratio_of_two_systems():
    from shared.stats import paired_ratio

    rng = np.random.default_rng(0)
    groups = [f"r{k}" for k in range(30) for _ in range(5)]
    base = rng.random(len(groups)) + np.repeat(rng.random(30) * 3, 5)  # recordings differ a lot
    half = 0.5 * base  # A spends half of what B spends, on the same recordings
    iv = paired_ratio(half, np.ones_like(half), groups, base, np.ones_like(base), groups)
    assert iv.value == pytest.approx(0.5) and iv.lo == pytest.approx(0.5) and iv.hi == pytest.approx(0.5)
    noisy = half * rng.uniform(0.8, 1.2, len(half))
    iv = paired_ratio(noisy, np.ones_like(half), groups, base, np.ones_like(base), groups)
    assert iv.lo < iv.value < iv.hi and 0.4 < iv.lo and iv.hi < 0.6 and iv.n_groups == 30
    with pytest.raises(ValueError, match="nothing to compare"):
        paired_ratio([1.0], [1.0], ["a"], [0.0], [1.0], ["a"])


def test_quantile_with_a_recording_interval():
    from shared.stats import bootstrap_quantile

    values = [100.0, 110.0, 120.0, 900.0, 105.0, 115.0]
    groups = ["a", "a", "b", "b", "c", "c"]
    p95 = bootstrap_quantile(values, groups, 0.95, seed=1)
    assert p95.value == pytest.approx(np.quantile(values, 0.95)) and p95.n == 6 and p95.n_groups == 3
    assert p95.lo < p95.value <= p95.hi  # a resample without recording b has no 900 ms tail
    assert bootstrap_quantile(values, ["a"] * 6, 0.5).lo == bootstrap_quantile(values, ["a"] * 6, 0.5).hi
    with pytest.raises(ValueError, match="q: must be in"):
        bootstrap_quantile(values, groups, 95)
    with pytest.raises(ValueError, match="6 values but 2 groups"):
        bootstrap_quantile(values, groups[:2], 0.5)


def test_paired_quantile_difference_sees_a_tail_cut_on_the_same_items():
    from shared.stats import paired_quantile_difference

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 10)
    base = rng.gamma(2.0, 200.0, size=300)
    faster = np.minimum(base, 250.0)  # the same items, the tail cut at 250
    d = paired_quantile_difference(faster, base, groups, 0.95, seed=1)
    assert d.value == pytest.approx(250.0 - np.quantile(base, 0.95)) and d.hi < 0 and d.p_value < 0.01
    same = paired_quantile_difference(base, base, groups, 0.95)
    assert same.value == 0 and same.lo == 0 and same.hi == 0
    with pytest.raises(ValueError, match="lengths differ"):
        paired_quantile_difference(base[:3], base, groups, 0.5)
