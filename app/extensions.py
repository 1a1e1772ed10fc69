"""Flask extension objects, created unbound so that every module can import them."""
from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from app.security import ratelimit  # noqa: F401  (registers the sqlite:// rate-limit store)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Every HTML form carries a token; the JSON API blueprint is exempted where it is registered.
csrf = CSRFProtect()
# No default limits: the routes that ask are limited (the predict endpoints, /feedback, the
# admin login). Storage from RATELIMIT_STORAGE_URI: a SQLite file every worker shares by
# default (app/security/ratelimit.py), redis:// across hosts, memory:// in tests.
limiter = Limiter(key_func=get_remote_address)

# The WSGI environ key by which an in-process caller (the A/B simulation, which compresses days
# into seconds through a test client) bypasses the rate limits. Not reachable over HTTP: a
# server puts request headers into the environ only as HTTP_* keys.
IN_PROCESS_SIMULATION = "pozytywka.simulation"


@limiter.request_filter
def _in_process_simulation() -> bool:
    return bool(request.environ.get(IN_PROCESS_SIMULATION))
