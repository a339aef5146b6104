"""The sampling-tolerance helpers every statistical test relies on.

A tolerance helper that passed everything would make every test that uses
it pass too, so it is checked both ways: it passes on a sample whose std is
the formula's value and fails on one off by three times its tolerance, and
the standard errors it assumes are measured here on simulated draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import keras_weightinit as kwi
from tests.helpers import KURTOSIS, assert_mean, assert_std, mean_se, std_rel_se

DISTRIBUTIONS = ["normal", "uniform", "truncated_normal"]


def _draws(distribution, size, seed):
    rng = np.random.default_rng(seed)
    if distribution == "normal":
        return rng.normal(size=size)
    if distribution == "uniform":
        return rng.uniform(-1, 1, size=size)
    return stats.truncnorm(-2, 2).rvs(size=size, random_state=rng)


def _with_std(distribution, n, std, seed=0):
    """n draws from `distribution`, rescaled to have exactly the sample std `std`."""
    x = _draws(distribution, n, seed)
    x = x - x.mean()
    return x / x.std() * std


def test_kurtosis_table_matches_scipy():
    # scipy reports the excess kurtosis (k - 3); computed independently of
    # the closed form in helpers.
    assert KURTOSIS["normal"] == 3.0
    assert KURTOSIS["uniform"] == pytest.approx(3 + stats.uniform.stats(moments="k"), rel=1e-12)
    trunc = 3 + float(stats.truncnorm(-2, 2).stats(moments="k"))
    assert KURTOSIS["truncated_normal"] == pytest.approx(trunc, rel=1e-10)
    assert KURTOSIS["truncated_normal"] == pytest.approx(2.3655, abs=1e-4)


def test_normal_se_is_one_over_sqrt_2n():
    for n in (2, 1000, 30_000):
        assert std_rel_se(n) == pytest.approx(1 / math.sqrt(2 * n), rel=1e-12)
    assert mean_se(400, 3.0) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="Argument `n`"):
        std_rel_se(1)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_se_formula_matches_simulated_draws(distribution):
    # 4000 samples of n = 400: the spread of their stds is the quantity the
    # formula predicts. Its own estimate has relative error ≈ 1/sqrt(2·4000)
    # = 1.1% (up to kurtosis), plus O(1/n) from the delta method, so 6% is
    # ~5 of those; the three formulas are 17% to 37% apart, so a wrong
    # kurtosis fails.
    reps, n = 4000, 400
    s = _draws(distribution, (reps, n), seed=1).std(axis=1)
    measured = s.std() / s.mean()
    assert measured == pytest.approx(std_rel_se(n, distribution), rel=0.06)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("n_se", [4.0, 6.0])
def test_assert_std_passes_on_the_formula_and_fails_three_tolerances_off(distribution, n_se):
    n, sigma = 30_000, 0.05
    tol = n_se * std_rel_se(n, distribution)
    assert (
        assert_std(_with_std(distribution, n, sigma), sigma, n_se, distribution=distribution) == tol
    )
    # Inside and just outside the tolerance, on both sides.
    for factor, passes in ((0.9, True), (1.1, False), (3.0, False)):
        for sign in (1, -1):
            w = _with_std(distribution, n, sigma * (1 + sign * factor * tol))
            if passes:
                assert_std(w, sigma, n_se, distribution=distribution)
            else:
                with pytest.raises(AssertionError, match="standard errors"):
                    assert_std(w, sigma, n_se, distribution=distribution)


def test_assert_std_on_a_measured_scalar_needs_n():
    tol = 5 * std_rel_se(10_000)
    assert_std(2.0 * (1 + 0.9 * tol), 2.0, 5, n=10_000)
    with pytest.raises(AssertionError, match="n=10000"):
        assert_std(2.0 * (1 + 3 * tol), 2.0, 5, n=10_000, what="shard")
    with pytest.raises(ValueError, match="Argument `n`"):
        assert_std(2.0, 2.0, 5)


def test_assert_std_tells_he_from_lecun_on_a_real_draw():
    # 30,000 He-normal draws: 6 SE is 2.4%, while LeCun's std is sqrt(2) smaller.
    w = kwi.HeNormalCustom(seed=3)((250, 120))
    assert_std(w, math.sqrt(2 / 250), 6)
    with pytest.raises(AssertionError):
        assert_std(w, math.sqrt(1 / 250), 6)


def test_assert_mean_passes_at_the_formula_and_fails_three_tolerances_off():
    n, sigma, n_se = 10_000, 0.5, 5.0
    tol = n_se * sigma / math.sqrt(n)
    x = _with_std("normal", n, sigma)  # mean exactly 0
    assert assert_mean(x, 0.0, sigma, n_se) == pytest.approx(tol)
    assert_mean(x + 0.9 * tol, 0.0, sigma, n_se)
    for shift in (1.1 * tol, -1.1 * tol, 3 * tol):
        with pytest.raises(AssertionError, match="standard errors"):
            assert_mean(x + shift, 0.0, sigma, n_se)
