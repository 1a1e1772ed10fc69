"""Statistics for the A/B dashboard, as pure functions so they can be checked by hand.

Users are randomised, playlists are not: the playlists of one user share that user's taste, so
they are not independent draws. The success rate is therefore analysed as a ratio metric per
randomisation unit (successful playlists / playlists, summed per user) with the delta method,
as GrowthBook does for ratio metrics; a test that treats playlists as independent
(``two_proportion_ztest``, kept for reference and for the A/A comparison) gives intervals that
are too narrow when some users make many playlists.

The difference can be shown two ways: a fixed-horizon interval (valid when looked at once, at a
sample size chosen in advance) or an always-valid (sequential) interval, the normal-mixture
confidence sequence of GrowthBook's sequential testing, which stays valid when the dashboard is
looked at every day. A sample-ratio mismatch is a chi-square goodness-of-fit test of the units
per arm against the configured weights, flagged below p = 0.001 because the test runs
continuously and a false alarm stops an experiment. Below a minimum sample none of these is
shown as a verdict: the approximations behind them do not hold yet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


def _scipy_stats():
    """``scipy.stats``, imported on first use: it is among the slowest imports of the app, and
    only the A/B report needs it, never a worker's start (bench/bench_startup.py)."""
    from scipy import stats

    return stats


SRM_THRESHOLD = 0.001
MIN_UNITS = 30            # users with a decided playlist per arm before a verdict is shown
MIN_SRM_UNITS = 30        # assigned users in all before the sample-ratio check says anything
SEQUENTIAL_TUNING = 1000  # users in all around which the always-valid interval is tightest


@dataclass(frozen=True)
class ProportionDiff:
    """Arm B minus arm A."""

    p_a: float
    p_b: float
    diff: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float

    @property
    def significant(self) -> bool:
        return self.p_value < 1.0 - self.confidence


@dataclass(frozen=True)
class SrmResult:
    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    flagged: bool


def proportion(successes: int, trials: int) -> float | None:
    """None rather than 0 for an empty arm, so that the page shows a dash and not a false 0%."""
    return successes / trials if trials else None


def two_proportion_ztest(x_a: int, n_a: int, x_b: int, n_b: int,
                         confidence: float = 0.95) -> ProportionDiff | None:
    """Compare B with A treating every trial as independent; None when an arm is empty. Not
    used for the dashboard's verdict (playlists of one user are not independent): kept as the
    naive reference that ``bench/aa_check.py`` prints beside the per-user test."""
    if n_a <= 0 or n_b <= 0:
        return None
    if not (0 <= x_a <= n_a and 0 <= x_b <= n_b):
        raise ValueError("successes must lie between 0 and the number of trials")
    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_b - p_a
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se_pooled == 0.0:
        # Both arms all-success or all-failure: no evidence of a difference.
        z, p_value = 0.0, 1.0
    else:
        z = diff / se_pooled
        p_value = float(2 * _scipy_stats().norm.sf(abs(z)))
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    crit = float(_scipy_stats().norm.ppf(0.5 + confidence / 2))
    return ProportionDiff(p_a, p_b, diff, z, p_value, diff - crit * se, diff + crit * se, confidence)


def srm_check(observed: Mapping[str, int], weights: Mapping[str, float],
              threshold: float = SRM_THRESHOLD) -> SrmResult | None:
    """Chi-square of units per arm against the weights; None when there is nothing to test."""
    arms = [a for a in weights if weights[a] > 0]
    total = sum(int(observed.get(a, 0)) for a in arms)
    weight_sum = sum(float(weights[a]) for a in arms)
    if len(arms) < 2 or total == 0 or weight_sum <= 0:
        return None
    obs = [int(observed.get(a, 0)) for a in arms]
    exp = [total * float(weights[a]) / weight_sum for a in arms]
    chi2, p_value = _scipy_stats().chisquare(obs, exp)
    return SrmResult(dict(zip(arms, obs)), dict(zip(arms, exp)), float(chi2), float(p_value),
                     bool(p_value < threshold))


@dataclass(frozen=True)
class RatioEstimate:
    """sum(x) / sum(n) over randomisation units, with its delta-method variance."""

    units: int
    numerator: float
    denominator: float
    ratio: float | None
    variance: float | None

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        if self.ratio is None or self.variance is None:
            return None
        half = _z(confidence) * math.sqrt(self.variance)
        return max(0.0, self.ratio - half), min(1.0, self.ratio + half)


