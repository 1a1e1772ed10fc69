"""A simulated A/B experiment, end to end through the real application.

Why: the A/B machinery (assignment, logging, feedback, the business success metric, the
dashboard's statistics) is only trustworthy if it can tell a better model from a worse one when
we *know* which is better. The demo world has a hidden taste (``ground_truth.npz``): how much
each user truly enjoys each track. Simulated people act on it, the application never sees it.

One simulated day: ``groups_per_day`` hosts each gather 1-5 friends from their circle and ask
``POST /predict`` with an API client key of its own (Flask test client: the real routing,
validation, A/B assignment, recommender, database rows and predictions log). Then:

* **At the gathering** the host's phone plays the playlist in order. The room keeps a track with
  probability equal to the members' mean true affinity, otherwise someone skips it after a few
  seconds; after ``patience`` skips in a row the group gives up on the playlist. The host's
  phone reports each track through ``POST /feedback`` (play with the milliseconds heard, or
  skip); members who enjoyed a kept track like it now and then (also through ``/feedback``).
* **Later**, each member comes back to the playlist on their own with probability
  ``fit ** return_power`` (``fit``: their mean true affinity over the playlist), hours to days
  later, and listens with their own taste and the same patience. These sessions are written as
  listening events (bulk insert, de-duplicated with ``importer.event_dedup_key``, fresh session
  ids), as a later export import would write them, so the dashboard's success metric sees them.

The clock is simulated: days start the day after the newest listening event in the database.
The API stamps rows with the wall clock, so after each call the simulation moves that
prediction's ``created_at``, the host's new assignment and the feedback rows to the simulated
time (the predictions log file keeps the wall-clock time it was really written at). The API
itself is not changed.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select, update

from app.api import clients
from app.common.progress import Echo
from app.data.importer.validate import event_dedup_key
from app.db import Experiment, Feedback, ListeningEvent, Prediction, Track, User
from app.db.experiments import Assignment
from app.experiments import assignment
from app.extensions import IN_PROCESS_SIMULATION, db

# Requests of the simulation: rate limits are per minute of wall-clock time and the simulation
# plays days in seconds, so its in-process requests carry the bypass no HTTP client can set.
SIMULATED_CLIENT = {"REMOTE_ADDR": "127.0.0.1", IN_PROCESS_SIMULATION: True}



@dataclass(frozen=True)
class Behaviour:
    """How simulated people react; fixed before looking at any experiment result."""

    patience: int = 3                 # skips in a row before a listener gives up
    like_share: float = 0.3           # share of enjoyed tracks that also get a like
    skip_seconds: tuple[float, float] = (5.0, 30.0)
    return_power: float = 2.0         # chance of coming back later = fit ** return_power
    later_hours: tuple[float, float] = (2.0, 72.0)


@dataclass(frozen=True)
class SimConfig:
    days: int = 14
    groups_per_day: int = 40
    seed: int = 0
    min_group: int = 2
    max_group: int = 6
    friends: int = 12                 # size of each user's circle of friends
    playlist_length: int = 20
    experiment: str | None = None     # None: a new "simulation-..." experiment, 50/50
    keep_active: bool = False         # leave the simulation experiment active afterwards
    aa_model: str | None = None       # an A/A run: both arms serve this model
    behaviour: Behaviour = field(default_factory=Behaviour)


@dataclass
class SimResult:
    experiment_id: int
    experiment: str
    start: datetime
    end: datetime
    predictions: int = 0
    feedback: int = 0
    events: int = 0
    sessions: int = 0
    by_arm: dict[str, int] = field(default_factory=dict)
    true_fit: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


def default_ground_truth(app) -> Path | None:
    """``ground_truth.npz`` next to the demo export (DEMO_DIR, else <instance>/demo_data, where
    scripts/prepare.sh writes it)."""
    import os

    folders = [Path(os.environ["DEMO_DIR"])] if os.environ.get("DEMO_DIR") else []
    folders.append(Path(app.instance_path) / "demo_data")
    for folder in folders:
        if (folder / "ground_truth.npz").is_file():
            return folder / "ground_truth.npz"
    return None


def _friend_circles(users: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each user's friends: ``size`` others drawn at random (positions into ``users``)."""
    n = len(users)
    size = min(size, n - 1)
    circles = []
    for i in range(n):
        pick = rng.choice(n - 1, size=size, replace=False)
        circles.append(np.where(pick >= i, pick + 1, pick))
    return circles


