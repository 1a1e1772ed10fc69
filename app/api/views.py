"""/predict, /predict/base, /predict/advanced, /feedback and /health."""
from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, current_app
from sqlalchemy import select

from app.api import feedback_tokens
from app.api import bp, clients
from app.api.openapi import Answer, document
from app.api.schemas import (AB_HEADERS, CALLERS, FEEDBACK_EXAMPLE, SEED_EXAMPLE, SERVED_HEADERS,
                             FeedbackRequest, FeedbackResponse, Health, Track,
                             current_predict_request_model, errors, parse_body)
from app.common.clock import utcnow
from app.db import catalog
from app.db.experiments import Feedback, Prediction
from app.db.inserts import insert_ignoring_conflict
from app.errors import ApiError
from app.extensions import db, limiter
from app.playlists import service as playlists
from app.playlists.errors import (AssignmentBusy, CannotBuild, InvalidRequest, LogUnavailable,
                                  ModelUnavailable, PlaylistError, UnknownUsers)
from app.playlists.request import Choice, PlaylistRequest

# Per authenticated client, else per client address, in the store every worker shares. The
# three predict endpoints and the builder's POST /playlists count together: each writes a
# prediction row (and the API hands out feedback tokens).
predict_limit = limiter.shared_limit(clients.predict_limit, scope="predict",
                                     key_func=clients.rate_limit_key)
_feedback_limit = limiter.limit(clients.feedback_limit, key_func=clients.rate_limit_key)


def _predict_doc(summary: str, description: str, headers: dict) -> dict:
    return dict(summary=summary, description=description, tag="playlists",
                body=current_predict_request_model, example=SEED_EXAMPLE, security=CALLERS,
                answers={200: Answer("Exactly playlist_length distinct tracks.", list[Track],
                                     headers),
                         **errors(400, 401, 404, 413, 415, 422, 429, 503, 500)})


@bp.post("/predict")
@predict_limit
@document(**_predict_doc(
    "Group playlist from the requesting user's A/B arm",
    "The arm of `user_id` in the active experiment picks the model. Without a loadable "
    "advanced model the base model serves (recorded as a fallback).", AB_HEADERS))
def predict() -> Response:
    return _serve("/predict", "ab")


@bp.post("/predict/base")
@predict_limit
@document(**_predict_doc(
    "Group playlist from the base model",
    "Random tracks from the members' listening history, topped up with popular ones.",
    SERVED_HEADERS))
def predict_base() -> Response:
    return _serve("/predict/base", "base")


@bp.post("/predict/advanced")
@predict_limit
@document(**_predict_doc(
    "Group playlist from the LightFM model",
    "503 `model_unavailable` when no trained model can be loaded.", SERVED_HEADERS))
def predict_advanced() -> Response:
    return _serve("/predict/advanced", "advanced")


def _serve(endpoint: str, choice: Choice) -> Response:
    started = time.perf_counter()
    caller = clients.require_caller()
    req: Any = parse_body()
    members = [req.user_id, *req.other_users]
    try:
        served = playlists.serve(PlaylistRequest.settle(
            members, req.playlist_length, choice=choice, strategy=req.strategy,
            exclude_explicit=req.exclude_explicit, endpoint=endpoint,
            client_id=caller.client_id), started)
    except PlaylistError as exc:
        raise _api_error(exc) from None

    group = served.playlist.group
    # A new response holds only Content-Type and Content-Length, so these are added, not set
    # (setting searches the list for the name first).
    headers = [("X-Prediction-Id", served.prediction_id), ("X-Model", group.model)]
    if group.model == "advanced" and group.version:
        # only for playlists the trained model built: the base arm uses no trained model
        headers.append(("X-Model-Version", group.version))
    tokens = feedback_tokens.issue_all(served.prediction_id, members)
    headers += [("X-Feedback-Token", tokens[req.user_id]),
                ("X-Feedback-Tokens", feedback_tokens.header_value(tokens)),
                ("Cache-Control", "no-store")]  # the tokens are for this caller only
    if choice == "ab":
        headers += [("X-AB-Arm", served.arm or "none"),
                    ("X-Experiment", served.experiment or "none")]
    response = Response(served.playlist.answer, status=200, mimetype="application/json")
    response.headers.extend(headers)
    return response