@dataclass(frozen=True)
class RatioDiff:
    """Treatment ratio minus control ratio; ``method`` is "fixed" or "sequential"."""

    control: RatioEstimate
    treatment: RatioEstimate
    diff: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str

    @property
    def significant(self) -> bool:
        return self.p_value < 1.0 - self.confidence


def _z(confidence: float) -> float:
    return float(_scipy_stats().norm.ppf(0.5 + confidence / 2))


def ratio_estimate(numerators: Sequence[float], denominators: Sequence[float]) -> RatioEstimate:
    """Delta method for R = sum(x)/sum(n) over N units (x, n per unit):
    Var(R) ~ (s_x^2 - 2 R s_xn + R^2 s_n^2) / (N * mean(n)^2), sample (co)variances with N - 1.
    Units with n = 0 carry no information and are dropped. Needs two units for a variance."""
    x = np.asarray(numerators, dtype=float)
    n = np.asarray(denominators, dtype=float)
    keep = n > 0
    x, n = x[keep], n[keep]
    units = int(len(n))
    if units == 0:
        return RatioEstimate(0, 0.0, 0.0, None, None)
    ratio = float(x.sum() / n.sum())
    if units < 2:
        return RatioEstimate(units, float(x.sum()), float(n.sum()), ratio, None)
    mean_n = float(n.mean())
    var_x, var_n = float(x.var(ddof=1)), float(n.var(ddof=1))
    cov = float(np.cov(x, n, ddof=1)[0, 1])
    variance = max(0.0, (var_x - 2 * ratio * cov + ratio * ratio * var_n) / (units * mean_n ** 2))
    return RatioEstimate(units, float(x.sum()), float(n.sum()), ratio, variance)


def ratio_diff_test(control: RatioEstimate, treatment: RatioEstimate, confidence: float = 0.95,
                    *, sequential: bool = False,
                    tuning: float = SEQUENTIAL_TUNING) -> RatioDiff | None:
    """Difference of two independent ratio estimates; None without a variance in both arms.

    ``sequential``: the normal-mixture confidence sequence (mixing variance tau^2 = s^2 rho^2
    with s^2 = n Var(diff), rho chosen so the sequence is tightest at ``tuning`` units) and its
    always-valid p-value 1/Lambda, Lambda = sqrt(V/(V+tau^2)) exp(tau^2 d^2 / (2V(V+tau^2))).
    The interval excludes 0 exactly when that p-value is below 1 - confidence.
    """
    if control.variance is None or treatment.variance is None:
        return None
    diff = float(treatment.ratio - control.ratio)
    var = control.variance + treatment.variance
    se = math.sqrt(var)
    alpha = 1.0 - confidence
    if se == 0.0:
        # Every unit of both arms has the same rate: no evidence of a difference.
        return RatioDiff(control, treatment, diff, 0.0, 0.0, 1.0, diff, diff, confidence,
                         "sequential" if sequential else "fixed")
    z = diff / se
    if not sequential:
        half = _z(confidence) * se
        p_value = float(2 * _scipy_stats().norm.sf(abs(z)))
        return RatioDiff(control, treatment, diff, se, z, p_value, diff - half, diff + half,
                         confidence, "fixed")
    n = control.units + treatment.units
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    tau2 = var * n * rho2
    half = math.sqrt(var * (var + tau2) / tau2
                     * (2 * math.log(1 / alpha) + math.log((var + tau2) / var)))
    log_lambda = 0.5 * math.log(var / (var + tau2)) + tau2 * diff * diff / (2 * var * (var + tau2))
    p_value = float(min(1.0, math.exp(-log_lambda)))
    return RatioDiff(control, treatment, diff, se, z, p_value, diff - half, diff + half,
                     confidence, "sequential")


def latency_percentiles(values_ms: Sequence[float],
                        quantiles: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Linear-interpolated percentiles (numpy's default), keyed p50/p95/p99."""
    if len(values_ms) == 0:
        return {f"p{q}": None for q in quantiles}
    arr = np.asarray(values_ms, dtype=float)
    return {f"p{q}": float(np.percentile(arr, q)) for q in quantiles}
