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

Everything above is one statement (common table expressions, a window function), built with
SQLAlchemy Core over the models' tables, that SQLite 3.35+ and PostgreSQL 12+ both run; the
expansion of the JSON id lists is the one construct compiled per dialect
(``app.db.json_arrays``). It reads the participants' events after the earliest prediction in
two grouped passes over the (user_id, timestamp) index, numbers each user's sessions once (not
once per prediction), and then works on (participant, playlist track) pairs, so thousands of
predictions cost a few passes, not a query each. The hot CTEs are MATERIALIZED and one join
order is pinned with CROSS JOIN, because SQLite's planner otherwise probes every session of a
user per pair. Callers choose the predictions with Core conditions on ``Prediction``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Sequence

from sqlalchemy import (CTE, BindParameter, ColumnElement, Integer, Join, Select, String, and_,
                        bindparam, case, cast, func, literal, or_, select, true, union,
                        union_all)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import Case

from app.db import Feedback, ListeningEvent, Prediction, Track
from app.db.json_arrays import json_rows
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


class _CrossJoin(Join):
    """``left CROSS JOIN right``: SQLite keeps that join order (PostgreSQL plans it freely);
    the join conditions go in WHERE."""

    inherit_cache = True

    def __init__(self, left, right):
        super().__init__(left, right, true())


@compiles(_CrossJoin)
def _compile_cross_join(join, compiler, **kw):
    kw["asfrom"] = True
    if kw.get("from_linter") is not None:
        kw["from_linter"].edges.update(
            (a, b) for a in join.left._from_objects for b in join.right._from_objects)
    return " CROSS JOIN ".join(
        [compiler.process(join.left, **kw), compiler.process(join.right, **kw)])


def _const(value) -> ColumnElement:
    """A constant of the definition, written into the SQL rather than bound, so that a
    prepared statement's plan can rely on it."""
    return literal(value, literal_execute=True)


def _kinds(*kinds: str) -> BindParameter:
    return bindparam(None, kinds, expanding=True, literal_execute=True)


def _flag(condition) -> Case:
    return case((condition, _const(1)), else_=_const(0))


@dataclass(frozen=True)
class _Statement:
    """The common table expressions of the metric, for the statements below to select from."""
    preds: CTE
    participants: CTE
    totals: CTE
    window_sessions: CTE
    members: CTE