def _api_error(exc: PlaylistError) -> ApiError:
    """The playlist service's errors as API answers: the one table for the JSON API."""
    if isinstance(exc, UnknownUsers):
        return ApiError(404, "unknown_users", exc.message, {"unknown_user_ids": exc.ids})
    if isinstance(exc, ModelUnavailable):
        return ApiError(503, "model_unavailable",
                        f"the advanced model is not available ({exc.message}); train or "
                        "activate one with `flask --app wsgi model train`, or use /predict/base",
                        None, {"Retry-After": "60"})
    if isinstance(exc, CannotBuild) and exc.available is not None:
        return ApiError(422, "playlist_too_short", exc.message, {"available": exc.available})
    if isinstance(exc, (CannotBuild, InvalidRequest)):
        return ApiError(422, "cannot_build_playlist", exc.message)
    if isinstance(exc, LogUnavailable):
        return ApiError(503, "log_unavailable", exc.message, None, {"Retry-After": "5"})
    if isinstance(exc, AssignmentBusy):
        return ApiError(503, "service_unavailable", exc.message, None, {"Retry-After": "1"})
    raise TypeError(f"no API answer for {type(exc).__name__}") from exc


@bp.post("/feedback")
@_feedback_limit
@document(
    summary="Report a play, skip or like of a served track", tag="playlists",
    description="Only a member of the playlist's group can report, with their own token from "
                "the predict answer. A repeat of the same (prediction, user, track, event "
                "type) answers 200 and changes nothing, so replaying a report cannot inflate "
                "the metrics; ms_played counts up to the track's duration.",
    body=FeedbackRequest, example=FEEDBACK_EXAMPLE, security=CALLERS,
    answers={201: Answer("Recorded.", FeedbackResponse),
             200: Answer("Already recorded: one row per (prediction, user, track, event type); "
                         "the stored row, unchanged.", FeedbackResponse),
             **errors(400, 401, 403, 404, 413, 415, 422, 429, 503, 500)})
def feedback() -> Response:
    clients.require_caller()
    req: Any = parse_body()
    prediction = db.session.get(Prediction, req.prediction_id)
    if prediction is None:
        raise ApiError(404, "unknown_prediction", f"no prediction {req.prediction_id}",
                       {"prediction_id": req.prediction_id})
    if req.user_id not in (prediction.user_id, *prediction.other_users):
        raise ApiError(422, "validation_error", "the user was not part of this playlist's group",
                       [{"field": "user_id", "reason": "not a member of the prediction's group"}])
    if req.track_id not in prediction.track_ids:
        raise ApiError(422, "validation_error", "the track is not in this playlist",
                       [{"field": "track_id", "reason": "not in the prediction's playlist"}])
    why = feedback_tokens.problem(req.feedback_token, prediction.id, req.user_id)
    if why is not None:
        raise ApiError(403, "invalid_feedback_token",
                       f"the feedback token is {why}: use this member's token from the "
                       "playlist's X-Feedback-Tokens header", {"field": "feedback_token"})
    duration = db.session.scalar(select(catalog.Track.duration_ms)
                                 .where(catalog.Track.id == req.track_id))
    ms_played = min(req.ms_played, duration) if duration and duration > 0 else req.ms_played
    key = {"prediction_id": prediction.id, "user_id": req.user_id, "track_id": req.track_id,
           "event_type": req.event_type}
    inserted = insert_ignoring_conflict(Feedback, {**key, "ms_played": ms_played,
                                                    "created_at": utcnow()}, list(key))
    status = 201 if inserted else 200  # 200: already reported (unique key uq_feedback_event)
    row = db.session.scalars(select(Feedback).filter_by(**key)).one()
    db.session.commit()
    return _json(status, {
        "id": row.id, "prediction_id": row.prediction_id, "user_id": row.user_id,
        "track_id": row.track_id, "event_type": row.event_type, "ms_played": row.ms_played,
        "created_at": row.created_at.isoformat(),
    })


@bp.get("/health")
@document(summary="Status, serving model version and a reason code", tag="operations",
          description="The details are on the admin health page.", answers={
              200: Answer("ok, or fallback: the active model version does not load and an "
                          "older version serves.", Health),
              503: Answer("degraded: the database cannot be read or written, the predictions "
                          "log cannot be appended to, or no model version loads.", Health)})
def health() -> Response:
    """The checks are in app/health.py."""
    from app import health as checks

    result = checks.check()
    response = _json(result.http_status, result.public())
    response.headers["Cache-Control"] = "no-store"
    return response


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json")
