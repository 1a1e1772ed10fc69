"""The dashboard statistics against numbers worked out by hand (shown in each test)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from app.experiments import stats


def test_two_proportion_ztest_hand_example():
    # A: 30/100, B: 45/100.  pooled p = 75/200 = 0.375
    # pooled SE = sqrt(0.375 * 0.625 * (1/100 + 1/100)) = sqrt(0.0046875) = 0.0684653
    # z = 0.15 / 0.0684653 = 2.19089; two-sided p = 2 * (1 - Phi(2.19089)) = 0.028460
    # unpooled SE = sqrt(0.3*0.7/100 + 0.45*0.55/100) = sqrt(0.004575) = 0.0676387
    # 95% CI = 0.15 -/+ 1.959964 * 0.0676387 = -/+ 0.132570 = [0.017430, 0.282570]
    r = stats.two_proportion_ztest(30, 100, 45, 100)
    assert r is not None
    assert r.p_a == pytest.approx(0.30) and r.p_b == pytest.approx(0.45)
    assert r.diff == pytest.approx(0.15)
    assert r.z == pytest.approx(2.19089, abs=1e-5)
    assert r.p_value == pytest.approx(0.028460, abs=1e-6)
    assert r.ci_low == pytest.approx(0.017430, abs=1e-6)
    assert r.ci_high == pytest.approx(0.282570, abs=1e-6)
    assert r.significant


def test_ztest_is_antisymmetric_and_handles_degenerate_arms():
    ab = stats.two_proportion_ztest(30, 100, 45, 100)
    ba = stats.two_proportion_ztest(45, 100, 30, 100)
    assert ba.z == pytest.approx(-ab.z) and ba.p_value == pytest.approx(ab.p_value)
    same = stats.two_proportion_ztest(10, 10, 20, 20)
    assert same.z == 0.0 and same.p_value == 1.0 and not same.significant
    assert stats.two_proportion_ztest(0, 0, 3, 10) is None
    with pytest.raises(ValueError):
        stats.two_proportion_ztest(11, 10, 3, 10)


def test_srm_hand_example():
    # 520 vs 480 against 50/50: expected 500 each; chi2 = (20^2 + 20^2) / 500 = 1.6;
    # with 1 degree of freedom p = P(chi2_1 > 1.6) = 2 * (1 - Phi(sqrt(1.6))) = 0.205903
    ok = stats.srm_check({"base": 520, "advanced": 480}, {"base": 0.5, "advanced": 0.5})
    assert ok.chi2 == pytest.approx(1.6)
    assert ok.p_value == pytest.approx(0.205903, abs=1e-6)
    assert ok.expected == {"base": 500.0, "advanced": 500.0}
    assert not ok.flagged
    # 600 vs 400: chi2 = (100^2 + 100^2) / 500 = 40; p = 2.54e-10 < 0.001 -> flagged
    bad = stats.srm_check({"base": 600, "advanced": 400}, {"base": 0.5, "advanced": 0.5})
    assert bad.chi2 == pytest.approx(40.0)
    assert bad.p_value == pytest.approx(2.54e-10, rel=0.01)
    assert bad.flagged


def test_srm_uses_uneven_weights_and_skips_untestable_cases():
    # 90/10 split observed exactly as 900/100 -> chi2 = 0, p = 1
    r = stats.srm_check({"base": 900, "advanced": 100}, {"base": 0.9, "advanced": 0.1})
    assert r.chi2 == pytest.approx(0.0) and r.p_value == pytest.approx(1.0)
    # A zero-weight arm is not part of the test; one arm left means no test.
    assert stats.srm_check({"base": 5}, {"base": 1.0, "advanced": 0.0}) is None
    assert stats.srm_check({}, {"base": 0.5, "advanced": 0.5}) is None


def test_latency_percentiles_and_proportion():
    # 1..100 ms: numpy linear interpolation gives p50 = 50.5, p95 = 95.05, p99 = 99.01
    p = stats.latency_percentiles(list(range(1, 101)))
    assert p == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}
    assert stats.latency_percentiles([]) == {"p50": None, "p95": None, "p99": None}
    assert stats.proportion(1, 4) == 0.25 and stats.proportion(0, 0) is None
    assert math.isclose(stats.proportion(3, 3), 1.0)


def test_delta_method_ratio_hand_example():
    # Three users: successes x = [1, 0, 2], decided playlists n = [1, 2, 2].
    # R = 3 / 5 = 0.6; mean(n) = 5/3; s_x^2 = (0 + 1 + 1) / 2 = 1;
    # s_n^2 = (4/9 + 1/9 + 1/9) / 2 = 1/3; s_xn = (0*(-2/3) + (-1)(1/3) + (1)(1/3)) / 2 = 0
    # Var(R) = (1 - 0 + 0.36 / 3) / (3 * 25/9) = 1.12 / 8.3333 = 0.1344
    r = stats.ratio_estimate([1, 0, 2], [1, 2, 2])
    assert r.units == 3 and r.ratio == pytest.approx(0.6)
    assert r.variance == pytest.approx(0.1344)
    # a user without decided playlists is no unit; one unit has no variance
    assert stats.ratio_estimate([1, 0, 2, 0], [1, 2, 2, 0]).variance == pytest.approx(0.1344)
    assert stats.ratio_estimate([1], [2]).variance is None
    assert stats.ratio_estimate([], []).ratio is None


def test_ratio_diff_fixed_and_sequential_hand_example():
    a = stats.RatioEstimate(100, 30, 100, 0.30, 0.0021)
    b = stats.RatioEstimate(100, 45, 100, 0.45, 0.0025)
    # fixed: se = sqrt(0.0046) = 0.0678233, z = 0.15 / se = 2.21163, p = 0.026991
    r = stats.ratio_diff_test(a, b)
    assert r.method == "fixed"
    assert r.z == pytest.approx(2.21163, abs=1e-5)
    assert r.p_value == pytest.approx(0.026991, abs=1e-5)
    assert r.ci_low == pytest.approx(0.15 - 1.959964 * 0.0678233, abs=1e-6)
    # sequential (tuning 1000, alpha 0.05): rho^2 = (5.99146 + ln 6.99146) / 1000 = 0.00793615
    # tau^2 = 0.0046 * 200 * rho^2 = 0.00730126; V (V + tau^2) / tau^2 = 0.00749822;
    # half = sqrt(0.00749822 * (2 ln 20 + ln(0.01190126 / 0.0046))) = sqrt(0.00749822 * 6.94204)
    #      = 0.228151
    s = stats.ratio_diff_test(a, b, sequential=True)
    assert s.method == "sequential"
    assert s.ci_high - s.diff == pytest.approx(0.228151, abs=1e-5)
    assert not s.significant and s.p_value > 0.05  # wider than the fixed interval
    assert s.ci_high - s.ci_low > r.ci_high - r.ci_low
    assert stats.ratio_diff_test(a, stats.RatioEstimate(1, 1, 1, 1.0, None)) is None


def _aa_runs(runs: int, users: int, seed: int):
    """Synthetic A/A experiments with heavy users: playlists per user are heavy-tailed and each
    user has their own success probability; both arms draw from the same population."""
    rng = np.random.default_rng(seed)
    delta_hits = naive_hits = 0
    for _ in range(runs):
        arms = []
        for _arm in range(2):
            n = np.minimum(rng.pareto(1.5, users).astype(int) + 1, 40)
            p = rng.beta(1.5, 1.5, users)
            x = rng.binomial(n, p)
            arms.append((x, n))
        (xa, na), (xb, nb) = arms
        d = stats.ratio_diff_test(stats.ratio_estimate(xa, na), stats.ratio_estimate(xb, nb))
        z = stats.two_proportion_ztest(int(xa.sum()), int(na.sum()), int(xb.sum()), int(nb.sum()))
        delta_hits += d.p_value < 0.05
        naive_hits += z.p_value < 0.05
    return delta_hits / runs, naive_hits / runs


def test_aa_false_positive_rate_of_user_level_test_stays_near_five_percent():
    delta_rate, naive_rate = _aa_runs(runs=400, users=200, seed=7)
    # 400 runs: a true 5 % rate lands in 2.9-7.4 % with 95 % probability
    assert 0.015 <= delta_rate <= 0.10, delta_rate
    # playlists treated as independent: heavy users make it flag far too often
    assert naive_rate >= 0.20, naive_rate
