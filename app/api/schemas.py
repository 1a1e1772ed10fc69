"""Request and response schemas of the JSON API: validation and /openapi.json from one source.

Validation is strict on purpose: JSON has one integer type, and a client that sends ``123.0``,
``"123"`` or ``true`` as a user id has a bug we should report (422), not paper over.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from flask import current_app, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from app.api.openapi import Answer, Header, SecurityScheme, operation_of
from app.db.experiments import ARM_MODELS, FEEDBACK_EVENTS
from app.errors import ApiError
from app.recommender.strategies import DEFAULT_STRATEGY, REGISTRY, STRATEGIES

# Ids are stored in 32-bit integer columns (PostgreSQL ``integer``); anything larger cannot exist.
MAX_ID = 2**31 - 1
UserId = Annotated[int, Field(ge=0, le=MAX_ID)]
Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]
Model = Literal[ARM_MODELS]  # type: ignore[valid-type]

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


@lru_cache(maxsize=8)
def predict_request_model(max_length: int, max_group: int) -> type[_Strict]:
    """The request schema with the deployment's limits baked in, so the docs show them too."""

    class PredictRequest(_Strict):
        """A group playlist request; the original service's three fields plus two options."""

        user_id: UserId = Field(description="The user asking; their A/B arm decides /predict.")
        other_users: list[UserId] = Field(
            default_factory=list, max_length=max_group - 1,
            description=f"The rest of the group; at most {max_group} users in all.",
        )
        playlist_length: int = Field(ge=1, le=max_length, description="Number of tracks.")
        strategy: Strategy | None = Field(
            default=None, description="How members' tastes are combined (default "
            f"`{DEFAULT_STRATEGY}`): " + "; ".join(f"`{name}`: {spec.help}"
                                                   for name, spec in REGISTRY.items()) + ".",
        )
        exclude_explicit: bool = Field(default=False, description="Leave out explicit tracks.")

    return PredictRequest


def _reason(err: dict, data: Any) -> str:
    """Pydantic's message, except where it counts differently from the docs: other_users is
    limited to the group size minus the asking user, which pydantic words as "at most 49 items"
    for a documented group of 50."""
    if err.get("type") == "too_long" and tuple(err.get("loc", ())) == ("other_users",):
        limit = int(current_app.config["MAX_GROUP_SIZE"])
        given = len(data.get("other_users", [])) + 1 if isinstance(data, dict) else "more"
        return (f"a group has at most {limit} members (the asking user and up to {limit - 1} "
                f"others); this one has {given}")
    return err["msg"]


def current_predict_request_model() -> type[_Strict]:
    config = current_app.config
    return predict_request_model(int(config["MAX_PLAYLIST_LENGTH"]),
                                 int(config["MAX_GROUP_SIZE"]))


class Track(BaseModel):
    """One playlist entry, exactly as the original service returned it."""

    id: str
    name: str
    artist: str


class FeedbackRequest(_Strict):
    """What a member did with a track of a served playlist."""

    prediction_id: str = Field(pattern=r"^[0-9a-f]{32}$",
                               description="The X-Prediction-Id header of the playlist.")
    user_id: UserId = Field(description="A member of the group the playlist was built for.")
    track_id: str = Field(min_length=1, max_length=64, description="A track of that playlist.")
    event_type: Literal[FEEDBACK_EVENTS]  # type: ignore[valid-type]
    ms_played: int = Field(default=0, ge=0, le=86_400_000,
                           description="Milliseconds listened; counted up to the track's "
                                       "duration.")
    feedback_token: str = Field(
        min_length=1, max_length=200,
        description="This member's token from the playlist's X-Feedback-Tokens header "
                    "(X-Feedback-Token for the requesting user).")


class FeedbackResponse(BaseModel):
    id: int
    prediction_id: str
    user_id: int
    track_id: str
    event_type: str
    ms_played: int
    created_at: datetime


class Health(BaseModel):
    """The public health answer; the details are on the admin health page (app/health.py)."""

    status: Literal["ok", "fallback", "degraded"] = Field(
        description="ok and fallback answer 200, degraded 503.")
    model_version: str | None = Field(description="The model version serving in this process.")
    reason: Literal["database_unavailable", "database_read_only", "log_unwritable",
                    "model_unavailable", "model_error", "model_fallback"] | None = Field(
        description="The most severe problem, or null when ok.")


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: str = Field(description="Stable machine-readable code, e.g. validation_error.")
    message: str = Field(description="What went wrong, for a human.")
    details: Any = Field(default=None, description="Structured context: invalid fields, "
                         "unknown ids, ... or null.")


