"""`flask model ...`: train, evaluate, list and activate model versions."""
from __future__ import annotations

from flask.cli import AppGroup

model_cli = AppGroup("model", help="Train, evaluate and manage LightFM model versions.")
