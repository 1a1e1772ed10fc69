"""/openapi.json generated from the pydantic schemas, and Swagger UI at /doc from local files.

OpenAPI 3.0.3 rather than 3.1 because the pinned Swagger UI (4.x, from ``swagger_ui_bundle``)
renders only 3.0; pydantic's JSON Schema is converted where the two dialects differ (nullable).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import json

import swagger_ui_bundle
from flask import Response, abort, current_app, redirect, send_from_directory, url_for
from pydantic import BaseModel

from app.api import bp
from app.api.schemas import (
    ErrorBody,
    FeedbackRequest,
    FeedbackResponse,
    FieldProblem,
    Health,
    Track,
    current_predict_request_model,
)

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_ASSETS = frozenset({
    "swagger-ui.css", "swagger-ui-bundle.js", "favicon-16x16.png", "favicon-32x32.png",
})
# The request of the seed README, so that "Try it out" starts from what clients already send.
SEED_EXAMPLE = {"user_id": 123, "other_users": [124, 125, 126, 127, 128], "playlist_length": 20}
FEEDBACK_EXAMPLE = {"prediction_id": "0123456789abcdef0123456789abcdef", "user_id": 124,
                    "track_id": "2iUmqdfGZcHIhS3b9E9EWq", "event_type": "play",
                    "ms_played": 93000, "feedback_token": "1767225600.<22 characters>"}
# A key, or none where the deployment allows anonymous calls (served, never A/B evidence).
CALLERS = [{"apiKey": []}, {}]

_ERRORS = {
    400: "Malformed JSON (error `bad_request`).",
    404: "Unknown users (`unknown_users`, details.unknown_user_ids) or prediction "
         "(`unknown_prediction`).",
    401: "No API key where the API needs one (`api_key_required`), or a wrong or revoked key "
         "(`invalid_api_key`); see the WWW-Authenticate header.",
    413: "Body larger than MAX_CONTENT_LENGTH (`payload_too_large`).",
    403: "The feedback token is missing this member's proof: malformed, for another member "
         "or prediction, or expired (`invalid_feedback_token`).",
    415: "Content-Type is not application/json (`unsupported_media_type`).",
    422: "Invalid fields (`validation_error`, details: a list of {field, reason}), or no "
         "playlist of that length can be built for the group (`cannot_build_playlist`, "
         "`playlist_too_short`).",
    429: "Too many requests from this address (`too_many_requests`); retry after Retry-After "
         "seconds.",
    503: "Model, database or predictions log unavailable (`model_unavailable`, "
         "`database_unavailable`, `log_unavailable`); retry after Retry-After seconds.",
    500: "Unexpected server fault (`internal_error`).",
}


@bp.get("/openapi.json")
def openapi_json() -> Response:
    spec = current_app.extensions.get("pozytywka_openapi")
    if spec is None:  # built once per app: the limits in it come from the config
        # stdlib json keeps the order of the paths (Flask's provider would sort them)
        spec = current_app.extensions["pozytywka_openapi"] = json.dumps(build_spec())
    return Response(spec, mimetype="application/json")


@bp.get("/doc/")
def swagger_ui_slash() -> Response:
    """The page's asset paths are relative to /doc, so the slashed form redirects there."""
    return redirect(url_for("api.swagger_ui"), code=308)


@bp.get("/doc")
def swagger_ui() -> Response:
    return send_from_directory(Path(current_app.static_folder) / "swagger", "index.html")


@bp.get("/doc/assets/<name>")
def swagger_asset(name: str) -> Response:
    if name not in SWAGGER_ASSETS:
        abort(404)
    return send_from_directory(SWAGGER_DIR, name, max_age=86400)


