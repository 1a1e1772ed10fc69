"""HTML error pages for the browser-facing blueprints.

The application's default handlers answer JSON (the API contract, see app/errors.py). Flask
prefers a blueprint's own handlers for errors raised in its views, including those raised by
CSRFProtect and Flask-Limiter before the view runs, so people get a page, not JSON.
"""
from __future__ import annotations

import logging

from flask import Blueprint, render_template
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def error_page(status: int, message: str):
    return render_template("error.html", status=status, title=_TITLES.get(status, "Error"),
                           message=message), status


def _http(exc: HTTPException):
    if exc.code is None or exc.code < 400:
        return exc
    messages = {
        404: "There is nothing at this address. It may have been mistyped or removed.",
        405: "This page cannot be used that way.",
        429: "Too many attempts in a short time. Wait a minute and try again.",
    }
    response = error_page(exc.code, messages.get(exc.code, exc.description or exc.name))
    if exc.code == 429:
        body, status = response
        return body, status, {"Retry-After": "60"}
    return response


def _csrf(exc: CSRFError):
    return error_page(400, "The form expired or did not come from this site "
                           f"({exc.description}). Go back, reload the page and submit it again.")


def _database(exc: OperationalError):
    from app.extensions import db

    db.session.rollback()
    log.warning("database unavailable: %s", exc)
    return error_page(503, "The database is busy. Please try again in a moment.")


def _unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return _http(exc)
    from app.extensions import db

    db.session.rollback()
    log.exception("unhandled error on a page")
    return error_page(500, "An unexpected error occurred. It has been logged.")


def register_html_errors(bp: Blueprint) -> None:
    bp.register_error_handler(CSRFError, _csrf)
    bp.register_error_handler(HTTPException, _http)
    bp.register_error_handler(OperationalError, _database)
    bp.register_error_handler(Exception, _unexpected)