def _listen(affinity: np.ndarray, rng: np.random.Generator, patience: int
            ) -> list[tuple[int, bool]]:
    """(track position, enjoyed) in playlist order until ``patience`` skips in a row."""
    out: list[tuple[int, bool]] = []
    run = 0
    for pos, a in enumerate(affinity):
        enjoyed = bool(rng.random() < a)
        out.append((pos, enjoyed))
        run = 0 if enjoyed else run + 1
        if run >= patience:
            break
    return out


def _start_experiment(cfg: SimConfig, start: datetime) -> tuple[Experiment, Experiment | None]:
    previous = assignment.active_experiment()
    if cfg.experiment:
        try:
            experiment = assignment.get_experiment(cfg.experiment)
        except assignment.ExperimentError:
            experiment = assignment.create_experiment(cfg.experiment,
                                                      {"base": 0.5, "advanced": 0.5})
    else:
        base = f"simulation-{'aa-' if cfg.aa_model else ''}s{cfg.seed}-{cfg.days}d"
        name, n = base, 1
        while db.session.scalar(select(Experiment.id).where(Experiment.name == name)):
            n += 1
            name = f"{base}-{n}"
        experiment = assignment.create_experiment(name, {"base": 0.5, "advanced": 0.5})
        experiment.created_at = start
        db.session.commit()
    if not experiment.active:
        assignment.activate_experiment(experiment.name)
    return experiment, (previous if previous is not None and previous.id != experiment.id
                        else None)


def simulate(client, cfg: SimConfig, ground_truth, *, echo: Echo | None = None,
             progress: bool = False) -> SimResult:
    """Run the simulation against ``client`` (a Flask test client of the app whose context is
    active). ``ground_truth``: an object with ``affinity(user_ids, track_ids)``."""
    from tqdm import tqdm

    say = echo or (lambda _m: None)
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)

    known = set(int(u) for u in ground_truth.user_ids.tolist())
    users = np.array(sorted(u for u in db.session.scalars(select(User.user_id)) if u in known),
                     dtype=np.int64)
    if len(users) < cfg.max_group:
        raise ValueError(f"only {len(users)} users of the database are in the ground truth; "
                         f"is it the ground truth of the imported export?")
    durations = dict(db.session.execute(select(Track.id, Track.duration_ms)).all())
    newest = db.session.scalar(select(func.max(ListeningEvent.timestamp)))
    start = (newest.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
             if newest else datetime(2024, 1, 1))
    next_session = int(db.session.scalar(select(func.max(ListeningEvent.session_id))) or 0) + 1
    circles = _friend_circles(users, cfg.friends, rng)
    experiment, previous = _start_experiment(cfg, start)
    result = SimResult(experiment.id, experiment.name, start, start)
    # The simulated backend calls with a key of its own, as Pozytywka's backend would: only an
    # authenticated client's playlists count as evidence. Revoked when the run ends.
    sim_client, key = clients.create_client(f"{experiment.name[:80]}-{secrets.token_hex(4)}")
    environ = {**SIMULATED_CLIENT, "HTTP_AUTHORIZATION": f"Bearer {key}"}
    say(f"experiment {experiment.name!r} (id {experiment.id}), {len(users):,} simulated people, "
        f"days from {start:%Y-%m-%d}")

    bar = tqdm(total=cfg.days * cfg.groups_per_day, desc="playlists", unit="playlist",
               disable=not progress)
    sessions = iter(range(next_session, next_session + 10**9))
    config = client.application.config
    saved_aa = config.get("AB_AA_MODEL")
    if cfg.aa_model:
        config["AB_AA_MODEL"] = cfg.aa_model
    try:
        for day in range(cfg.days):
            day_start = start + timedelta(days=day)
            events: list[dict] = []
            # gatherings happen between 10:00 and 23:00, in time order
            for offset in np.sort(rng.uniform(10 * 3600, 23 * 3600, size=cfg.groups_per_day)):
                bar.update()
                host = int(rng.integers(len(users)))
                size = int(rng.integers(cfg.min_group, cfg.max_group + 1))
                friends = rng.choice(circles[host], size=min(size - 1, len(circles[host])),
                                     replace=False)
                group = [int(users[host])] + [int(users[f]) for f in friends]
                t0 = day_start + timedelta(seconds=float(offset))
                events += _one_playlist(client, cfg, ground_truth, durations, group, t0,
                                        experiment.id, sessions, rng, result, environ)
            result.events += _insert_events(events)
            result.end = day_start + timedelta(days=1)
    finally:  # even when a step fails, the experiment that was active before comes back
        config["AB_AA_MODEL"] = saved_aa
        bar.close()
        db.session.rollback()
        clients.revoke_client(sim_client.name)
        _finish_experiment(experiment, previous, result.end, cfg.keep_active)
    result.seconds = time.perf_counter() - started
    return result


