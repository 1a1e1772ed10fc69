"""Security headers on every response, and the production guard against debug mode.

Why app-wide (an ``after_request`` hook rather than per blueprint): an error page, a static file
or a JSON error can be framed or sniffed just like a page, so every answer carries the headers.

The Content Security Policy allows scripts only from this origin: no inline ``<script>``, no
``eval``, no CDN. Pages keep their JavaScript in ``static/`` files (Swagger UI's start-up code
too, ``static/swagger/init.js``). Styles from this origin only as well; Swagger UI and our own
scripts set styles through the DOM (``element.style``), which CSP does not restrict.
``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` both deny framing (the header for old
browsers), so nobody can overlay the admin pages in a clickjacking frame.
"""
from __future__ import annotations

from flask import Flask, Response
from flask.helpers import get_debug_flag

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def init_security(app: Flask, *, production: bool = False) -> None:
    """Install the headers; in production refuse to start when anything asks for debug mode.

    ``flask run --debug`` / ``FLASK_DEBUG=1`` wrap the app in Werkzeug's interactive debugger
    *outside* Flask (a remote Python console), whatever ``app.debug`` says, so the only safe
    answer in production is not to start at all.
    """
    if production and (get_debug_flag() or app.debug or app.config.get("DEBUG")):
        raise RuntimeError("the production configuration never runs in debug mode: unset "
                           "FLASK_DEBUG and do not pass --debug")
    # HSTS only where cookies are already HTTPS-only: on plain-HTTP development it would lie.
    headers = dict(SECURITY_HEADERS)
    if production and app.config.get("SESSION_COOKIE_SECURE"):
        headers["Strict-Transport-Security"] = "max-age=31536000"

    missing = [(name.lower(), name, value) for name, value in headers.items()]

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # A header the response set itself is kept (any case). One pass over its headers,
        # instead of a case-insensitive search of them per security header.
        present = {name.lower() for name, _ in response.headers}
        for lower, name, value in missing:
            if lower not in present:
                response.headers.add(name, value)
        return response
