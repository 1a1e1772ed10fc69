"""Business outcome of served playlists, computed in the database in one statement.

Success (the business definition in ../shared/pozytywka-data.md): a playlist succeeds when, for
at least one participant (the requesting user or one of the other users), the playlist's tracks
were heard for at least 35% of the playlist's total duration within that participant's next 20
sessions after the prediction. Exactly:

* **Playlist duration** — the sum of ``duration_ms`` over the playlist's distinct tracks.
* **Next 20 sessions of a participant** — the participant's listening sessions (events grouped
  by ``session_id``) with at least one event at or after the prediction time, ordered by their
  last event, first 20. A session that is running when the playlist is made counts, from the
  prediction time on. Only events at or after the prediction time count.
* **Heard time of a playlist track for a participant** — the larger of
  (a) its full ``duration_ms`` when, in one of those sessions, the participant has a ``play`` or
      ``like`` of it and no ``skip`` of it (the export records a skip after the play but not how
      long was heard, so a skipped play counts 0 ms — a conservative choice), and
  (b) the largest ``ms_played`` the participant reported for it through ``POST /feedback`` on
      this prediction, capped at the track's duration.
  Taking the larger of the two, not the sum, means a play that is both reported as feedback and
  later imported as a listening event is not counted twice; a track heard twice counts once.
* **Success** — max over participants of (sum of heard time over the playlist's tracks) is at
  least ``SUCCESS_SHARE`` (35%) of the playlist duration.
* **Decided or pending** — an outcome is final once every participant has had their 20
  sessions (``Outcome.window_complete``), or once the listening data reach ``DECIDE_AFTER``
  past the prediction (people who stop listening would otherwise keep a playlist pending
  forever). Until then the playlist is *pending*: not a failure, and not counted in the rates
  even when it already succeeded, since counting only early successes would bias them up.

Like and skip rates use the same window and feedback, per (participant, playlist track) pair
that was *started* (any play, like or skip event, or any feedback row): like rate = pairs with a
like / started pairs; skip rate = pairs with a skip that were never heard in full / started
pairs.

Everything above is one SQL statement (common table expressions, a window function) that SQLite
3.35+ and PostgreSQL 12+ both run; only the expansion of the JSON id lists differs. It reads the
participants' events after the earliest prediction in two grouped passes over the
(user_id, timestamp) index, numbers each user's sessions once (not once per prediction), and
then works on (participant, playlist track) pairs, so thousands of predictions cost a few
passes, not a query each. The hot CTEs are MATERIALIZED and one join order is pinned with
CROSS JOIN, because SQLite's planner otherwise probes every session of a user per pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from app.extensions import db

SUCCESS_SHARE = 0.35
NEXT_SESSIONS = 20
DECIDE_AFTER = timedelta(days=3)


@dataclass(frozen=True)
class Outcome:
    prediction_id: str
    total_ms: int
    best_ms: int          # heard time of the participant who heard the most
    started: int          # (participant, track) pairs started
    liked: int
    skipped: int
    window_sessions: int = 0  # sessions seen so far in the window of the least active member

    @property
    def window_complete(self) -> bool:
        """Every participant has had their next NEXT_SESSIONS sessions: the outcome is final."""
        return self.window_sessions >= NEXT_SESSIONS

    @property
    def best_share(self) -> float:
        return self.best_ms / self.total_ms if self.total_ms else 0.0

    @property
    def success(self) -> bool:
        return self.total_ms > 0 and self.best_ms >= SUCCESS_SHARE * self.total_ms


@dataclass(frozen=True)
class MemberOutcome:
    user_id: int
    heard_ms: int
    started: int
    liked: int
    skipped: int


def _json_ids(dialect: str, column: str, alias: str) -> str:
    """A FROM item yielding one row per element of a JSON array column (as ``alias.value``)."""
    if dialect == "sqlite":
        return f"json_each({column}) AS {alias}"
    if dialect == "postgresql":
        return f"json_array_elements_text(CAST({column} AS json)) AS {alias}(value)"
    raise NotImplementedError(f"success metrics support SQLite and PostgreSQL, not {dialect}")


def _outcome_ctes(dialect: str, where: str) -> str:
    others = _json_ids(dialect, "p.other_users", "j")
    tracks = _json_ids(dialect, "p.track_ids", "j")
    return f"""
