"""Every error the application answers is JSON: ``{"error": code, "message": ..., "details": ...}``.

Installed app-wide by ``create_app``, so that Flask's own 404/405/413 and any unexpected
exception follow the same contract as the API's validation errors. A blueprint that wants HTML
error pages registers its own blueprint-level handlers, which Flask prefers for its views.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, json
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Werkzeug's exception names become stable snake_case codes (e.g. 413 -> "payload_too_large").
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 408: "request_timeout", 409: "conflict",
    411: "length_required", 413: "payload_too_large", 414: "uri_too_long",
    415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
    431: "request_header_fields_too_large", 500: "internal_error", 501: "not_implemented",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answer the API chooses on purpose; raised anywhere inside a request."""

    def __init__(self, status: int, error: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, error: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": error, "message": message, "details": details})
    response = current_app.response_class(body, status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.error, exc.message, exc.details, exc.headers)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if exc.code is None or exc.code < 400:
        return exc  # routing redirects (e.g. a missing trailing slash) are not errors
    # Keep the headers Werkzeug computed: Allow on 405, Retry-After, WWW-Authenticate.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    message, details = exc.description or exc.name, None
    if exc.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message, details = f"the body is larger than {limit} bytes", {"max_bytes": limit}
    return error_response(exc.code, _HTTP_CODES.get(exc.code, f"http_{exc.code}"),
                          message, details, headers)


def _database_unavailable(exc: Exception) -> Response:
    """A locked or unreachable database is an outage to retry, not a bug (503, not 500)."""
    _rollback_quietly()
    log.warning("database unavailable: %s", exc)
    return error_response(503, "database_unavailable",
                          "the database is busy or unreachable; retry shortly",
                          None, {"Retry-After": "1"})


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return _database_unavailable(exc)
    _rollback_quietly()
    log.exception("unhandled error")
    return error_response(500, "internal_error", "an unexpected error occurred")


def _rollback_quietly() -> None:
    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:  # the connection may be gone; the session is discarded at teardown
        pass


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeoutError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
