"""/openapi.json, generated from the declared routes, and Swagger UI at /doc from local files."""
from __future__ import annotations

import json
from pathlib import Path

import swagger_ui_bundle
from flask import Response, abort, current_app, redirect, send_from_directory, url_for

from app.api import bp
from app.api.openapi import Answer, build_spec, document, undocumented
from app.api.schemas import FieldProblem

SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_ASSETS = frozenset({
    "swagger-ui.css", "swagger-ui-bundle.js", "favicon-16x16.png", "favicon-32x32.png",
})
INFO = {
    "title": "Pozytywka Group Playlists",
    "version": "1.0.0",
    "description": "One playlist a whole group enjoys. Every error is "
                   "`{\"error\", \"message\", \"details\"}`; a method a path does not support "
                   "answers 405 with an Allow header.",
}


@bp.get("/openapi.json")
@document(summary="This document", tag="operations", answers={
    200: Answer("OpenAPI 3.0 document.", dict)})
def openapi_json() -> Response:
    spec = current_app.extensions.get("pozytywka_openapi")
    if spec is None:  # built once per app: the limits in it come from the config
        # stdlib json keeps the order of the paths (Flask's provider would sort them)
        spec = current_app.extensions["pozytywka_openapi"] = json.dumps(
            build_spec(current_app, INFO, extra_schemas=(FieldProblem,)))
    return Response(spec, mimetype="application/json")


@bp.get("/doc/")
@undocumented
def swagger_ui_slash() -> Response:
    """The page's asset paths are relative to /doc, so the slashed form redirects there."""
    return redirect(url_for("api.swagger_ui"), code=308)


@bp.get("/doc")
@undocumented
def swagger_ui() -> Response:
    return send_from_directory(Path(current_app.static_folder) / "swagger", "index.html")


@bp.get("/doc/assets/<name>")
@undocumented
def swagger_asset(name: str) -> Response:
    if name not in SWAGGER_ASSETS:
        abort(404)
    return send_from_directory(SWAGGER_DIR, name, max_age=86400)