WITH preds AS (
    SELECT p.id, p.created_at, p.user_id, p.other_users, p.track_ids
    FROM predictions p WHERE {where}
),
participants AS (
    SELECT id AS pid, created_at AS t, user_id AS uid FROM preds
    UNION
    SELECT p.id, p.created_at, CAST(j.value AS INTEGER) FROM preds p, {others}
),
ptracks AS (
    SELECT DISTINCT p.id AS pid, CAST(j.value AS VARCHAR(64)) AS track_id FROM preds p, {tracks}
),
totals AS (
    SELECT pt.pid, SUM(tr.duration_ms) AS total_ms
    FROM ptracks pt JOIN tracks tr ON tr.id = pt.track_id GROUP BY pt.pid
),
user_sessions AS (
    SELECT e.user_id, e.session_id, MAX(e.timestamp) AS ended
    FROM listening_events e
    WHERE e.user_id IN (SELECT uid FROM participants)
      AND e.timestamp >= (SELECT MIN(created_at) FROM preds)
    GROUP BY e.user_id, e.session_id
),
numbered AS MATERIALIZED (
    -- each participant's sessions in order, numbered once per user (not once per prediction)
    SELECT user_id, session_id, ended,
           ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ended, session_id) AS n
    FROM user_sessions
),
starts AS MATERIALIZED (
    -- the first session of the participant with an event at or after the prediction
    SELECT pa.pid, pa.uid, pa.t,
           (SELECT MIN(nu.n) FROM numbered nu
             WHERE nu.user_id = pa.uid AND nu.ended >= pa.t) AS first_n
    FROM participants pa
),
window_sessions AS MATERIALIZED (
    SELECT s.pid, s.uid, s.t, nu.session_id
    FROM starts s
    JOIN numbered nu ON nu.user_id = s.uid AND nu.n >= s.first_n
                    AND nu.n < s.first_n + {NEXT_SESSIONS}
),
session_tracks AS MATERIALIZED (
    -- per session and playlist track, the last time it was played / liked / skipped, so that
    -- in a session already running at the prediction only what came after it counts
    SELECT e.user_id AS uid, e.session_id, e.track_id,
           MAX(CASE WHEN e.event_type IN ('play', 'like') THEN e.timestamp END) AS played_at,
           MAX(CASE WHEN e.event_type = 'like' THEN e.timestamp END) AS liked_at,
           MAX(CASE WHEN e.event_type = 'skip' THEN e.timestamp END) AS skipped_at
    FROM listening_events e
    WHERE e.user_id IN (SELECT uid FROM participants)
      AND e.timestamp >= (SELECT MIN(created_at) FROM preds)
      AND e.event_type IN ('play', 'like', 'skip')
      AND e.track_id IN (SELECT track_id FROM ptracks)
    GROUP BY e.user_id, e.session_id, e.track_id
),
candidates AS MATERIALIZED (
    SELECT pa.pid, pa.uid, pa.t, pt.track_id
    FROM participants pa JOIN ptracks pt ON pt.pid = pa.pid
),
per_session AS (
    -- (participant, playlist track) -> the sessions of the window in which it was heard
    SELECT c.pid, c.uid, c.track_id, st.session_id,
           CASE WHEN st.played_at >= c.t THEN 1 ELSE 0 END AS played,
           CASE WHEN st.liked_at >= c.t THEN 1 ELSE 0 END AS liked,
           CASE WHEN st.skipped_at >= c.t THEN 1 ELSE 0 END AS skipped
    -- CROSS JOIN keeps this order in SQLite (PostgreSQL plans it freely): from the few
    -- (participant, track) pairs to the sessions where that user had that track
    FROM candidates c CROSS JOIN session_tracks st CROSS JOIN window_sessions ws
    WHERE st.uid = c.uid AND st.track_id = c.track_id
      AND ws.pid = c.pid AND ws.uid = c.uid AND ws.session_id = st.session_id
      AND (st.played_at >= c.t OR st.liked_at >= c.t OR st.skipped_at >= c.t)
),
signals AS (
    SELECT ps.pid, ps.uid, ps.track_id,
           CASE WHEN ps.played = 1 AND ps.skipped = 0 THEN tr.duration_ms ELSE 0 END AS ms,
           ps.liked, ps.skipped
    FROM per_session ps JOIN tracks tr ON tr.id = ps.track_id
    UNION ALL
    SELECT f.prediction_id, f.user_id, f.track_id,
           CASE WHEN f.ms_played > tr.duration_ms THEN tr.duration_ms ELSE f.ms_played END,
           CASE WHEN f.event_type = 'like' THEN 1 ELSE 0 END,
           CASE WHEN f.event_type = 'skip' THEN 1 ELSE 0 END
    FROM feedback f
    JOIN participants pa ON pa.pid = f.prediction_id AND pa.uid = f.user_id
    JOIN ptracks pt ON pt.pid = f.prediction_id AND pt.track_id = f.track_id
    JOIN tracks tr ON tr.id = f.track_id
),
pairs AS (
    SELECT s.pid, s.uid, s.track_id, MAX(s.ms) AS ms, MAX(s.liked) AS liked,
           CASE WHEN MAX(s.skipped) = 1 AND MAX(s.ms) < MAX(tr.duration_ms) THEN 1 ELSE 0 END
               AS skipped
    FROM signals s JOIN tracks tr ON tr.id = s.track_id
    GROUP BY s.pid, s.uid, s.track_id
),
members AS (
    SELECT pid, uid, SUM(ms) AS ms, COUNT(*) AS started, SUM(liked) AS liked,
           SUM(skipped) AS skipped
    FROM pairs GROUP BY pid, uid
)"""


def outcomes(where: str = "1 = 1", params: dict[str, Any] | None = None) -> dict[str, Outcome]:
    """Outcome of every prediction matching ``where`` (SQL on ``predictions p``; internal use)."""
    dialect = db.session.get_bind().dialect.name
    sql = _outcome_ctes(dialect, where) + """
