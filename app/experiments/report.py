"""The A/B dashboard's numbers for one experiment: per arm, arm against arm, and per day.

The heavy part (who heard what after each playlist) is one SQL statement in metrics.py; this
module only loads the experiment's prediction rows once and aggregates them in Python.

What counts (each rule closes a way for one caller to steer the verdict):

* only playlists of trusted callers (an authenticated API client, or the builder where the
  experiment includes it); untrusted ones are counted and shown as left out;
* a single-track playlist never counts toward success (one track played in full is "35% of
  the playlist" by construction), so it is left out of the rates;
* at most ``AB_MAX_PLAYLISTS_PER_USER_DAY`` decided playlists per user and day, the earliest,
  so that no user weighs more than a few playlists a day.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select

from app.db import Experiment, Prediction
from app.experiments import assignment, stats
from app.experiments.metrics import data_clock, experiment_outcomes, is_decided
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
    decided: int                      # playlists whose outcome is final
    pending: int                      # playlists still inside their 20-session window
    pending_successes: int            # of those, already successful (not yet counted)
    successes: int                    # successful decided playlists
    rate: stats.RatioEstimate         # successes / decided, per user (delta method)
    started: int
    liked: int
    skipped: int
    short: int = 0                    # single-track playlists, left out of the rates
    capped: int = 0                   # decided playlists past the per-user daily cap

    @property
    def success_rate(self) -> float | None:
        return self.rate.ratio

    @property
    def success_ci(self) -> tuple[float, float] | None:
        return self.rate.interval() if self.enough else None

    @property
    def enough(self) -> bool:
        """Enough users with decided playlists for the interval's approximation to hold."""
        return self.rate.units >= stats.MIN_UNITS

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
    result: stats.RatioDiff | None
    enough: bool                      # both arms have the minimum sample


@dataclass(frozen=True)
class DailyPoint:
    day: date
    served: int
    decided: int
    successes: int

    @property
    def rate(self) -> float | None:
        return stats.proportion(self.successes, self.decided)


@dataclass
class ExperimentReport:
    experiment: Experiment
    arms: list[ArmSummary]
    comparisons: list[Comparison]
    srm: stats.SrmResult | None
    days: list[date]
    daily: dict[str, list[DailyPoint]] = field(default_factory=dict)
    total_served: int = 0
    assigned_total: int = 0
    sequential: bool = False
    untrusted: int = 0                # A/B playlists of untrusted callers, left out
    max_per_user_day: int | None = None

    @property
    def srm_enough(self) -> bool:
        return self.assigned_total >= stats.MIN_SRM_UNITS


def _control_first(names: list[str]) -> list[str]:
    """The base model is the control when present; otherwise the first arm created."""
    return sorted(names, key=lambda n: (n != "base", names.index(n)))


def _max_per_user_day() -> int | None:
    from flask import current_app

    value = current_app.config.get("AB_MAX_PLAYLISTS_PER_USER_DAY", 3)
    return int(value) if value else None


