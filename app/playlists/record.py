"""Record a served playlist: its prediction row and its predictions-log line, or neither.

Order of the write: assignment and prediction row inserted (the database write lock is now held
and constraints are checked), then the log line, then COMMIT. A failed log write rolls the row
back, so rows and lines stay equal; a COMMIT failing after a successful append is the one
remaining gap, and with the lock already held that takes a disk or connection fault.

The row is one prepared INSERT on the session's DBAPI connection (the same transaction as the
A/B assignment written before it) and the COMMIT is the DBAPI connection's: for one plain row
the ORM session's unit of work and SQLAlchemy's execution machinery cost more than the
statement. Values go through the columns' own bind processors, so the stored row is the one
SQLAlchemy would write, and driver errors are raised as SQLAlchemy's (a locked database is
still a 503); the member scores, fit and attribution arrive as JSON text already
(``row_json``: the same text, made without building and encoding Python objects).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.exc import DBAPIError

from app.common.clock import utcnow
from app.db.experiments import Prediction
from app.experiments.assignment import ArmChoice
from app.extensions import db
from app.playlists.build import Playlist
from app.playlists.errors import CannotBuild, LogUnavailable
from app.playlists.log import PredictionLogError, append_record
from app.playlists.request import PlaylistRequest
from app.playlists.row_json import JSONText, attribution_json, scores_json

log = logging.getLogger(__name__)
_TABLE = Prediction.__table__
_KEYS = tuple(c.key for c in _TABLE.columns)
_statements: dict[str, "_Statement"] = {}  # per dialect name


@dataclass(frozen=True)
class _Statement:
    """The INSERT compiled once for a dialect: its SQL, the order of its parameters (None:
    named) and each column's bind processor."""
    sql: str
    order: tuple[str, ...] | None
    processors: tuple[tuple[str, object], ...]

    @classmethod
    def for_dialect(cls, dialect) -> "_Statement":
        compiled = _TABLE.insert().compile(dialect=dialect, column_keys=list(_KEYS))
        procs = tuple((c.key, c.type.dialect_impl(dialect).bind_processor(dialect))
                      for c in _TABLE.columns)
        return cls(str(compiled), tuple(compiled.positiontup) if compiled.positional else None,
                   tuple((k, p) for k, p in procs if p is not None))

    def params(self, values: dict) -> tuple | dict:
        for key, proc in self.processors:
            value = values[key]
            if type(value) is not JSONText:  # JSON text made by row_json is bound as it is
                values[key] = proc(value)
        return values if self.order is None else tuple(values[k] for k in self.order)


def _insert_row(values: dict):
    """INSERT ``values`` on the session's DBAPI connection, in its transaction; returns that
    connection, for the COMMIT."""
    conn = db.session.connection()
    dialect = conn.dialect
    stmt = _statements.get(dialect.name)
    if stmt is None:
        stmt = _statements[dialect.name] = _Statement.for_dialect(dialect)
    dbapi_conn = conn.connection.driver_connection
    params = stmt.params(values)
    try:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(stmt.sql, params)
        finally:
            cur.close()
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(stmt.sql, params, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc
    return dbapi_conn, dialect


def _commit(dbapi_conn, dialect) -> None:
    try:
        dbapi_conn.commit()
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance("COMMIT", None, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc


@dataclass(frozen=True)
class Served:
    """What recording a playlist adds to it: the prediction's id and the A/B arm served."""
    prediction_id: str
    playlist: Playlist
    experiment: str | None  # the active experiment when the choice was "ab", else None
    arm: str | None
    fallback: bool  # the arm was advanced but no model could load, so base served


def record(req: PlaylistRequest, playlist: Playlist, arm: ArmChoice | None, fallback: bool,
           started: float) -> Served:
    """Insert the row, append the line, commit; ``started`` is a perf_counter value."""
    group = playlist.group
    if len(playlist.tracks) != req.length:
        db.session.rollback()
        raise CannotBuild(f"only {len(playlist.tracks)} tracks qualify for this group; ask for "
                          "fewer", available=len(playlist.tracks))
    now = utcnow()
    prediction_id = time_ordered_id()
    elapsed = time.perf_counter() - started
    track_ids = [track.track_id for track in playlist.tracks]
    user_id, other_users = req.user_id, list(req.members[1:])
    dbapi_conn, dialect = _insert_row({
        "id": prediction_id, "created_at": now, "endpoint": req.endpoint,
        "model": group.model, "model_version": group.version,
        "experiment_id": arm.experiment_id if arm else None, "arm": arm.arm if arm else None,
        "is_ab": arm is not None, "trusted": req.trusted, "client_id": req.client_id,
        "fallback": fallback, "user_id": user_id,
        "other_users": other_users, "playlist_length": req.length,
        "strategy": group.strategy or (req.strategy if req.strategy_named else None),
        "exclude_explicit": req.rules.exclude_explicit, "track_ids": track_ids,
        "members": list(playlist.members),
        "member_scores": scores_json(group.member_scores),
        "member_fit": scores_json(group.member_fit), "attribution": _attribution(playlist),
        "elapsed_ms": round(elapsed * 1000, 3),
    })
    line = {
        "user_id": user_id, "other_users": other_users, "playlist": track_ids,
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f"), "elapsed_time": elapsed,
        "model": group.model, "is_ab": arm is not None, "trusted": req.trusted,
        "prediction_id": prediction_id, "model_version": group.version,
        "endpoint": req.endpoint, "experiment": arm.experiment if arm else None,
        "arm": arm.arm if arm else None, "fallback": fallback,
    }
    try:
        append_record(current_app.config["PREDICTIONS_LOG"], line)
    except PredictionLogError as exc:
        db.session.rollback()
        log.error("%s", exc)
        raise LogUnavailable("the playlist could not be recorded, so it is not served; retry "
                             "shortly") from None
    _commit(dbapi_conn, dialect)
    return Served(prediction_id, playlist, arm.experiment if arm else None,
                  arm.arm if arm else None, fallback)


def time_ordered_id(now_ns: int | None = None) -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits, the format links already use: the creation time in
    milliseconds leads, so each new prediction row goes to the end of the primary-key index
    instead of a random page of it; the 74 random bits that follow keep ids unguessable."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64
             | 0b10 << 62 | (rand & ((1 << 62) - 1)))
    return f"{value:032x}"


def _attribution(playlist: Playlist) -> JSONText | None:
    """The stored form of whom each track is for (user ids), the member whose turn chose it
    and why it is there; None when no model attributed the tracks."""
    group = playlist.group
    if group.for_members is None:
        return None
    return attribution_json(playlist.members, group.for_members,
                            group.turns or [-1] * len(group.indices),
                            playlist.reasons or [None] * len(group.indices))