def _one_playlist(client, cfg: SimConfig, ground_truth, durations: dict[str, int],
                  group: list[int], t0: datetime, experiment_id: int, sessions,
                  rng: np.random.Generator, result: SimResult,
                  environ: dict | None = None) -> list[dict]:
    """One host's request, the gathering's feedback, and the members' later sessions (returned
    as listening-event rows for the day's bulk insert)."""
    environ = environ or SIMULATED_CLIENT
    resp = client.post("/predict", json={"user_id": group[0], "other_users": group[1:],
                                         "playlist_length": cfg.playlist_length},
                       environ_base=environ)
    if resp.status_code != 200:
        result.errors[resp.status_code] = result.errors.get(resp.status_code, 0) + 1
        return []
    pid = resp.headers["X-Prediction-Id"]
    arm = resp.headers.get("X-AB-Arm", "none")
    tracks = [item["id"] for item in resp.get_json()]
    _restamp_prediction(pid, group[0], experiment_id, t0)
    result.predictions += 1
    result.by_arm[arm] = result.by_arm.get(arm, 0) + 1
    try:
        aff = ground_truth.affinity(group, tracks)  # members x tracks, true P(enjoy)
    except KeyError as exc:
        raise ValueError(f"{exc} is not in the ground truth: is it the ground truth of the "
                         f"export that was imported?") from None
    result.true_fit.setdefault(arm, []).append(float(aff.mean()))
    dur = np.array([int(durations.get(t, 0)) for t in tracks], dtype=np.int64)
    tokens = _feedback_tokens(resp.headers.get("X-Feedback-Tokens", ""))
    _gathering(client, cfg.behaviour, pid, tokens, group, tracks, aff, dur, t0, rng, result,
               environ)
    return _later_sessions(cfg.behaviour, group, tracks, aff, dur, t0, sessions, rng, result)


def _feedback_tokens(header: str) -> dict[int, str]:
    """``X-Feedback-Tokens`` (``USER_ID=TOKEN,...``): each member's phone holds its own."""
    pairs = (item.split("=", 1) for item in header.split(",") if "=" in item)
    return {int(user): token for user, token in pairs}


