"""The JSON API: /predict, /predict/base, /predict/advanced, /feedback, /health, /openapi.json, /doc."""
from flask import Blueprint

bp = Blueprint("api", __name__)