def _outcome_ctes(criteria: Sequence[ColumnElement[bool]]) -> _Statement:
    p = Prediction.__table__.c
    e = ListeningEvent.__table__.c
    tr = Track.__table__.c
    f = Feedback.__table__.c

    preds = select(p.id, p.created_at, p.user_id, p.other_users, p.track_ids) \
        .where(*criteria).cte("preds")
    others = json_rows(preds.c.other_users)
    participants = union(
        select(preds.c.id.label("pid"), preds.c.created_at.label("t"),
               preds.c.user_id.label("uid")),
        select(preds.c.id, preds.c.created_at, cast(others.c.value, Integer))
        .select_from(preds, others),
    ).cte("participants")
    listed = json_rows(preds.c.track_ids)
    ptracks = select(preds.c.id.label("pid"), cast(listed.c.value, String(64)).label("track_id")) \
        .select_from(preds, listed).distinct().cte("ptracks")
    totals = select(ptracks.c.pid, func.sum(tr.duration_ms).label("total_ms")) \
        .join_from(ptracks, Track.__table__, tr.id == ptracks.c.track_id) \
        .group_by(ptracks.c.pid).cte("totals")

    # the participants' events after the earliest prediction, in two grouped passes
    relevant = and_(e.user_id.in_(select(participants.c.uid)),
                    e.timestamp >= select(func.min(preds.c.created_at)).scalar_subquery())
    user_sessions = select(e.user_id, e.session_id, func.max(e.timestamp).label("ended")) \
        .where(relevant).group_by(e.user_id, e.session_id).cte("user_sessions")
    # each participant's sessions in order, numbered once per user (not once per prediction)
    numbered = select(
        user_sessions.c.user_id, user_sessions.c.session_id, user_sessions.c.ended,
        func.row_number().over(partition_by=user_sessions.c.user_id,
                               order_by=(user_sessions.c.ended, user_sessions.c.session_id))
        .label("n"),
    ).cte("numbered").prefix_with("MATERIALIZED")
    # the first session of the participant with an event at or after the prediction
    first_n = select(func.min(numbered.c.n)).where(
        numbered.c.user_id == participants.c.uid, numbered.c.ended >= participants.c.t,
    ).scalar_subquery()
    starts = select(participants.c.pid, participants.c.uid, participants.c.t,
                    first_n.label("first_n")).cte("starts").prefix_with("MATERIALIZED")
    window_sessions = select(starts.c.pid, starts.c.uid, starts.c.t, numbered.c.session_id) \
        .join_from(starts, numbered, and_(
            numbered.c.user_id == starts.c.uid, numbered.c.n >= starts.c.first_n,
            numbered.c.n < starts.c.first_n + _const(NEXT_SESSIONS))) \
        .cte("window_sessions").prefix_with("MATERIALIZED")
    # per session and playlist track, the last time it was played / liked / skipped, so that
    # in a session already running at the prediction only what came after it counts
    session_tracks = select(
        e.user_id.label("uid"), e.session_id, e.track_id,
        func.max(case((e.event_type.in_(_kinds("play", "like")), e.timestamp))).label("played_at"),
        func.max(case((e.event_type == _const("like"), e.timestamp))).label("liked_at"),
        func.max(case((e.event_type == _const("skip"), e.timestamp))).label("skipped_at"),
    ).where(relevant, e.event_type.in_(_kinds("play", "like", "skip")),
            e.track_id.in_(select(ptracks.c.track_id))) \
        .group_by(e.user_id, e.session_id, e.track_id) \
        .cte("session_tracks").prefix_with("MATERIALIZED")
    candidates = select(participants.c.pid, participants.c.uid, participants.c.t,
                        ptracks.c.track_id) \
        .join_from(participants, ptracks, ptracks.c.pid == participants.c.pid) \
        .cte("candidates").prefix_with("MATERIALIZED")

    # (participant, playlist track) -> the sessions of the window in which it was heard; the
    # join runs from the few (participant, track) pairs to the sessions where that user had
    # that track
    c, st, ws = candidates.c, session_tracks.c, window_sessions.c
    per_session = select(
        c.pid, c.uid, c.track_id, st.session_id,
        _flag(st.played_at >= c.t).label("played"),
        _flag(st.liked_at >= c.t).label("liked"),
        _flag(st.skipped_at >= c.t).label("skipped"),
    ).select_from(_CrossJoin(_CrossJoin(candidates, session_tracks), window_sessions)).where(
        st.uid == c.uid, st.track_id == c.track_id,
        ws.pid == c.pid, ws.uid == c.uid, ws.session_id == st.session_id,
        or_(st.played_at >= c.t, st.liked_at >= c.t, st.skipped_at >= c.t),
    ).cte("per_session")

    ps = per_session.c
    signals = union_all(
        select(ps.pid, ps.uid, ps.track_id,
               case((and_(ps.played == _const(1), ps.skipped == _const(0)), tr.duration_ms),
                    else_=_const(0))
               .label("ms"),
               ps.liked, ps.skipped)
        .join_from(per_session, Track.__table__, tr.id == ps.track_id),
        select(f.prediction_id, f.user_id, f.track_id,
               case((f.ms_played > tr.duration_ms, tr.duration_ms), else_=f.ms_played),
               _flag(f.event_type == _const("like")), _flag(f.event_type == _const("skip")))
        .join_from(Feedback.__table__, participants, and_(
            participants.c.pid == f.prediction_id, participants.c.uid == f.user_id))
        .join(ptracks, and_(ptracks.c.pid == f.prediction_id,
                            ptracks.c.track_id == f.track_id))
        .join(Track.__table__, tr.id == f.track_id),
    ).cte("signals")

    s = signals.c
    pairs = select(
        s.pid, s.uid, s.track_id, func.max(s.ms).label("ms"), func.max(s.liked).label("liked"),
        _flag(and_(func.max(s.skipped) == _const(1), func.max(s.ms) < func.max(tr.duration_ms)))
        .label("skipped"),
    ).join_from(signals, Track.__table__, tr.id == s.track_id) \
        .group_by(s.pid, s.uid, s.track_id).cte("pairs")
    members = select(
        pairs.c.pid, pairs.c.uid, func.sum(pairs.c.ms).label("ms"),
        func.count().label("started"), func.sum(pairs.c.liked).label("liked"),
        func.sum(pairs.c.skipped).label("skipped"),
    ).group_by(pairs.c.pid, pairs.c.uid).cte("members")
    return _Statement(preds, participants, totals, window_sessions, members)


