"""The business success rate and the dashboard report on a tiny database built by hand.

Every number asserted below is worked out in the comments beside the rows that
``tests/support/factories.py`` (``populate_tiny_experiment``) inserts; see
app/experiments/metrics.py for the definition.
"""
from __future__ import annotations

import pytest

from app.db import Experiment, Feedback, Prediction
from app.experiments.metrics import experiment_outcomes, outcomes, prediction_outcome
from app.experiments.report import build_report
from app.extensions import db
from tests.support.apps import make_app
from tests.support.factories import (T0, ab_prediction, advance_data_clock,
                                     populate_tiny_experiment)


@pytest.fixture
def tiny(app):
    yield populate_tiny_experiment(app)


def test_outcomes_hand_computed(tiny):
    app, exp_id = tiny
    with app.app_context():
        out = experiment_outcomes(exp_id)
    assert set(out) == {"p1", "p2", "p3", "p4"}
    p1, p2, p3, p4 = (out[k] for k in ("p1", "p2", "p3", "p4"))
    assert (p1.total_ms, p1.best_ms, p1.success) == (400_000, 400_000, True)
    assert (p1.started, p1.liked, p1.skipped) == (3, 1, 0)
    assert (p2.total_ms, p2.best_ms, p2.success) == (600_000, 180_000, False)
    assert p2.best_share == pytest.approx(0.30)
    assert (p2.started, p2.liked, p2.skipped) == (2, 0, 1)
    assert (p3.total_ms, p3.best_ms, p3.success) == (400_000, 200_000, True)
    assert (p3.started, p3.liked, p3.skipped) == (1, 1, 0)
    assert (p4.total_ms, p4.best_ms, p4.success) == (900_000, 300_000, False)
    assert (p4.started, p4.liked, p4.skipped) == (1, 0, 0)


def test_exactly_35_percent_is_a_success(tiny):
    app, exp_id = tiny
    with app.app_context():
        # P5: T1+T2 = 400 s; user 5 reports exactly 140 s = 35.0%
        db.session.add(ab_prediction("p5", T0, 5, [], ["T1", "T2"], "base", exp_id))
        db.session.flush()
        db.session.add(Feedback(prediction_id="p5", user_id=5, track_id="T1", event_type="play",
                                ms_played=140_000, created_at=T0))
        # a feedback row from someone outside P2's group would make it a success: ignored
        db.session.add(Feedback(prediction_id="p2", user_id=5, track_id="T4", event_type="play",
                                ms_played=300_000, created_at=T0))
        db.session.commit()
        out = outcomes(Prediction.id.in_(["p5", "p2"]))
    assert out["p5"].success and out["p5"].best_ms == 140_000
    assert out["p2"].best_ms == 180_000 and not out["p2"].success


def test_prediction_outcome_per_member(tiny):
    app, _ = tiny
    with app.app_context():
        outcome, members = prediction_outcome("p2")
    assert outcome.best_ms == 180_000
    by_user = {m.user_id: m for m in members}
    assert set(by_user) == {3, 4}
    assert (by_user[3].heard_ms, by_user[3].started, by_user[3].skipped) == (180_000, 2, 1)
    assert (by_user[4].heard_ms, by_user[4].started) == (0, 0)


def test_playlists_are_pending_until_their_window_passes(tiny):
    """Right after the requests nothing is a failure: the playlists are pending, no rate is
    shown, and the sample-ratio check waits for enough users instead of saying "ok"."""
    app, exp_id = tiny
    with app.app_context():
        report = build_report(db.session.get(Experiment, exp_id))
    base, advanced = report.arms
    assert (base.pending, advanced.pending) == (2, 2) and base.decided == 0
    assert base.pending_successes == 2        # P1 and P3 already succeeded, still pending
    assert base.success_rate is None and base.success_ci is None and not base.enough
    assert report.comparisons[0].result is None and not report.comparisons[0].enough
    assert report.srm is None and report.assigned_total == 4 and not report.srm_enough


def test_report_per_arm_and_difference(tiny):
    app, exp_id = tiny
    advance_data_clock(app)
    with app.app_context():
        report = build_report(db.session.get(Experiment, exp_id))
    base, advanced = report.arms
    assert (base.name, advanced.name) == ("base", "advanced")   # the control comes first
    assert (base.pending, advanced.pending) == (0, 0)
    assert (base.served, base.users, base.successes) == (2, 1, 2)
    assert (advanced.served, advanced.users, advanced.successes) == (2, 2, 0)
    assert base.success_rate == 1.0 and advanced.success_rate == 0.0
    # base: 3 + 1 started pairs, 1 + 1 liked, 0 skipped; advanced: 2 + 1 started, 1 skipped
    assert (base.like_rate, base.skip_rate) == (0.5, 0.0)
    assert advanced.like_rate == 0.0 and advanced.skip_rate == pytest.approx(1 / 3)
    # latency: elapsed_ms = len(id) = 2.0 for every row
    assert base.latency == {"p50": 2.0, "p95": 2.0, "p99": 2.0}
    # the unit is the requesting user: base has one (user 1, two playlists), so no variance and
    # no test; advanced has two users (2 and 3) with rate 0 each
    assert (base.rate.units, advanced.rate.units) == (1, 2)
    comparison = report.comparisons[0]
    assert (comparison.control, comparison.treatment) == ("base", "advanced")
    assert comparison.result is None and not comparison.enough
    assert report.srm is None  # four assigned users are too few for the check
    # one point per day: day 1 has P1 (success) and P2 (failure), day 2 P3 (success), P4
    assert [d.isoformat() for d in report.days] == ["2024-01-10", "2024-01-11"]
    assert [(p.served, p.successes) for p in report.daily["base"]] == [(1, 1), (1, 1)]
    assert [(p.served, p.successes) for p in report.daily["advanced"]] == [(1, 0), (1, 0)]


@pytest.mark.postgres
def test_same_outcomes_on_postgresql(postgres_database, tmp_path):
    """The one statement runs on PostgreSQL too (JSON expansion is the only dialect branch)."""

    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database)
    try:
        app, exp_id = populate_tiny_experiment(app)
        advance_data_clock(app)
        with app.app_context():
            out = experiment_outcomes(exp_id)
            _, members = prediction_outcome("p2")
            report = build_report(db.session.get(Experiment, exp_id))
        assert {k: (o.best_ms, o.started, o.liked, o.skipped, o.success) for k, o in out.items()} \
            == {"p1": (400_000, 3, 1, 0, True), "p2": (180_000, 2, 0, 1, False),
                "p3": (200_000, 1, 1, 0, True), "p4": (300_000, 1, 0, 0, False)}
        assert sorted((m.user_id, m.heard_ms) for m in members) == [(3, 180_000), (4, 0)]
        assert [a.successes for a in report.arms] == [2, 0]
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