def build_spec() -> dict[str, Any]:
    components: dict[str, Any] = {}

    def ref(model: type[BaseModel], mode: str = "serialization") -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    predict_request = ref(current_predict_request_model(), "validation")
    error = ref(ErrorBody)
    ref(FieldProblem)
    playlist = {"type": "array", "items": ref(Track)}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(code): {"description": _ERRORS[code],
                            "content": {"application/json": {"schema": error}}}
                for code in codes}

    def header(description: str, enum: list[str] | None = None, *,
               required: bool = True) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if enum:
            schema["enum"] = enum
        return {"description": description, "required": required, "schema": schema}

    served_headers = {
        "X-Prediction-Id": header("Id of the recorded prediction; send it with /feedback."),
        "X-Model": header("The model that built the playlist.", ["base", "advanced"]),
        "X-Model-Version": header("Version of the trained LightFM model that built the "
                                  "playlist; sent only when it did (`X-Model: advanced`).",
                                  required=False),
        "X-Feedback-Token": header("The requesting user's token for /feedback on this "
                                   "playlist (`feedback_token`); keep it private."),
        "X-Feedback-Tokens": header("Every member's token: `USER_ID=TOKEN` pairs joined by "
                                    "commas, the requesting user first. Hand each member only "
                                    "their own."),
    }
    ab_headers = {
        **served_headers,
        "X-AB-Arm": header("The requesting user's arm in the active experiment (`none` when no "
                           "experiment is active). Differs from X-Model on a fallback."),
        "X-Experiment": header("Name of the active experiment, or `none`."),
    }

    def predict_op(summary: str, description: str, headers: dict[str, Any]) -> dict[str, Any]:
        return {"post": {
            "summary": summary, "description": description, "tags": ["playlists"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": predict_request, "example": SEED_EXAMPLE}}},
            "responses": {
                "200": {"description": "Exactly playlist_length distinct tracks.",
                        "headers": headers,
                        "content": {"application/json": {"schema": playlist}}},
                **errors(400, 401, 404, 413, 415, 422, 429, 503, 500),
            },
            "security": CALLERS,
        }}

    health_content = {"application/json": {"schema": ref(Health)}}
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "Pozytywka Group Playlists",
            "version": "1.0.0",
            "description": "One playlist a whole group enjoys. Every error is "
                           "`{\"error\", \"message\", \"details\"}`; a method a path does not "
                           "support answers 405 with an Allow header.",
        },
        "paths": {
            "/predict": predict_op(
                "Group playlist from the requesting user's A/B arm",
                "The arm of `user_id` in the active experiment picks the model. Without a "
                "loadable advanced model the base model serves (recorded as a fallback).",
                ab_headers),
            "/predict/base": predict_op(
                "Group playlist from the base model",
                "Random tracks from the members' listening history, topped up with popular ones.",
                served_headers),
            "/predict/advanced": predict_op(
                "Group playlist from the LightFM model",
                "503 `model_unavailable` when no trained model can be loaded.", served_headers),
            "/feedback": {"post": {
                "summary": "Report a play, skip or like of a served track",
                "description": "Only a member of the playlist's group can report, with their "
                               "own token from the predict answer. A repeat of the same "
                               "(prediction, user, track, event type) answers 200 and changes "
                               "nothing; ms_played counts up to the track's duration.",
                "tags": ["playlists"],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": ref(FeedbackRequest, "validation"), "example": FEEDBACK_EXAMPLE}}},
                "responses": {
                    "201": {"description": "Recorded.", "content": {
                        "application/json": {"schema": ref(FeedbackResponse)}}},
                    "200": {"description": "Already recorded: one row per (prediction, user, "
                                           "track, event type); the stored row, unchanged.",
                            "content": {"application/json": {"schema": ref(FeedbackResponse)}}},
                    **errors(400, 401, 403, 404, 413, 415, 422, 429, 503, 500),
                },
                "security": CALLERS,
            }},
            "/health": {"get": {
                "summary": "Status, serving model version and a reason code",
                "tags": ["operations"],
                "responses": {
                    "200": {"description": "ok, or fallback: the active model version does "
                                           "not load and an older version serves.",
                            "content": health_content},
                    "503": {"description": "degraded: the database cannot be read or written, "
                                           "the predictions log cannot be appended to, or no "
                                           "model version loads.",
                            "content": health_content},
                },
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "tags": ["operations"],
                "responses": {"200": {"description": "OpenAPI 3.0 document.", "content": {
                    "application/json": {"schema": {"type": "object"}}}}},
            }},
        },
        "components": {"schemas": {}, "securitySchemes": {"apiKey": {
            "type": "http", "scheme": "bearer",
            "description": "An API client's key (`flask --app wsgi api-key create NAME`). "
                           "Only playlists of key holders are A/B evidence; without a key the "
                           "API answers only where ALLOW_ANONYMOUS_API is on."}}},
    }
    from app.party.openapi import party_paths

    paths, schemes = party_paths(ref, error)
    spec["paths"].update(paths)
    spec["components"]["securitySchemes"] = schemes
    spec["components"]["schemas"] = {name: to_openapi30(schema)
                                     for name, schema in components.items()}
    return spec


def to_openapi30(schema: Any) -> Any:
    """pydantic's JSON Schema 2020-12 -> OpenAPI 3.0: ``anyOf [X, null]`` becomes nullable X.

    A nullable enum must also list null among its values: validators apply ``enum`` first.
    """
    if isinstance(schema, list):
        return [to_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" in rest[0]:
            out["allOf"] = rest  # siblings of $ref are ignored in 3.0; allOf keeps nullable
        elif len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
        out["nullable"] = True
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]  # 3.0 checks enum before nullable
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return {key: to_openapi30(value) for key, value in out.items()}
