"""Record a served playlist: its prediction row and its predictions-log line, or neither.

Order of the write: assignment and prediction row inserted (the database write lock is now held
and constraints are checked), then the log line, then COMMIT. A failed log write rolls the row
back, so rows and lines stay equal; a COMMIT failing after a successful append is the one
remaining gap, and with the lock already held that takes a disk or connection fault.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from flask import current_app

from app.clock import utcnow
from app.db.experiments import Prediction
from app.experiments.assignment import ArmChoice
from app.extensions import db
from app.playlists.build import Playlist
from app.playlists.errors import CannotBuild, LogUnavailable
from app.playlists.log import PredictionLogError, append_record
from app.playlists.request import PlaylistRequest

log = logging.getLogger(__name__)
# A Core INSERT on the session's connection (same transaction): the ORM's unit of work and
# session dispatch cost more than the statement itself for one plain row.
_INSERT = Prediction.__table__.insert()


@dataclass(frozen=True)
class Served:
    prediction_id: str
    playlist: Playlist
    experiment: str | None  # the active experiment when the choice was "ab", else None
    arm: str | None
    fallback: bool  # the arm was advanced but no model could load, so base served
    elapsed_ms: float


def record(req: PlaylistRequest, playlist: Playlist, arm: ArmChoice | None, fallback: bool,
           started: float) -> Served:
    """Insert the row, append the line, commit; ``started`` is a perf_counter value."""
    if len(playlist.items) != req.length:
        db.session.rollback()
        raise CannotBuild(f"only {len(playlist.items)} tracks qualify for this group; ask for "
                          "fewer", available=len(playlist.items))
    now = utcnow()
    prediction_id = time_ordered_id()
    elapsed = time.perf_counter() - started
    track_ids = [item.track_id for item in playlist.items]
    user_id, other_users = req.user_id, list(req.members[1:])
    scores = [item.member_scores for item in playlist.items]
    db.session.connection().execute(_INSERT, {
        "id": prediction_id, "created_at": now, "endpoint": req.endpoint,
        "model": playlist.model, "model_version": playlist.model_version,
        "experiment_id": arm.experiment_id if arm else None, "arm": arm.arm if arm else None,
        "is_ab": arm is not None, "trusted": req.trusted, "client_id": req.client_id,
        "fallback": fallback, "user_id": user_id,
        "other_users": other_users, "playlist_length": req.length,
        "strategy": playlist.strategy or (req.strategy if req.strategy_named else None),
        "exclude_explicit": req.rules.exclude_explicit, "track_ids": track_ids,
        "members": list(playlist.members),
        "member_scores": scores if all(s is not None for s in scores) else None,
        "member_fit": playlist.member_fit, "attribution": _attribution(playlist),
        "elapsed_ms": round(elapsed * 1000, 3),
    })
    line = {
        "user_id": user_id, "other_users": other_users, "playlist": track_ids,
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f"), "elapsed_time": elapsed,
        "model": playlist.model, "is_ab": arm is not None, "trusted": req.trusted,
        "prediction_id": prediction_id, "model_version": playlist.model_version,
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
    db.session.commit()
    return Served(prediction_id, playlist, arm.experiment if arm else None,
                  arm.arm if arm else None, fallback, round(elapsed * 1000, 3))


def time_ordered_id(now_ns: int | None = None) -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits, the format links already use: the creation time in
    milliseconds leads, so each new prediction row goes to the end of the primary-key index
    instead of a random page of it; the 74 random bits that follow keep ids unguessable."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64
             | 0b10 << 62 | (rand & ((1 << 62) - 1)))
    return f"{value:032x}"


def _attribution(playlist: Playlist) -> list[dict] | None:
    """The stored form of whom each track is for; None when no model attributed the tracks."""
    if any(item.for_members is None for item in playlist.items):
        return None
    return [{"for": list(item.for_members), "turn": item.turn_of}
            | ({"reason": item.reason, "reason_member": item.reason_member}
               if item.reason is not None else {})
            for item in playlist.items]
