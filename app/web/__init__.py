"""Public pages: the group playlist builder, playlist permalinks and downloads, user pages."""
from flask import Blueprint

from app.web.errors import register_html_errors

bp = Blueprint("web", __name__)
register_html_errors(bp)

from app.web import views  # noqa: E402,F401  (routes register on import)