def _gathering(client, beh: Behaviour, pid: str, tokens: dict[int, str], group: list[int],
               tracks: list[str], aff: np.ndarray, dur: np.ndarray, t0: datetime,
               rng: np.random.Generator, result: SimResult,
               environ: dict | None = None) -> None:
    """The host's phone plays the playlist to the room and reports it through /feedback."""
    feedback: list[tuple[datetime, dict]] = []
    clock = t0 + timedelta(seconds=float(rng.uniform(60, 900)))
    for pos, kept in _listen(aff.mean(axis=0), rng, beh.patience):
        body = {"prediction_id": pid, "track_id": tracks[pos]}
        if kept:
            feedback.append((clock, {**body, "user_id": group[0], "event_type": "play",
                                     "ms_played": int(dur[pos])}))
            for j, member in enumerate(group):
                if rng.random() < beh.like_share * aff[j, pos]:
                    feedback.append((clock + timedelta(seconds=30),
                                     {**body, "user_id": member, "event_type": "like",
                                      "ms_played": 0}))
            clock += timedelta(milliseconds=int(dur[pos]))
        else:
            heard = int(1000 * rng.uniform(*beh.skip_seconds))
            feedback.append((clock, {**body, "user_id": group[0], "event_type": "skip",
                                     "ms_played": min(heard, int(dur[pos]))}))
            clock += timedelta(milliseconds=heard)
    for when, body in feedback:
        r = client.post("/feedback", json={**body, "feedback_token": tokens.get(body["user_id"])},
                        environ_base=environ or SIMULATED_CLIENT)
        if r.status_code != 201:
            result.errors[r.status_code] = result.errors.get(r.status_code, 0) + 1
            continue
        db.session.execute(update(Feedback).where(Feedback.id == r.get_json()["id"])
                           .values(created_at=when))
        result.feedback += 1
    db.session.commit()


def _later_sessions(beh: Behaviour, group: list[int], tracks: list[str], aff: np.ndarray,
                    dur: np.ndarray, t0: datetime, sessions, rng: np.random.Generator,
                    result: SimResult) -> list[dict]:
    """Members who liked the playlist come back to it alone, hours to days later."""
    rows: list[dict] = []
    fit = aff.mean(axis=1)
    for j, member in enumerate(group):
        if rng.random() >= fit[j] ** beh.return_power:
            continue
        when = t0 + timedelta(hours=float(rng.uniform(*beh.later_hours)))
        session = next(sessions)
        result.sessions += 1
        for pos, enjoyed in _listen(aff[j], rng, beh.patience):
            rows.append(_event(session, when, member, tracks[pos],
                               "play" if enjoyed else "skip"))
            if enjoyed and rng.random() < beh.like_share * aff[j, pos]:
                rows.append(_event(session, when + timedelta(seconds=20), member, tracks[pos],
                                   "like"))
            when += timedelta(milliseconds=int(dur[pos]) if enjoyed else
                              int(1000 * rng.uniform(*beh.skip_seconds)))
    return rows


def _event(session: int, when: datetime, user: int, track: str, kind: str) -> dict:
    return {"dedup_key": event_dedup_key(session, when, user, track, kind), "session_id": session,
            "timestamp": when, "user_id": user, "track_id": track, "event_type": kind}


def _insert_events(rows: list[dict]) -> int:
    """Bulk insert in one statement per chunk; the unique dedup key makes a repeat a no-op."""
    if not rows:
        return 0
    table = ListeningEvent.__table__
    dialect = db.session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        dialect_insert = None
    inserted = 0
    for i in range(0, len(rows), 5000):
        chunk = rows[i:i + 5000]
        if dialect_insert is not None:
            stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])
        else:
            stmt = insert(table)
        inserted += db.session.execute(stmt, chunk).rowcount or 0
    db.session.commit()
    return inserted


def _restamp_prediction(pid: str, host: int, experiment_id: int, when: datetime) -> None:
    """Move what the API just wrote with the wall clock to the simulated clock."""
    db.session.execute(update(Prediction).where(Prediction.id == pid).values(created_at=when))
    db.session.execute(update(Assignment).where(Assignment.experiment_id == experiment_id,
                                                Assignment.user_id == host,
                                                Assignment.assigned_at > when)
                       .values(assigned_at=when))
    db.session.commit()


