"""A generated A/B world with awkward rows, and the success metric worked out from those rows
in plain Python, independently of the SQL in app/experiments/metrics.py.

The world is small but full of the cases the definition has to decide: events exactly at the
prediction time, sessions running when the playlist is made, more than the window of sessions,
adverts, skipped plays, tracks listed twice or missing from the catalogue, members listed twice,
feedback longer than the track, feedback from outsiders or for tracks outside the playlist.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.db import Artist, Experiment, Feedback, ListeningEvent, Prediction, Track, User
from app.experiments.metrics import NEXT_SESSIONS
from app.extensions import db
from tests.support.factories import make_track

START = datetime(2024, 3, 1, 8, 0, 0)


@dataclass(frozen=True)
class Expected:
    total_ms: int
    best_ms: int
    started: int
    liked: int
    skipped: int
    window_sessions: int
    members: dict[int, tuple[int, int, int, int]]  # uid -> (heard_ms, started, liked, skipped)


def populate_random_world(app, seed: int, *, users: int = 14, tracks: int = 24,
                          predictions: int = 60) -> int:
    """Rows drawn at random (on a coarse clock, so ties with the prediction time happen);
    returns the active experiment's id."""
    rnd = random.Random(seed)
    minute = timedelta(minutes=1)
    with app.app_context():
        exp = db.session.scalar(select(Experiment).where(Experiment.active.is_(True)))
        db.session.add(Artist(id="a1", name="Artist"))
        for uid in range(1, users + 1):
            db.session.add(User(user_id=uid, name=f"User {uid}", city="Gdańsk"))
        catalogue = [f"T{i:02d}" for i in range(tracks)]
        for tid in catalogue:
            db.session.add(make_track(tid, rnd.choice([60_000, 120_000, 180_000, 240_000])))
        db.session.flush()

        # Predictions first, so that events can be placed exactly on their times.
        pred_times = []
        for i in range(predictions):
            when = START + rnd.randrange(0, 5 * 24 * 6) * 10 * minute
            user = rnd.randint(1, users)
            others = rnd.sample(range(1, users + 1), rnd.randint(0, 3))
            if rnd.random() < 0.15:
                others.append(user)                       # the requesting user listed again
            if others and rnd.random() < 0.1:
                others.append(others[0])                  # a member listed twice
            chosen = rnd.sample(catalogue, rnd.randint(1, 6))
            if rnd.random() < 0.15:
                chosen.append(chosen[0])                  # a track listed twice
            if rnd.random() < 0.1:
                chosen.append("GONE")                     # no longer in the catalogue
            if rnd.random() < 0.05:
                chosen = ["GONE"]                         # nothing left to hear
            evidence = rnd.random() < 0.85
            db.session.add(Prediction(
                id=f"r{i:03d}", created_at=when, endpoint="/predict", model="base",
                model_version=None, experiment_id=exp.id, arm=rnd.choice(["base", "advanced"]),
                is_ab=evidence or rnd.random() < 0.5, trusted=evidence, fallback=False,
                user_id=user, other_users=others, playlist_length=len(chosen), strategy=None,
                exclude_explicit=False, track_ids=chosen, members=[user, *others],
                member_scores=None, member_fit=None, elapsed_ms=1.0))
            pred_times.append(when)
        db.session.flush()

        key = 0
        session_id = 1000
        for uid in range(1, users + 1):
            for _ in range(rnd.randint(0, 45)):
                session_id += 1
                if rnd.random() < 0.3:                    # begin exactly at some prediction
                    t = rnd.choice(pred_times) - rnd.randint(0, 3) * 10 * minute
                else:
                    t = START - 24 * 60 * minute + rnd.randrange(0, 7 * 24 * 6) * 10 * minute
                for _ in range(rnd.randint(1, 6)):
                    kind = rnd.choices(["play", "skip", "like", "advertisement"],
                                       [6, 2, 1, 1])[0]
                    track = None if kind == "advertisement" else rnd.choice(catalogue)
                    key += 1
                    db.session.add(ListeningEvent(dedup_key=key, session_id=session_id,
                                                  timestamp=t, user_id=uid, track_id=track,
                                                  event_type=kind))
                    t += rnd.choice([0, 5, 10]) * minute

        seen = set()
        for _ in range(predictions * 3):
            pid = f"r{rnd.randrange(predictions):03d}"
            row = db.session.get(Prediction, pid)
            members = [row.user_id, *row.other_users]
            uid = rnd.choice(members) if rnd.random() < 0.85 else rnd.randint(1, users)
            track = rnd.choice(row.track_ids) if rnd.random() < 0.85 else rnd.choice(catalogue)
            kind = rnd.choice(["play", "skip", "like"])
            if (pid, uid, track, kind) in seen:
                continue
            seen.add((pid, uid, track, kind))
            db.session.add(Feedback(prediction_id=pid, user_id=uid, track_id=track,
                                    event_type=kind, ms_played=rnd.randint(0, 300_000),
                                    created_at=START))
        db.session.commit()
        return exp.id