def _zero(column) -> ColumnElement:
    return func.coalesce(column, 0)


def _outcomes_statement(criteria: Sequence[ColumnElement[bool]]) -> Select:
    q = _outcome_ctes(criteria)
    ws = q.window_sessions
    per_member = select(ws.c.pid, ws.c.uid, func.count().label("n")) \
        .group_by(ws.c.pid, ws.c.uid).subquery()
    pa = q.participants
    fewest = select(pa.c.pid, func.min(_zero(per_member.c.n)).label("fewest")) \
        .outerjoin_from(pa, per_member, and_(per_member.c.pid == pa.c.pid,
                                             per_member.c.uid == pa.c.uid)) \
        .group_by(pa.c.pid).subquery()
    mb = q.members
    best = select(mb.c.pid, func.max(mb.c.ms).label("best_ms"),
                  func.sum(mb.c.started).label("started"), func.sum(mb.c.liked).label("liked"),
                  func.sum(mb.c.skipped).label("skipped")).group_by(mb.c.pid).subquery()
    preds = q.preds
    return select(
        preds.c.id, _zero(q.totals.c.total_ms), _zero(best.c.best_ms), _zero(best.c.started),
        _zero(best.c.liked), _zero(best.c.skipped), _zero(fewest.c.fewest),
    ).select_from(preds) \
        .outerjoin(q.totals, q.totals.c.pid == preds.c.id) \
        .outerjoin(fewest, fewest.c.pid == preds.c.id) \
        .outerjoin(best, best.c.pid == preds.c.id)


def _members_statement(criteria: Sequence[ColumnElement[bool]]) -> Select:
    q = _outcome_ctes(criteria)
    pa, mb = q.participants, q.members
    return select(pa.c.uid, _zero(mb.c.ms), _zero(mb.c.started), _zero(mb.c.liked),
                  _zero(mb.c.skipped)) \
        .outerjoin_from(pa, mb, and_(mb.c.pid == pa.c.pid, mb.c.uid == pa.c.uid))


@lru_cache(maxsize=1)
def _one_prediction() -> tuple[Select, Select]:
    """The detail page's two statements, built once: building them costs more than running
    them for one playlist."""
    criteria = [Prediction.id == bindparam("prediction_id")]
    return _outcomes_statement(criteria), _members_statement(criteria)


def _read_outcomes(rows) -> dict[str, Outcome]:
    return {r[0]: Outcome(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
            for r in rows}


def outcomes(*criteria: ColumnElement[bool]) -> dict[str, Outcome]:
    """Outcome of every prediction matching ``criteria`` (conditions on ``Prediction``'s
    columns; none: every prediction)."""
    return _read_outcomes(db.session.execute(_outcomes_statement(criteria)))


def experiment_outcomes(experiment_id: int, since: datetime | None = None,
                        until: datetime | None = None) -> dict[str, Outcome]:
    """Outcomes of the experiment's evidence: A/B-served playlists of trusted callers."""
    criteria = [Prediction.experiment_id == experiment_id, Prediction.is_ab.is_(True),
                Prediction.trusted.is_(True)]
    if since is not None:
        criteria.append(Prediction.created_at >= since)
    if until is not None:
        criteria.append(Prediction.created_at < until)
    return outcomes(*criteria)


def data_clock() -> datetime | None:
    """The newest listening event: outcomes are known up to the data imported so far."""
    return db.session.scalar(select(func.max(ListeningEvent.timestamp)))


def is_decided(outcome: Outcome | None, created_at: datetime, clock: datetime | None) -> bool:
    if outcome is None:
        return False
    if outcome.window_complete:
        return True
    return clock is not None and clock >= created_at + DECIDE_AFTER


def prediction_outcome(prediction_id: str) -> tuple[Outcome | None, list[MemberOutcome]]:
    """One prediction's outcome with the per-participant breakdown (the detail page)."""
    outcome_statement, members_statement = _one_prediction()
    params = {"prediction_id": prediction_id}
    rows = db.session.execute(members_statement, params).all()
    members = [MemberOutcome(int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
    return _read_outcomes(db.session.execute(outcome_statement, params)).get(prediction_id), \
        members
