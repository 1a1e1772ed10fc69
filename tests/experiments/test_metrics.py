"""The business success rate and the dashboard report on a tiny database built by hand.

Every number asserted below is worked out in the comments from the rows inserted here; see
app/experiments/metrics.py for the definition.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.experiments.metrics import experiment_outcomes, outcomes, prediction_outcome
from app.experiments.report import build_report
from app.db import (
    Artist,
    Assignment,
    Experiment,
    Feedback,
    ListeningEvent,
    Prediction,
    Track,
    User,
)
from app.extensions import db

T0 = datetime(2024, 1, 10, 12, 0, 0)
DURATIONS = {"T1": 200_000, "T2": 200_000, "T3": 300_000, "T4": 300_000, "T5": 300_000}


def _track(tid: str, duration: int) -> Track:
    return Track(id=tid, name=f"Song {tid}", popularity=50, duration_ms=duration, explicit=False,
                 artist_id="a1", release_date="2020", danceability=0.5, energy=0.5, key=1,
                 loudness=-6.0, speechiness=0.1, acousticness=0.1, instrumentalness=0.0,
                 liveness=0.1, valence=0.5, tempo=120.0)


class World:
    def __init__(self) -> None:
        self.key = 0

    def event(self, session: int, when: datetime, user: int, track: str | None, kind: str):
        self.key += 1
        db.session.add(ListeningEvent(dedup_key=self.key, session_id=session, timestamp=when,
                                      user_id=user, track_id=track, event_type=kind))


def _prediction(pid: str, when: datetime, user: int, others: list[int], tracks: list[str],
                arm: str, experiment_id: int) -> Prediction:
    return Prediction(id=pid, created_at=when, endpoint="/predict", model=arm,
                      model_version=None, experiment_id=experiment_id, arm=arm, is_ab=True,
                      fallback=False, user_id=user, other_users=others,
                      playlist_length=len(tracks), strategy=None, exclude_explicit=False,
                      track_ids=tracks, members=[user, *others], member_scores=None,
                      member_fit=None, elapsed_ms=float(len(pid)))


@pytest.fixture
def tiny(app):
    yield _populate(app)


def _populate(app):
    """Four predictions; P1 and P3 in the base arm, P2 and P4 in the advanced arm."""
    with app.app_context():
        exp = db.session.scalar(select(Experiment).where(Experiment.active.is_(True)))
        db.session.add(Artist(id="a1", name="Artist"))
        for uid in range(1, 6):
            db.session.add(User(user_id=uid, name=f"User {uid}", city="Gdańsk"))
        for tid, duration in DURATIONS.items():
            db.session.add(_track(tid, duration))
        db.session.flush()  # the catalogue first: events reference it
        w = World()
        h = timedelta(hours=1)

        # P1 (base) at T0: user 1 with user 2; T1+T2 = 400 s, 35% = 140 s.
        db.session.add(_prediction("p1", T0, 1, [2], ["T1", "T2"], "base", exp.id))
        w.event(100, T0 - 24 * h, 1, "T1", "play")          # before the prediction: ignored
        w.event(100, T0 - 24 * h + timedelta(minutes=4), 1, "T2", "play")
        w.event(200, T0 + h, 2, "T1", "play")               # user 2 hears T1 in full: 200 s
        # user 1 hears T2 and T1 (and likes T1) in session 600 below, a day later but still
        # among his next 20 sessions: 400 s.
        # -> best 400 s / 400 s = 100%: success; pairs (2,T1), (1,T1) liked, (1,T2) -> 3, 1, 0

        # P2 (advanced) at T0: user 3 with user 4; T3+T4 = 600 s, 35% = 210 s.
        db.session.add(_prediction("p2", T0, 3, [4], ["T3", "T4"], "advanced", exp.id))
        w.event(300, T0 + h, 3, "T3", "play")
        w.event(300, T0 + h + timedelta(seconds=40), 3, "T3", "skip")   # skipped play: 0 ms
        for i in range(20):                                  # user 4: 20 sessions of adverts,
            w.event(401 + i, T0 + (i + 1) * h, 4, None, "advertisement")
        w.event(421, T0 + 22 * h, 4, "T3", "play")           # ... so the 21st does not count
        w.event(421, T0 + 22 * h + timedelta(minutes=5), 4, "T4", "play")
        w.event(500, T0 + h, 5, "T3", "play")                # user 5 is not a participant
        # feedback from user 3: T4 played 150 s, T3 skipped after 30 s
        # -> user 3 heard 150 + 30 = 180 s = 30% < 35%: failure
        # pairs: (3,T3) started + skipped (never heard in full), (3,T4) started -> 2, 0, 1

        # P3 (base) at T0+1d: user 1 alone, T1+T2 = 400 s; a session running at that moment.
        t1 = T0 + 24 * h
        db.session.add(_prediction("p3", t1, 1, [], ["T1", "T2"], "base", exp.id))
        w.event(600, t1 - timedelta(minutes=1), 1, "T2", "play")  # before P3: not for P3
        w.event(600, t1 + timedelta(minutes=1), 1, "T1", "play")  # after, same session: 200 s
        w.event(600, t1 + timedelta(minutes=2), 1, "T1", "like")
        # -> 200 s / 400 s = 50%: success; pairs: (1,T1) started + liked -> 1, 1, 0

        # P4 (advanced) at T0+1d: user 2 alone, T3+T4+T5 = 900 s, 35% = 315 s.
        db.session.add(_prediction("p4", t1, 2, [], ["T3", "T4", "T5"], "advanced", exp.id))
        w.event(700, t1 + h, 2, "T3", "play")                 # heard in full: 300 s ...
        # ... and also reported as feedback (300 s): counted once, max not sum
        # -> 300 s / 900 s = 33.3% < 35%: failure (a sum would give 66.7%: success)
        # pairs: (2,T3) started -> 1, 0, 0
        db.session.flush()
        now = datetime(2024, 2, 1)
        for pid, user, track, kind, ms in [("p2", 3, "T4", "play", 150_000),
                                           ("p2", 3, "T3", "skip", 30_000),
                                           ("p4", 2, "T3", "play", 300_000)]:
            db.session.add(Feedback(prediction_id=pid, user_id=user, track_id=track,
                                    event_type=kind, ms_played=ms, created_at=now))
        for uid, arm in [(1, "base"), (2, "base"), (3, "advanced"), (4, "advanced")]:
            db.session.add(Assignment(experiment_id=exp.id, user_id=uid, arm=arm, bucket=0.5,
                                      assigned_at=T0))
        db.session.commit()
        return app, exp.id


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
        db.session.add(_prediction("p5", T0, 5, [], ["T1", "T2"], "base", exp_id))
        db.session.flush()
        db.session.add(Feedback(prediction_id="p5", user_id=5, track_id="T1", event_type="play",
                                ms_played=140_000, created_at=T0))
        # a feedback row from someone outside P2's group would make it a success: ignored
        db.session.add(Feedback(prediction_id="p2", user_id=5, track_id="T4", event_type="play",
                                ms_played=300_000, created_at=T0))
        db.session.commit()
        out = outcomes("p.id IN ('p5', 'p2')")
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


def _advance_data_clock(app):
    """A later import: one listening event four days on, past DECIDE_AFTER for every playlist."""
    with app.app_context():
        db.session.add(ListeningEvent(dedup_key=10**6, session_id=999, user_id=5, track_id="T1",
                                      timestamp=T0 + timedelta(days=5), event_type="play"))
        db.session.commit()


def test_report_per_arm_and_difference(tiny):
    app, exp_id = tiny
    _advance_data_clock(app)
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
    from tests.conftest import make_app

    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database)
    try:
        app, exp_id = _populate(app)
        _advance_data_clock(app)
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