def expected_outcomes() -> dict[str, Expected]:
    """Every prediction's outcome, from the rows, by the definition in metrics.py's docstring."""
    durations = dict(db.session.execute(select(Track.id, Track.duration_ms)).all())
    events = db.session.scalars(select(ListeningEvent)).all()
    sessions: dict[int, dict[int, list[ListeningEvent]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        sessions[e.user_id][e.session_id].append(e)
    feedback = db.session.scalars(select(Feedback)).all()

    out: dict[str, Expected] = {}
    for p in db.session.scalars(select(Prediction)).all():
        t = p.created_at
        participants = {p.user_id, *(int(u) for u in p.other_users)}
        tracks = {tid for tid in p.track_ids if tid in durations}
        total = sum(durations[tid] for tid in tracks)

        members: dict[int, tuple[int, int, int, int]] = {}
        window_sizes = []
        for uid in participants:
            by_end = sorted((max(e.timestamp for e in evs), sid)
                            for sid, evs in sessions[uid].items())
            window = [sid for ended, sid in by_end if ended >= t][:NEXT_SESSIONS]
            window_sizes.append(len(window))
            # (track) -> [heard ms, liked, skipped], the larger over sessions and feedback
            pairs: dict[str, list[int]] = {}

            def signal(track: str, ms: int, liked: bool, skipped: bool) -> None:
                old = pairs.setdefault(track, [0, 0, 0])
                pairs[track] = [max(old[0], ms), max(old[1], int(liked)),
                                max(old[2], int(skipped))]

            for sid in window:
                for track in tracks:
                    after = [e.event_type for e in sessions[uid][sid]
                             if e.track_id == track and e.timestamp >= t]
                    if not after:
                        continue
                    played = "play" in after or "like" in after
                    skipped = "skip" in after
                    signal(track, durations[track] if played and not skipped else 0,
                           "like" in after, skipped)
            for f in feedback:
                if f.prediction_id == p.id and f.user_id == uid and f.track_id in tracks:
                    signal(f.track_id, min(f.ms_played, durations[f.track_id]),
                           f.event_type == "like", f.event_type == "skip")
            if pairs:
                members[uid] = (
                    sum(ms for ms, _, _ in pairs.values()), len(pairs),
                    sum(liked for _, liked, _ in pairs.values()),
                    sum(1 for track, (ms, _, skipped) in pairs.items()
                        if skipped and ms < durations[track]))
        out[p.id] = Expected(
            total_ms=total,
            best_ms=max((m[0] for m in members.values()), default=0),
            started=sum(m[1] for m in members.values()),
            liked=sum(m[2] for m in members.values()),
            skipped=sum(m[3] for m in members.values()),
            window_sessions=min(window_sizes),
            members={uid: members.get(uid, (0, 0, 0, 0)) for uid in participants})
    return out


def evidence_ids(experiment_id: int, since: datetime | None = None,
                 until: datetime | None = None) -> set[str]:
    """The predictions experiment_outcomes counts, chosen in Python."""
    return {p.id for p in db.session.scalars(select(Prediction)).all()
            if p.experiment_id == experiment_id and p.is_ab and p.trusted
            and (since is None or p.created_at >= since)
            and (until is None or p.created_at < until)}