SELECT p.id, COALESCE(tt.total_ms, 0), COALESCE(m.best_ms, 0), COALESCE(m.started, 0),
       COALESCE(m.liked, 0), COALESCE(m.skipped, 0), COALESCE(wn.fewest, 0)
FROM preds p
LEFT JOIN totals tt ON tt.pid = p.id
LEFT JOIN (SELECT pa.pid, MIN(COALESCE(w.n, 0)) AS fewest
           FROM participants pa
           LEFT JOIN (SELECT pid, uid, COUNT(*) AS n FROM window_sessions GROUP BY pid, uid) w
                  ON w.pid = pa.pid AND w.uid = pa.uid
           GROUP BY pa.pid) wn ON wn.pid = p.id
LEFT JOIN (SELECT pid, MAX(ms) AS best_ms, SUM(started) AS started, SUM(liked) AS liked,
                  SUM(skipped) AS skipped
           FROM members GROUP BY pid) m ON m.pid = p.id
"""
    rows = db.session.execute(text(sql), params or {}).all()
    return {r[0]: Outcome(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
            for r in rows}


def experiment_outcomes(experiment_id: int, since: datetime | None = None,
                        until: datetime | None = None) -> dict[str, Outcome]:
    """Outcomes of the experiment's evidence: A/B-served playlists of trusted callers."""
    where = "p.experiment_id = :experiment_id AND p.is_ab = :is_ab AND p.trusted = :trusted"
    params: dict[str, Any] = {"experiment_id": experiment_id, "is_ab": True, "trusted": True}
    if since is not None:
        where += " AND p.created_at >= :since"
        params["since"] = since
    if until is not None:
        where += " AND p.created_at < :until"
        params["until"] = until
    return outcomes(where, params)


def data_clock() -> datetime | None:
    """The newest listening event: outcomes are known up to the data imported so far."""
    from sqlalchemy import func, select

    from app.db import ListeningEvent

    return db.session.scalar(select(func.max(ListeningEvent.timestamp)))


def is_decided(outcome: Outcome | None, created_at: datetime, clock: datetime | None) -> bool:
    if outcome is None:
        return False
    if outcome.window_complete:
        return True
    return clock is not None and clock >= created_at + DECIDE_AFTER


def prediction_outcome(prediction_id: str) -> tuple[Outcome | None, list[MemberOutcome]]:
    """One prediction's outcome with the per-participant breakdown (the detail page)."""
    dialect = db.session.get_bind().dialect.name
    params = {"pid": prediction_id}
    ctes = _outcome_ctes(dialect, "p.id = :pid")
    rows = db.session.execute(text(ctes + """
SELECT pa.uid, COALESCE(m.ms, 0), COALESCE(m.started, 0), COALESCE(m.liked, 0),
       COALESCE(m.skipped, 0)
FROM participants pa LEFT JOIN members m ON m.pid = pa.pid AND m.uid = pa.uid
"""), params).all()
    members = [MemberOutcome(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
    return outcomes("p.id = :pid", params).get(prediction_id), members
