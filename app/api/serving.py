"""Serve one group playlist: pick the model (A/B arm), build it, record the row and the log line.

The single path by which a playlist is served, for the JSON API and the web builder alike, so
that every served playlist is counted the same way in the database and in the predictions log.
HTTP concerns stay in the callers: errors are the recommender's own exceptions
(``UnknownUsersError``, ``ModelUnavailableError``, ``ValueError`` for a strategy) or ``ApiError``
(carrying ``status`` and ``message``) for what happens here.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from flask import current_app

from app.clock import utcnow
from app.experiments import assignment
from app.db.experiments import Prediction
from app.errors import ApiError
from app.extensions import db
from app.predictions_log import PredictionLogError, append_record
from app.recommender import service

log = logging.getLogger(__name__)

Choice = Literal["ab", "base", "advanced"]


@dataclass(frozen=True)
class Served:
    prediction_id: str
    playlist: service.Playlist
    experiment: str | None  # the active experiment when choice == "ab", else None
    arm: str | None
    fallback: bool  # the arm was advanced but no model could load, so base served
    elapsed_ms: float

    @property
    def model(self) -> str:
        return self.playlist.model


def serve_playlist(members: list[int], length: int, *, choice: Choice = "ab",
                   strategy: str | None = None, exclude_explicit: bool = False,
                   endpoint: str = "web", started: float | None = None) -> Served:
    """Serve and record a playlist for ``members`` (the requesting user first).

    ``choice="ab"`` uses the first member's arm in the active experiment (the advanced model
    when none is active) and falls back to base when the advanced model cannot load; the
    explicit choices never fall back. ``started`` (a perf_counter value) lets the caller count
    its own parsing into the elapsed time.

    Order of the write: assignment and prediction row inserted (the database write lock is now
    held and constraints are checked), then the log line, then COMMIT. A failed log write rolls
    the row back, so rows and lines stay equal; a COMMIT failing after a successful append is
    the one remaining gap, and with the lock already held that takes a disk or connection fault.
    """
    started = time.perf_counter() if started is None else started
    user_id = members[0]
    strategy = strategy or current_app.config.get("DEFAULT_STRATEGY") or None
    for _attempt in range(2):
        arm = None
        if choice == "ab":
            experiment = assignment.serving_experiment()
            arm = assignment.arm_for(experiment, user_id) if experiment is not None else None
        wanted = arm.arm if arm is not None else ("advanced" if choice == "ab" else choice)
        if arm is not None and current_app.config.get("AB_AA_MODEL"):
            wanted = current_app.config["AB_AA_MODEL"]  # an A/A test: the arm is recorded only
        db.session.rollback()  # hold no read snapshot while the playlist is built
        playlist, fallback = _build(members, length, wanted, strategy, exclude_explicit,
                                    may_fall_back=choice == "ab")
        if arm is not None and assignment.store_assignment(arm) != arm.arm:
            # A concurrent first request stored another arm (the weights changed in between):
            # serve the stored one, so that the user sees one arm only.
            db.session.rollback()
            continue
        return _record(endpoint, members, length, playlist, arm, fallback, strategy,
                       exclude_explicit, started)
    raise ApiError(503, "service_unavailable", "could not settle the A/B assignment; retry",
                   None, {"Retry-After": "1"})


def _build(members: list[int], length: int, wanted: str, strategy: str | None,
           exclude_explicit: bool, may_fall_back: bool) -> tuple[service.Playlist, bool]:
    kwargs: dict[str, Any] = {"strategy": strategy, "exclude_explicit": exclude_explicit,
                              "seed": None}
    try:
        return service.build_playlist(members, length, model=wanted, **kwargs), False
    except service.ModelUnavailableError as exc:
        if wanted != "advanced" or not may_fall_back:
            raise
        log.warning("advanced model unavailable, serving the base model instead: %s", exc)
        return service.build_playlist(members, length, model="base", **kwargs), True


def _record(endpoint: str, members: list[int], length: int, playlist: service.Playlist,
            arm: assignment.ArmChoice | None, fallback: bool, strategy: str | None,
            exclude_explicit: bool, started: float) -> Served:
    if len(playlist.items) != length:
        db.session.rollback()
        raise ApiError(422, "playlist_too_short",
                       f"only {len(playlist.items)} tracks qualify for this group; ask for fewer",
                       {"available": len(playlist.items)})
    now = utcnow()
    prediction_id = uuid.uuid4().hex
    elapsed = time.perf_counter() - started
    track_ids = [item.track_id for item in playlist.items]
    user_id, other_users = members[0], list(members[1:])
    is_ab = arm is not None
    scores = [item.member_scores for item in playlist.items]
    db.session.add(Prediction(
        id=prediction_id, created_at=now, endpoint=endpoint, model=playlist.model,
        model_version=playlist.model_version,
        experiment_id=arm.experiment_id if arm else None, arm=arm.arm if arm else None,
        is_ab=is_ab, fallback=fallback, user_id=user_id, other_users=other_users,
        playlist_length=length, strategy=playlist.strategy or strategy,
        exclude_explicit=exclude_explicit, track_ids=track_ids, members=list(playlist.members),
        member_scores=_rounded(scores) if all(s is not None for s in scores) else None,
        member_fit=_rounded(playlist.member_fit) if playlist.member_fit is not None else None,
        attribution=_attribution(playlist),
        elapsed_ms=round(elapsed * 1000, 3),
    ))
    db.session.flush()
    record = {
        "user_id": user_id, "other_users": other_users, "playlist": track_ids,
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%S.%f"), "elapsed_time": elapsed,
        "model": playlist.model, "is_ab": is_ab,
        "prediction_id": prediction_id, "model_version": playlist.model_version,
        "endpoint": endpoint, "experiment": arm.experiment if arm else None,
        "arm": arm.arm if arm else None, "fallback": fallback,
    }
    try:
        append_record(current_app.config["PREDICTIONS_LOG"], record)
    except PredictionLogError as exc:
        db.session.rollback()
        log.error("%s", exc)
        raise ApiError(503, "log_unavailable",
                       "the playlist could not be recorded, so it is not served; retry shortly",
                       None, {"Retry-After": "5"}) from None
    db.session.commit()
    return Served(prediction_id, playlist, arm.experiment if arm else None,
                  arm.arm if arm else None, fallback, round(elapsed * 1000, 3))


def _attribution(playlist: service.Playlist) -> list[dict] | None:
    """The stored form of whom each track is for; None when no model attributed the tracks."""
    if any(item.for_members is None for item in playlist.items):
        return None
    return [{"for": list(item.for_members), "turn": item.turn_of} for item in playlist.items]


def _rounded(values: Any) -> Any:
    """Four decimals are plenty for 0-1 likings and keep a 100 x 50 matrix small in the row."""
    if isinstance(values, (list, tuple)):
        return [_rounded(v) for v in values]
    return round(float(values), 4)
