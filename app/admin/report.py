"""The A/B dashboard's numbers for one experiment: per arm, arm against arm, and per day.

The heavy part (who heard what after each playlist) is one SQL statement in metrics.py; this
module only loads the experiment's prediction rows once and aggregates them in Python.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select

from app import ab, stats
from app.admin.metrics import Outcome, experiment_outcomes
from app.db import Experiment, Prediction
from app.extensions import db


@dataclass(frozen=True)
class ArmSummary:
    name: str
    weight: float
    share: float                      # weight normalised over the arms
    assigned: int                     # users with a stored assignment (the randomisation unit)
    served: int                       # playlists served through the experiment
    users: int                        # distinct requesting users
    fallbacks: int
    latency: dict[str, float | None]
    successes: int
    success_rate: float | None
    success_ci: tuple[float, float] | None
    started: int
    liked: int
    skipped: int

    @property
    def like_rate(self) -> float | None:
        return stats.proportion(self.liked, self.started)

    @property
    def skip_rate(self) -> float | None:
        return stats.proportion(self.skipped, self.started)


@dataclass(frozen=True)
class Comparison:
    control: str
    treatment: str
    result: stats.ProportionDiff | None


@dataclass(frozen=True)
class DailyPoint:
    day: date
    served: int
    successes: int

    @property
    def rate(self) -> float | None:
        return stats.proportion(self.successes, self.served)


@dataclass
class ExperimentReport:
    experiment: Experiment
    arms: list[ArmSummary]
    comparisons: list[Comparison]
    srm: stats.SrmResult | None
    days: list[date]
    daily: dict[str, list[DailyPoint]] = field(default_factory=dict)
    total_served: int = 0


def _control_first(names: list[str]) -> list[str]:
    """The base model is the control when present; otherwise the first arm created."""
    return sorted(names, key=lambda n: (n != "base", names.index(n)))


def build_report(experiment: Experiment) -> ExperimentReport:
    rows = db.session.execute(
        select(Prediction.id, Prediction.created_at, Prediction.arm, Prediction.user_id,
               Prediction.elapsed_ms, Prediction.fallback)
        .where(Prediction.experiment_id == experiment.id, Prediction.is_ab.is_(True))
        .order_by(Prediction.created_at)
    ).all()
    outcomes = experiment_outcomes(experiment.id) if rows else {}
    weights = dict(ab.arm_weights(experiment))
    weight_sum = sum(weights.values()) or 1.0
    assigned = ab.arm_counts(experiment)
    arm_names = _control_first(list(weights) + sorted({r.arm for r in rows if r.arm} - set(weights)))

    by_arm: dict[str, list] = defaultdict(list)
    for row in rows:
        by_arm[row.arm].append(row)

    arms: list[ArmSummary] = []
    for name in arm_names:
        arm_rows = by_arm.get(name, [])
        outs = [outcomes.get(r.id) for r in arm_rows]
        outs = [o for o in outs if o is not None]
        successes = sum(1 for o in outs if o.success)
        arms.append(ArmSummary(
            name=name, weight=weights.get(name, 0.0), share=weights.get(name, 0.0) / weight_sum,
            assigned=assigned.get(name, 0), served=len(arm_rows),
            users=len({r.user_id for r in arm_rows}),
            fallbacks=sum(1 for r in arm_rows if r.fallback),
            latency=stats.latency_percentiles([r.elapsed_ms for r in arm_rows]),
            successes=successes, success_rate=stats.proportion(successes, len(arm_rows)),
            success_ci=stats.wilson_interval(successes, len(arm_rows)),
            started=sum(o.started for o in outs), liked=sum(o.liked for o in outs),
            skipped=sum(o.skipped for o in outs),
        ))

    control = arms[0] if arms else None
    comparisons = [
        Comparison(control.name, arm.name,
                   stats.two_proportion_ztest(control.successes, control.served,
                                              arm.successes, arm.served))
        for arm in arms[1:]
    ] if control else []
    srm = stats.srm_check({a.name: a.assigned for a in arms}, weights)

    days: list[date] = []
    daily: dict[str, list[DailyPoint]] = {}
    if rows:
        first, last = rows[0].created_at.date(), rows[-1].created_at.date()
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        counts: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            cell = counts[(row.arm, row.created_at.date())]
            cell[0] += 1
            out: Outcome | None = outcomes.get(row.id)
            cell[1] += 1 if out is not None and out.success else 0
        for arm in arms:
            daily[arm.name] = [DailyPoint(d, *counts.get((arm.name, d), [0, 0])) for d in days]
    return ExperimentReport(experiment, arms, comparisons, srm, days, daily, len(rows))
