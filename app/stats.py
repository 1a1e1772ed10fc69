"""Statistics for the A/B dashboard, as pure functions so they can be checked by hand.

Conventions follow the usual online-experiment practice: the difference between two arms is
judged with a two-sided two-proportion z-test (pooled standard error under the null), its 95%
confidence interval uses the unpooled (Wald) standard error, and a sample-ratio mismatch is a
chi-square goodness-of-fit test of the units per arm against the configured weights, flagged
below p = 0.001 because the test runs continuously and a false alarm stops an experiment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as _sp

SRM_THRESHOLD = 0.001


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


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Interval for one arm's rate; Wilson stays inside [0, 1] and behaves at small counts."""
    if trials <= 0:
        return None
    z = float(_sp.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_ztest(x_a: int, n_a: int, x_b: int, n_b: int,
                         confidence: float = 0.95) -> ProportionDiff | None:
    """Compare B with A; None when either arm is empty (no test is possible)."""
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
        p_value = float(2 * _sp.norm.sf(abs(z)))
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    crit = float(_sp.norm.ppf(0.5 + confidence / 2))
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
    chi2, p_value = _sp.chisquare(obs, exp)
    return SrmResult(dict(zip(arms, obs)), dict(zip(arms, exp)), float(chi2), float(p_value),
                     bool(p_value < threshold))


def latency_percentiles(values_ms: Sequence[float],
                        quantiles: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Linear-interpolated percentiles (numpy's default), keyed p50/p95/p99."""
    if len(values_ms) == 0:
        return {f"p{q}": None for q in quantiles}
    arr = np.asarray(values_ms, dtype=float)
    return {f"p{q}": float(np.percentile(arr, q)) for q in quantiles}
