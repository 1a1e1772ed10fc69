"""Admin area: login, the A/B dashboard, predictions, model versions, experiment weights."""
from flask import Blueprint

from app.web.errors import register_html_errors

bp = Blueprint("admin", __name__, url_prefix="/admin")
register_html_errors(bp)

from app.admin import views  # noqa: E402,F401  (routes register on import)
