"""/predict, /predict/base, /predict/advanced, /feedback and /health."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Response
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app import ab
from app.api import bp
from app.api.schemas import FeedbackRequest, current_predict_request_model, parse_body
from app.api.serving import Choice, serve_playlist
from app.db.experiments import Experiment, Feedback, Prediction
from app.errors import ApiError
from app.extensions import db
from app.recommender import service

log = logging.getLogger(__name__)


@bp.post("/predict")
def predict() -> Response:
    return _serve("/predict", "ab")


@bp.post("/predict/base")
def predict_base() -> Response:
    return _serve("/predict/base", "base")


@bp.post("/predict/advanced")
def predict_advanced() -> Response:
    return _serve("/predict/advanced", "advanced")


def _serve(endpoint: str, choice: Choice) -> Response:
    started = time.perf_counter()
    req: Any = parse_body(current_predict_request_model())
    try:
        served = serve_playlist([req.user_id, *req.other_users], req.playlist_length,
                                choice=choice, strategy=req.strategy,
                                exclude_explicit=req.exclude_explicit, endpoint=endpoint,
                                started=started)
    except service.UnknownUsersError as exc:
        raise ApiError(404, "unknown_users", f"unknown user ids: {exc.ids}",
                       {"unknown_user_ids": exc.ids}) from None
    except service.ModelUnavailableError as exc:
        raise ApiError(503, "model_unavailable",
                       f"the advanced model is not available ({exc}); train or activate one "
                       "with `flask --app wsgi model train`, or use /predict/base",
                       None, {"Retry-After": "60"}) from None
    except ValueError as exc:  # strategies are validated above: the group cannot be served
        raise ApiError(422, "cannot_build_playlist", str(exc)) from None

    playlist = served.playlist
    body = json.dumps([{"id": item.track_id, "name": item.name, "artist": item.artist}
                       for item in playlist.items], ensure_ascii=False)
    response = Response(body, status=200, mimetype="application/json")
    response.headers["X-Prediction-Id"] = served.prediction_id
    response.headers["X-Model"] = playlist.model
    if playlist.model == "advanced" and playlist.model_version:
        # only for playlists the trained model built: the base arm uses no trained model
        response.headers["X-Model-Version"] = playlist.model_version
    if choice == "ab":
        response.headers["X-AB-Arm"] = served.arm or "none"
        response.headers["X-Experiment"] = served.experiment or "none"
    return response


@bp.post("/feedback")
def feedback() -> Response:
    req = parse_body(FeedbackRequest)
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
    row = Feedback(prediction_id=prediction.id, user_id=req.user_id, track_id=req.track_id,
                   event_type=req.event_type, ms_played=req.ms_played, created_at=ab.utcnow())
    db.session.add(row)
    db.session.commit()
    return _json(201, {
        "id": row.id, "prediction_id": row.prediction_id, "user_id": row.user_id,
        "track_id": row.track_id, "event_type": row.event_type, "ms_played": row.ms_played,
        "created_at": row.created_at.isoformat(),
    })


@bp.get("/health")
def health() -> Response:
    """200 when the database answers and the advanced model serves without errors, else 503."""
    from app.status import catalogue_counts

    body: dict[str, Any] = {"experiment": None, "counts": None}
    try:
        counts = catalogue_counts()
        counts["predictions"] = db.session.scalar(select(func.count()).select_from(Prediction))
        body["counts"] = counts
        experiment: Experiment | None = ab.active_experiment()
        if experiment is not None:
            body["experiment"] = {"name": experiment.name,
                                  "weights": dict(ab.arm_weights(experiment))}
        body["database"] = {"ok": True, "error": None}
    except SQLAlchemyError as exc:
        db.session.rollback()
        reason = getattr(exc, "orig", None) or exc
        body["database"] = {"ok": False, "error": f"{type(reason).__name__}: {reason}"[:300]}
    try:
        status = service.model_status()
        model = {"version": status.get("version"), "loaded": bool(status.get("loaded")),
                 "error": status.get("error")}
    except Exception as exc:  # health must answer even when the recommender cannot
        log.exception("model_status failed")
        model = {"version": None, "loaded": False, "error": f"{type(exc).__name__}: {exc}"}
    model["ok"] = model["loaded"] and not model["error"]
    body["model"] = model
    healthy = body["database"]["ok"] and model["ok"]
    body["status"] = "ok" if healthy else "degraded"
    return _json(200 if healthy else 503, body)


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json")