def build_report(experiment: Experiment, *, sequential: bool = False,
                 max_per_user_day: int | None = -1) -> ExperimentReport:
    """``sequential``: always-valid intervals for the differences instead of fixed-horizon.
    ``max_per_user_day``: decided playlists counted per user and day (None: no cap; default:
    the configured ``AB_MAX_PLAYLISTS_PER_USER_DAY``)."""
    if max_per_user_day == -1:
        max_per_user_day = _max_per_user_day()
    everything = db.session.execute(
        select(Prediction.id, Prediction.created_at, Prediction.arm, Prediction.user_id,
               Prediction.elapsed_ms, Prediction.fallback, Prediction.trusted,
               Prediction.playlist_length)
        .where(Prediction.experiment_id == experiment.id, Prediction.is_ab.is_(True))
        .order_by(Prediction.created_at, Prediction.id)
    ).all()
    rows = [r for r in everything if r.trusted]
    untrusted = len(everything) - len(rows)
    outcomes = experiment_outcomes(experiment.id) if rows else {}
    clock = data_clock() if rows else None
    decided_any = {r.id for r in rows if is_decided(outcomes.get(r.id), r.created_at, clock)}
    short = {r.id for r in rows if r.playlist_length < 2}
    capped: set[str] = set()
    per_user_day: dict[tuple[int, date], int] = defaultdict(int)
    for r in rows:  # in time order: the earliest decided playlists of a user's day count
        if r.id in decided_any and r.id not in short:
            key = (r.user_id, r.created_at.date())
            per_user_day[key] += 1
            if max_per_user_day is not None and per_user_day[key] > max_per_user_day:
                capped.add(r.id)
    left_out = short | capped
    decided = decided_any - left_out
    weights = dict(assignment.arm_weights(experiment))
    weight_sum = sum(weights.values()) or 1.0
    assigned = assignment.arm_counts(experiment)
    arm_names = _control_first(list(weights) + sorted({r.arm for r in rows if r.arm} - set(weights)))

    by_arm: dict[str, list] = defaultdict(list)
    for row in rows:
        by_arm[row.arm].append(row)

    arms: list[ArmSummary] = []
    for name in arm_names:
        arm_rows = by_arm.get(name, [])
        outs = [outcomes.get(r.id) for r in arm_rows]
        outs = [o for o in outs if o is not None]
        per_user: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # successes, decided
        pending = pending_successes = 0
        for r in arm_rows:
            out = outcomes.get(r.id)
            if r.id in left_out:
                continue
            if r.id in decided:
                per_user[r.user_id][0] += 1 if out.success else 0
                per_user[r.user_id][1] += 1
            else:
                pending += 1
                pending_successes += 1 if out is not None and out.success else 0
        cells = list(per_user.values())
        rate = stats.ratio_estimate([c[0] for c in cells], [c[1] for c in cells])
        arms.append(ArmSummary(
            name=name, weight=weights.get(name, 0.0), share=weights.get(name, 0.0) / weight_sum,
            assigned=assigned.get(name, 0), served=len(arm_rows),
            users=len({r.user_id for r in arm_rows}),
            fallbacks=sum(1 for r in arm_rows if r.fallback),
            latency=stats.latency_percentiles([r.elapsed_ms for r in arm_rows]),
            decided=sum(1 for r in arm_rows if r.id in decided), pending=pending,
            pending_successes=pending_successes, successes=int(rate.numerator), rate=rate,
            started=sum(o.started for o in outs), liked=sum(o.liked for o in outs),
            skipped=sum(o.skipped for o in outs),
            short=sum(1 for r in arm_rows if r.id in short),
            capped=sum(1 for r in arm_rows if r.id in capped),
        ))

    control = arms[0] if arms else None
    comparisons = [
        Comparison(control.name, arm.name,
                   stats.ratio_diff_test(control.rate, arm.rate, sequential=sequential),
                   control.enough and arm.enough)
        for arm in arms[1:]
    ] if control else []
    assigned_total = sum(a.assigned for a in arms)
    srm = (stats.srm_check({a.name: a.assigned for a in arms}, weights)
           if assigned_total >= stats.MIN_SRM_UNITS else None)

    days: list[date] = []
    daily: dict[str, list[DailyPoint]] = {}
    if rows:
        first, last = rows[0].created_at.date(), rows[-1].created_at.date()
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        counts: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in rows:
            cell = counts[(row.arm, row.created_at.date())]
            cell[0] += 1
            if row.id in decided:
                cell[1] += 1
                cell[2] += 1 if outcomes[row.id].success else 0
        for arm in arms:
            daily[arm.name] = [DailyPoint(d, *counts.get((arm.name, d), [0, 0, 0])) for d in days]
    return ExperimentReport(experiment, arms, comparisons, srm, days, daily, len(rows),
                            assigned_total, sequential, untrusted, max_per_user_day)


def default_experiment(experiments: list[Experiment]) -> Experiment | None:
    """The running experiment when it has playlists, else the newest one with playlists (a
    finished simulation, say), else the running one, else the newest."""
    if not experiments:
        return None
    with_rows = set(db.session.scalars(
        select(Prediction.experiment_id).where(Prediction.is_ab.is_(True),
                                               Prediction.trusted.is_(True))
        .group_by(Prediction.experiment_id).having(func.count() > 0)))
    active = next((e for e in experiments if e.active), None)
    if active is not None and active.id in with_rows:
        return active
    newest = sorted((e for e in experiments if e.id in with_rows), key=lambda e: e.id)
    if newest:
        return newest[-1]
    return active or experiments[-1]
