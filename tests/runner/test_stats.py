"""Intervals that cover what they claim at the seeds a claim has: simulated coverage of every interval at n = 3, 5
and 10, normal and log-normal, paired and unpaired, against the truth the simulation knows; the percentile bootstrap
the report used before fails the same check; medians to a target keep a bootstrap that says when n is too small."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from experiments.analysis import stats

REPS = 4000  # coverage ± 0.007 (one standard error) around 0.95


def draw(rng, dist, mean, cv, size):
    """Values with the given mean and coefficient of variation: normal, or log-normal with that mean."""
    if dist == "normal":
        return rng.normal(mean, cv * mean, size)
    sigma = math.sqrt(math.log1p(cv**2))
    return rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, size)


def covered(interval, truth) -> float:
    _, lo, hi = interval
    return float(np.mean((lo <= truth) & (truth <= hi)))


CASES = [(n, dist) for n in (3, 5, 10) for dist in ("normal", "lognormal")]


@pytest.mark.parametrize("n,dist", CASES)
def test_mean_difference_and_ratio_intervals_cover_95_percent_unpaired(n, dist):
    rng = np.random.default_rng(n)
    a = draw(rng, dist, 2.0, 0.1, (REPS, n))
    b = draw(rng, dist, 1.5, 0.2, (REPS, n))  # unequal spreads: Welch, not the pooled t
    assert 0.93 <= covered(stats.mean_ci(a), 2.0) <= 0.98
    assert 0.93 <= covered(stats.difference_ci(a, b), 0.5) <= 0.98
    assert 0.93 <= covered(stats.ratio_ci(a, b), 2.0 / 1.5) <= 0.98


@pytest.mark.parametrize("n,dist", CASES)
def test_paired_intervals_cover_95_percent(n, dist):
    """Arms that share a seed share its draw (the same batches): a common factor per seed, own noise per arm."""
    rng = np.random.default_rng(100 + n)
    shared = draw(rng, dist, 1.0, 0.3, (REPS, n))
    a = 2.0 * shared * draw(rng, dist, 1.0, 0.03, (REPS, n))
    b = 1.5 * shared * draw(rng, dist, 1.0, 0.03, (REPS, n))
    assert 0.93 <= covered(stats.ratio_ci(a, b, paired=True), 2.0 / 1.5) <= 0.98
    shared = draw(rng, dist, 1.0, 0.3, (REPS, n))
    a, b = shared + draw(rng, dist, 0.5, 0.05, (REPS, n)), shared + draw(rng, dist, 0.25, 0.05, (REPS, n))
    assert 0.93 <= covered(stats.difference_ci(a, b, paired=True), 0.25) <= 0.98
    # pairing is what makes the interval useful here: it is far narrower than the unpaired one on the same data
    _, lo_p, hi_p = stats.difference_ci(a[:50], b[:50], paired=True)
    _, lo_u, hi_u = stats.difference_ci(a[:50], b[:50])
    assert np.median(hi_p - lo_p) < 0.5 * np.median(hi_u - lo_u)


def test_the_percentile_bootstrap_does_not_cover_at_three_seeds():
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 0.1, (1000, 3))
    hits = np.mean([lo <= 1.0 <= hi for lo, hi in (stats.bootstrap_ci(row, np.mean)[1:] for row in x)])
    assert hits < 0.85  # [min, max] of three values: about 75%
    assert stats.bootstrap_note(3) and stats.bootstrap_note(20) is None


def test_intervals_agree_with_scipy_and_formulas():
    a, b = np.array([2.01, 2.05, 1.98, 2.10]), np.array([1.40, 1.55, 1.61])
    est, lo, hi = stats.mean_ci(a)
    ref = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
    np.testing.assert_allclose([est, lo, hi], [a.mean(), *ref], rtol=1e-12)
    est, lo, hi = stats.difference_ci(a, b)
    welch = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    np.testing.assert_allclose([lo, hi], [welch.low, welch.high], rtol=1e-10)
    est, lo, hi = stats.difference_ci(a[:3], b, paired=True)
    paired = sps.ttest_rel(a[:3], b).confidence_interval(0.95)
    np.testing.assert_allclose([est, lo, hi], [np.mean(a[:3] - b), paired.low, paired.high], rtol=1e-10)
    est, lo, hi = stats.ratio_ci(a, b)
    assert est == pytest.approx(a.mean() / b.mean()) and lo < est < hi
    est, _, _ = stats.ratio_ci(a[:3], b, paired=True)
    assert est == pytest.approx(math.exp(np.mean(np.log(a[:3] / b))))
    assert all(math.isnan(v) for v in stats.mean_ci([3.0])[1:])  # one value: no interval
    assert stats.mean_ci([1.0, float("nan"), 3.0])[0] == 2.0  # NaNs dropped
    with pytest.raises(ValueError, match="paired"):
        stats.difference_ci([1.0, 2.0], [1.0, 2.0, 3.0], paired=True)
    lo99 = stats.mean_ci(a, level=0.99)[1]
    assert lo99 < stats.mean_ci(a)[1]  # a Bonferroni level is wider


def test_time_to_target_censoring_and_median_ratio():
    assert stats.time_to_target([0, 10, 20], [0.1, 0.5, 0.9], 0.5) == 10
    assert stats.time_to_target([0, 10], [1.0, 0.4], 0.3, mode="min") == math.inf
    fast, slow = [10.0, 12.0, 11.0, 9.0], [20.0, 22.0, 24.0, math.inf]
    ratio, lo, hi = stats.median_ratio_ci(fast, slow)
    assert ratio == np.median(fast) / np.median(slow) and lo <= ratio <= hi < 1
    assert stats.median_ratio_ci([math.inf] * 3, fast)[0] == math.inf  # all censored: never
