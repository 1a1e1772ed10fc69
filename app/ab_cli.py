"""`flask ab ...`: manage A/B experiments."""
from __future__ import annotations

from flask.cli import AppGroup

ab_cli = AppGroup("ab", help="List, create, re-weight and stop A/B experiments.")
