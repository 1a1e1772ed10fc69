"""The JSON API: /predict, /predict/base, /predict/advanced, /feedback, /health, /openapi.json, /doc."""
from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("api", __name__)


@bp.record_once
def _install_error_handlers(state: BlueprintSetupState) -> None:
    """JSON errors app-wide, installed with the API so app/__init__.py needs no extra line."""
    from app.errors import register_error_handlers

    register_error_handlers(state.app)


from app.api import openapi, views  # noqa: E402,F401  (routes register on bp)
