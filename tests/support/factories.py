"""Data factories: hand-built databases whose every number a test can work out on paper, and
traffic sent through the real API so pages have something to show."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select

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

# ----- a tiny experiment: four predictions, hand-computed outcomes (tests/experiments) -----

T0 = datetime(2024, 1, 10, 12, 0, 0)
DURATIONS = {"T1": 200_000, "T2": 200_000, "T3": 300_000, "T4": 300_000, "T5": 300_000}


def make_track(tid: str, duration: int) -> Track:
    return Track(id=tid, name=f"Song {tid}", popularity=50, duration_ms=duration, explicit=False,
                 artist_id="a1", release_date="2020", danceability=0.5, energy=0.5, key=1,
                 loudness=-6.0, speechiness=0.1, acousticness=0.1, instrumentalness=0.0,
                 liveness=0.1, valence=0.5, tempo=120.0)


class World:
    """Listening events with a running de-duplication key, as an import would number them."""

    def __init__(self) -> None:
        self.key = 0

    def event(self, session: int, when: datetime, user: int, track: str | None, kind: str):
        self.key += 1
        db.session.add(ListeningEvent(dedup_key=self.key, session_id=session, timestamp=when,
                                      user_id=user, track_id=track, event_type=kind))


def ab_prediction(pid: str, when: datetime, user: int, others: list[int], tracks: list[str],
                arm: str, experiment_id: int) -> Prediction:
    return Prediction(id=pid, created_at=when, endpoint="/predict", model=arm,
                      model_version=None, experiment_id=experiment_id, arm=arm, is_ab=True,
                      trusted=True, fallback=False, user_id=user, other_users=others,
                      playlist_length=len(tracks), strategy=None, exclude_explicit=False,
                      track_ids=tracks, members=[user, *others], member_scores=None,
                      member_fit=None, elapsed_ms=float(len(pid)))


def populate_tiny_experiment(app):
    """Four predictions; P1 and P3 in the base arm, P2 and P4 in the advanced arm."""
    with app.app_context():
        exp = db.session.scalar(select(Experiment).where(Experiment.active.is_(True)))
        db.session.add(Artist(id="a1", name="Artist"))
        for uid in range(1, 6):
            db.session.add(User(user_id=uid, name=f"User {uid}", city="Gdańsk"))
        for tid, duration in DURATIONS.items():
            db.session.add(make_track(tid, duration))
        db.session.flush()  # the catalogue first: events reference it
        w = World()
        h = timedelta(hours=1)

        # P1 (base) at T0: user 1 with user 2; T1+T2 = 400 s, 35% = 140 s.
        db.session.add(ab_prediction("p1", T0, 1, [2], ["T1", "T2"], "base", exp.id))
        w.event(100, T0 - 24 * h, 1, "T1", "play")          # before the prediction: ignored
        w.event(100, T0 - 24 * h + timedelta(minutes=4), 1, "T2", "play")
        w.event(200, T0 + h, 2, "T1", "play")               # user 2 hears T1 in full: 200 s
        # user 1 hears T2 and T1 (and likes T1) in session 600 below, a day later but still
        # among his next 20 sessions: 400 s.
        # -> best 400 s / 400 s = 100%: success; pairs (2,T1), (1,T1) liked, (1,T2) -> 3, 1, 0

        # P2 (advanced) at T0: user 3 with user 4; T3+T4 = 600 s, 35% = 210 s.
        db.session.add(ab_prediction("p2", T0, 3, [4], ["T3", "T4"], "advanced", exp.id))
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
        db.session.add(ab_prediction("p3", t1, 1, [], ["T1", "T2"], "base", exp.id))
        w.event(600, t1 - timedelta(minutes=1), 1, "T2", "play")  # before P3: not for P3
        w.event(600, t1 + timedelta(minutes=1), 1, "T1", "play")  # after, same session: 200 s
        w.event(600, t1 + timedelta(minutes=2), 1, "T1", "like")
        # -> 200 s / 400 s = 50%: success; pairs: (1,T1) started + liked -> 1, 1, 0

        # P4 (advanced) at T0+1d: user 2 alone, T3+T4+T5 = 900 s, 35% = 315 s.
        db.session.add(ab_prediction("p4", t1, 2, [], ["T3", "T4", "T5"], "advanced", exp.id))
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


def advance_data_clock(app):
    """A later import: one listening event four days on, past DECIDE_AFTER for every playlist."""
    with app.app_context():
        db.session.add(ListeningEvent(dedup_key=10**6, session_id=999, user_id=5, track_id="T1",
                                      timestamp=T0 + timedelta(days=5), event_type="play"))
        db.session.commit()



# ----- two weeks of A/B traffic through the API (the dashboard in a browser) -----

def experiment_history(app, days: int = 12, per_day: int = 10) -> None:
    """Two weeks of /predict traffic with feedback, so the dashboard has something to show.

    Requests and feedback go through the real API; only the timestamps are moved back a few
    days afterwards, since a test cannot wait for calendar days to pass.
    """
    from tests.support.traffic import trust

    client = trust(app, app.test_client(), "history-backend")  # its playlists are evidence
    rnd = random.Random(5)
    served: list[tuple[str, int]] = []
    for i in range(days * per_day):
        user = 101 + rnd.randrange(200)
        others = rnd.sample([u for u in range(101, 301) if u != user], rnd.randint(1, 4))
        response = client.post("/predict", json={"user_id": user, "other_users": others,
                                                 "playlist_length": 20})
        assert response.status_code == 200
        pid, arm = response.headers["X-Prediction-Id"], response.headers["X-AB-Arm"]
        token = response.headers["X-Feedback-Token"]
        served.append((pid, days - 1 - i // per_day))
        listen = 0.55 if arm == "advanced" else 0.3
        for track in response.get_json():
            x = rnd.random()
            if x < listen:
                client.post("/feedback", json={"prediction_id": pid, "user_id": user,
                                               "track_id": track["id"], "event_type": "play",
                                               "ms_played": 900_000, "feedback_token": token})
                if rnd.random() < 0.25:
                    client.post("/feedback", json={"prediction_id": pid, "user_id": user,
                                                   "track_id": track["id"], "event_type": "like",
                                                   "feedback_token": token})
            elif x < listen + 0.25:
                client.post("/feedback", json={"prediction_id": pid, "user_id": user,
                                               "track_id": track["id"], "event_type": "skip",
                                               "ms_played": 15_000, "feedback_token": token})
    with app.app_context():
        for pid, days_ago in served:
            row = db.session.get(Prediction, pid)
            row.created_at = row.created_at - timedelta(days=days_ago)
        db.session.commit()
