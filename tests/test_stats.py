"""The dashboard statistics against numbers worked out by hand (shown in each test)."""
from __future__ import annotations

import math

import pytest

from app import stats


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


def test_wilson_interval_hand_example():
    # 30/100, z = 1.959964: centre = (0.3 + z^2/200) / (1 + z^2/100) = 0.307399,
    # half = z * sqrt(0.0021 + z^2/40000) / (1 + z^2/100) = 0.088450 -> [0.218949, 0.395849]
    low, high = stats.wilson_interval(30, 100)
    assert low == pytest.approx(0.218949, abs=1e-5)
    assert high == pytest.approx(0.395849, abs=1e-5)
    assert stats.wilson_interval(0, 0) is None
    assert stats.wilson_interval(0, 5)[0] == 0.0


def test_latency_percentiles_and_proportion():
    # 1..100 ms: numpy linear interpolation gives p50 = 50.5, p95 = 95.05, p99 = 99.01
    p = stats.latency_percentiles(list(range(1, 101)))
    assert p == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}
    assert stats.latency_percentiles([]) == {"p50": None, "p95": None, "p99": None}
    assert stats.proportion(1, 4) == 0.25 and stats.proportion(0, 0) is None
    assert math.isclose(stats.proportion(3, 3), 1.0)