def _finish_experiment(experiment: Experiment, previous: Experiment | None, end: datetime,
                       keep_active: bool) -> None:
    if keep_active:
        return
    if previous is not None:
        assignment.activate_experiment(previous.name)
    else:
        assignment.stop_experiment(experiment.name)
    db.session.execute(update(Experiment).where(Experiment.id == experiment.id)
                       .values(stopped_at=end))
    db.session.commit()


# ----- the figures ---------------------------------------------------------------------------

def summary(experiment_id: int) -> dict:
    """The dashboard's own numbers (``report.build_report``) as a plain dict."""
    from app.experiments import stats
    from app.experiments.report import build_report

    experiment = db.session.get(Experiment, experiment_id)
    report = build_report(experiment)
    arms = {a.name: {"playlists": a.served, "assigned_users": a.assigned,
                     "decided": a.decided, "pending": a.pending, "units": a.rate.units,
                     "successes": a.successes, "success_rate": a.success_rate,
                     "success_ci": a.success_ci, "like_rate": a.like_rate,
                     "skip_rate": a.skip_rate, "fallbacks": a.fallbacks}
            for a in report.arms}
    comparisons = []
    for c in report.comparisons:
        r = c.result
        comparisons.append({"control": c.control, "treatment": c.treatment,
                            "difference": r.diff if r else None,
                            "ci": (r.ci_low, r.ci_high) if r else None,
                            "p_value": r.p_value if r else None,
                            "significant": r.significant if r else None,
                            "enough": c.enough})
    srm = report.srm
    return {"experiment": experiment.name, "arms": arms, "comparisons": comparisons,
            "srm_p_value": srm.p_value if srm else None,
            "srm_flagged": srm.flagged if srm else None, "days": len(report.days),
            "assigned_users": report.assigned_total, "srm_min_users": stats.MIN_SRM_UNITS}


def format_summary(s: dict, result: SimResult | None = None) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = [f"experiment {s['experiment']}: {s['days']} days"]
    lines.append(f"{'arm':<10}{'playlists':>10}{'pending':>8}{'users':>7}{'success':>9}"
                 f"{'95% CI':>17}"
                 f"{'like':>8}{'skip':>8}" + (f"{'true fit':>10}" if result else ""))
    for name, a in s["arms"].items():
        ci = a["success_ci"]
        ci_text = f"{pct(ci[0])}-{pct(ci[1])}" if ci else "-"
        fit = ""
        if result and result.true_fit.get(name):
            fit = f"{np.mean(result.true_fit[name]):>10.3f}"
        lines.append(f"{name:<10}{a['playlists']:>10}{a['pending']:>8}{a['assigned_users']:>7}"
                     f"{pct(a['success_rate']):>9}{ci_text:>17}{pct(a['like_rate']):>8}"
                     f"{pct(a['skip_rate']):>8}{fit}")
    for c in s["comparisons"]:
        if c["difference"] is None:
            lines.append(f"{c['treatment']} - {c['control']}: success rate difference: not "
                         f"enough data yet (needs decided playlists of two or more users in "
                         f"each arm)")
            continue
        lines.append(f"{c['treatment']} - {c['control']}: success rate difference "
                     f"{100 * c['difference']:+.1f} points, 95% CI "
                     f"[{100 * c['ci'][0]:+.1f}, {100 * c['ci'][1]:+.1f}], "
                     f"p = {c['p_value']:.2g}"
                     + (" (significant)" if c["significant"] else " (not significant)")
                     + ("" if c["enough"] else "; not enough data yet for a verdict"))
    lines.append("success: successful / decided playlists per user (delta method); pending "
                 "playlists (20-session window still open) count in no rate")
    if s["srm_p_value"] is not None:
        lines.append(f"sample ratio check: p = {s['srm_p_value']:.3f} "
                     + ("FLAGGED (p < 0.001)" if s["srm_flagged"] else "(passes)"))
    else:
        lines.append(f"sample ratio check: not enough data yet ({s['assigned_users']} assigned "
                     f"users, needs {s['srm_min_users']})")
    return "\n".join(lines)