class FieldProblem(BaseModel):
    """One entry of ``details`` in a 422 answer."""

    field: str
    reason: str


# ----- what /openapi.json says beyond the models -----

API_KEY = SecurityScheme(
    "apiKey", "An API client's key (`flask --app wsgi api-key create NAME`). Only playlists of "
    "key holders are A/B evidence; without a key the API answers only where ALLOW_ANONYMOUS_API "
    "is on.")
# A key, or none where the deployment allows anonymous calls (served, never A/B evidence).
CALLERS = (API_KEY, None)

# The request of the seed README, so that "Try it out" starts from what clients already send.
SEED_EXAMPLE = {"user_id": 123, "other_users": [124, 125, 126, 127, 128], "playlist_length": 20}
FEEDBACK_EXAMPLE = {"prediction_id": "0123456789abcdef0123456789abcdef", "user_id": 124,
                    "track_id": "2iUmqdfGZcHIhS3b9E9EWq", "event_type": "play",
                    "ms_played": 93000, "feedback_token": "1767225600.<22 characters>"}

ERRORS = {status: Answer(description, ErrorBody, headers) for status, description, headers in [
    (400, "Malformed JSON (error `bad_request`).", {}),
    (401, "No API key where the API needs one (`api_key_required`), or a wrong or revoked key "
          "(`invalid_api_key`).", {"WWW-Authenticate": Header("The challenge: `Bearer ...`.")}),
    (403, "The feedback token is missing this member's proof: malformed, for another member "
          "or prediction, or expired (`invalid_feedback_token`).", {}),
    (404, "Unknown users (`unknown_users`, details.unknown_user_ids) or prediction "
          "(`unknown_prediction`).", {}),
    (413, "Body larger than MAX_CONTENT_LENGTH (`payload_too_large`).", {}),
    (415, "Content-Type is not application/json (`unsupported_media_type`).", {}),
    (422, "Invalid fields (`validation_error`, details: a list of {field, reason}), or no "
          "playlist of that length can be built for the group (`cannot_build_playlist`, "
          "`playlist_too_short`).", {}),
    (429, "Too many requests from this address (`too_many_requests`); retry after Retry-After "
          "seconds.", {}),
    (503, "Model, database or predictions log unavailable (`model_unavailable`, "
          "`database_unavailable`, `log_unavailable`); retry after Retry-After seconds.", {}),
    (500, "Unexpected server fault (`internal_error`).", {}),
]}


def errors(*statuses: int) -> dict[int, Answer]:
    return {status: ERRORS[status] for status in statuses}


SERVED_HEADERS = {
    "X-Prediction-Id": Header("Id of the recorded prediction; send it with /feedback."),
    "X-Model": Header("The model that built the playlist.", tuple(ARM_MODELS)),
    "X-Model-Version": Header("Version of the trained LightFM model that built the playlist; "
                              "sent only when it did (`X-Model: advanced`).", required=False),
    "X-Feedback-Token": Header("The requesting user's token for /feedback on this playlist "
                               "(`feedback_token`); keep it private."),
    "X-Feedback-Tokens": Header("Every member's token: `USER_ID=TOKEN` pairs joined by commas, "
                                "the requesting user first. Hand each member only their own."),
}
AB_HEADERS = {
    **SERVED_HEADERS,
    "X-AB-Arm": Header("The requesting user's arm in the active experiment (`none` when no "
                       "experiment is active). Differs from X-Model on a fallback."),
    "X-Experiment": Header("Name of the active experiment, or `none`."),
}


def parse_body(model: type[M] | None = None) -> M:
    """The JSON body validated against ``model``, by default the body the view documents
    (``@document(body=...)``); 415, 413, 400 or 422 as ApiError otherwise."""
    if model is None:
        declared = operation_of(current_app.view_functions[request.endpoint])
        if declared is None or declared.body is None:
            raise TypeError(f"{request.endpoint} documents no request body to parse")
        model = declared.body_model()
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json",
                       {"content_type": request.content_type})
    raw = request.get_data(cache=False)  # raises 413 beyond MAX_CONTENT_LENGTH
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and request.content_length is None and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut at the limit by Werkzeug without an error;
        # parsing the truncated part would answer 400 for what is really 413.
        raise RequestEntityTooLarge()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "bad_request", "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, integers with too many digits
        raise ApiError(400, "bad_request", f"malformed JSON: {exc}") from None
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(part) for part in err["loc"]) or "body",
             "reason": _reason(err, data)}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ApiError(422, "validation_error", "the request body is invalid", problems) from None
