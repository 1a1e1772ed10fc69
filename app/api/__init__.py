"""The JSON API: /predict, /predict/base, /predict/advanced, /feedback, /health, /openapi.json, /doc."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import views, docs  # noqa: E402,F401  (routes register on bp, in this order)
