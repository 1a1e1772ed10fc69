"""Application settings: defaults, testing and production, with environment overrides.

Every value a deployment may want to change can be set through an environment variable of the
same name; `create_app` picks the class from ``POZYTYWKA_CONFIG`` (development, testing,
production).
"""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR", BASE_DIR / "instance"))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    """Development defaults: a SQLite file in ``instance/`` and a random key kept there."""

    DEBUG = False
    TESTING = False
    # Without SECRET_KEY, the key is read from SECRET_KEY_FILE; development defaults that to
    # instance/secret_key and creates it once (random, mode 600). Every config but testing
    # refuses a key shorter than 32 bytes or a built-in one (app/security/secret_key.py).
    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    SECRET_KEY_FILE = os.environ.get("SECRET_KEY_FILE", "")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'pozytywka.db'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # SQLite waits this long for a competing writer before giving up ("database is locked").
    SQLITE_BUSY_TIMEOUT_MS = _env_int("SQLITE_BUSY_TIMEOUT_MS", 5000)

    MODEL_DIR = os.environ.get("MODEL_DIR", str(BASE_DIR / "models"))
    # How often each worker re-reads the active model version (activation without restart).
    MODEL_RELOAD_SECONDS = _env_int("MODEL_RELOAD_SECONDS", 5)
    # Catalogues at least this large use approximate candidate retrieval (hnswlib) before the
    # exact re-scoring; smaller ones are scored exactly.
    RETRIEVAL_MIN_TRACKS = _env_int("RETRIEVAL_MIN_TRACKS", 200_000)
    PREDICTIONS_LOG = os.environ.get("PREDICTIONS_LOG", str(INSTANCE_DIR / "predictions.jsonl"))

    # Request limits of the JSON API.
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 64 * 1024)
    MAX_PLAYLIST_LENGTH = _env_int("MAX_PLAYLIST_LENGTH", 100)
    MAX_GROUP_SIZE = _env_int("MAX_GROUP_SIZE", 50)

    # Playlist rules.
    MAX_TRACKS_PER_ARTIST = _env_int("MAX_TRACKS_PER_ARTIST", 3)
    # turns_known: at most this many of a member's turns take a track they already know
    KNOWN_TURN_LIMIT = _env_int("KNOWN_TURN_LIMIT", 3)
    DEFAULT_STRATEGY = os.environ.get("DEFAULT_STRATEGY", "")  # empty: the recommender's default
    # A/A test: every arm of the active experiment serves this model (base / advanced), so the
    # assignment, logging and statistics can be checked against a known zero difference.
    AB_AA_MODEL = os.environ.get("AB_AA_MODEL", "")

    # Admin login: a werkzeug password hash (``flask admin hash-password``) or database users.
    ADMIN_PASSWORD_HASH = os.environ.get("ADMIN_PASSWORD_HASH", "")
    ADMIN_USERNAME = os.environ.get("ADMIN_USERNAME", "admin")
    ADMIN_SESSION_HOURS = _env_int("ADMIN_SESSION_HOURS", 8)
    # Failed logins only: per (user name, address) pair, or (user name, browser) for a browser
    # that has logged in as that name before; per address over all names; and a much larger
    # budget per user name over all addresses, which never applies to that name's browsers.
    ADMIN_LOGIN_RATE_LIMIT = os.environ.get("ADMIN_LOGIN_RATE_LIMIT", "10 per minute")
    ADMIN_LOGIN_ADDRESS_RATE_LIMIT = os.environ.get("ADMIN_LOGIN_ADDRESS_RATE_LIMIT",
                                                    "50 per 15 minutes")
    ADMIN_LOGIN_USER_RATE_LIMIT = os.environ.get("ADMIN_LOGIN_USER_RATE_LIMIT",
                                                 "300 per hour")
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Secure by default; SESSION_COOKIE_SECURE=0 only for plain-HTTP use on 127.0.0.1.
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "1") == "1"

    # Rate limits (per client address) in a store every worker shares: a SQLite file on one
    # host (app/security/ratelimit.py), redis://HOST:6379 across hosts. memory:// is per process.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI",
                                           f"sqlite:///{INSTANCE_DIR / 'ratelimit.sqlite'}")
    RATELIMIT_HEADERS_ENABLED = True  # Retry-After on 429 (never on a success: app/__init__.py)
    # How many proxies in front of gunicorn set X-Forwarded-For/-Proto (deploy/: nginx, 1).
    # 0 trusts no such header: the client address is the socket's. Never more than the proxies
    # every request passes through, or a client can choose its own address (SECURITY.md).
    PROXY_HOPS = _env_int("PROXY_HOPS", 0)
    PREDICT_RATE_LIMIT = os.environ.get("PREDICT_RATE_LIMIT", "120 per minute")
    FEEDBACK_RATE_LIMIT = os.environ.get("FEEDBACK_RATE_LIMIT", "1200 per minute")
    # Calls to /predict* and /feedback without an API key (`flask api-key create NAME`): served
    # but recorded as untrusted, left out of every A/B figure. Off unless switched on (the demo
    # does); with it off they get 401. Authenticated clients have their own, per-client limits.
    ALLOW_ANONYMOUS_API = os.environ.get("ALLOW_ANONYMOUS_API", "0") == "1"
    CLIENT_PREDICT_RATE_LIMIT = os.environ.get("CLIENT_PREDICT_RATE_LIMIT", "1200 per minute")
    CLIENT_FEEDBACK_RATE_LIMIT = os.environ.get("CLIENT_FEEDBACK_RATE_LIMIT",
                                                "12000 per minute")
    API_CLIENT_CACHE_SECONDS = _env_int("API_CLIENT_CACHE_SECONDS", 5)
    # How long a worker keeps the active experiment and its count of assignments (a user found
    # without a stored arm is read again once that count changes).
    EXPERIMENT_CACHE_SECONDS = _env_int("EXPERIMENT_CACHE_SECONDS", 2)
    # A/B statistics: at most this many decided playlists per user and day count, so no one
    # user outweighs the others.
    AB_MAX_PLAYLISTS_PER_USER_DAY = _env_int("AB_MAX_PLAYLISTS_PER_USER_DAY", 3)
    # How long the per-member token that /predict hands out lets that member post /feedback.
    FEEDBACK_TOKEN_TTL_SECONDS = _env_int("FEEDBACK_TOKEN_TTL_SECONDS", 7 * 24 * 3600)

    # People's pages (/users/<id>: city, genres, time-stamped listening), the people search
    # and its JSON for anyone, or only for a logged-in admin (off). Off, the builder's search
    # still finds people by name or id and shows names only. On in development and the demo.
    PUBLIC_PEOPLE_PAGES = os.environ.get("PUBLIC_PEOPLE_PAGES", "0") == "1"
    # Live parties: guests per party, tracks planned ahead (re-planned below the second
    # number), silence after which a phone guest counts as gone, and how often a poll
    # records that a guest is still here.
    PARTY_MAX_GUESTS = _env_int("PARTY_MAX_GUESTS", 32)
    PARTY_QUEUE_AHEAD = _env_int("PARTY_QUEUE_AHEAD", 10)
    PARTY_REPLAN_BELOW = _env_int("PARTY_REPLAN_BELOW", 5)
    PARTY_GUEST_TIMEOUT_SECONDS = _env_int("PARTY_GUEST_TIMEOUT_SECONDS", 120)
    PARTY_SEEN_EVERY_SECONDS = _env_int("PARTY_SEEN_EVERY_SECONDS", 15)
    # Per client address. A party's phones often share one address (the venue's Wi-Fi), so
    # the polling limit is generous; joins are few and limited hard (join-code guessing).
    PARTY_CREATE_RATE_LIMIT = os.environ.get("PARTY_CREATE_RATE_LIMIT", "30 per hour")
    PARTY_JOIN_RATE_LIMIT = os.environ.get("PARTY_JOIN_RATE_LIMIT", "60 per 10 minutes")
    PARTY_RATE_LIMIT = os.environ.get("PARTY_RATE_LIMIT", "1200 per minute")
    PARTY_POLL_RATE_LIMIT = os.environ.get("PARTY_POLL_RATE_LIMIT", "4000 per minute")

    # Terminal progress bars; off in CI and when output is not a terminal.
    PROGRESS = os.environ.get("CI", "").lower() not in ("1", "true")


class DevelopmentConfig(Config):
    PUBLIC_PEOPLE_PAGES = os.environ.get("PUBLIC_PEOPLE_PAGES", "1") == "1"


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    PROGRESS = False
    RATELIMIT_ENABLED = True
    # One process per test app: tests of the shared store pass a sqlite:// URI explicitly, and
    # tests of the API limits set low ones; the rest build traffic faster than any client would.
    RATELIMIT_STORAGE_URI = "memory://"
    PREDICT_RATE_LIMIT = "100000 per minute"
    FEEDBACK_RATE_LIMIT = "100000 per minute"
    CLIENT_PREDICT_RATE_LIMIT = "100000 per minute"
    CLIENT_FEEDBACK_RATE_LIMIT = "100000 per minute"
    ALLOW_ANONYMOUS_API = True  # the API tests call anonymously; trust tests switch it off
    PARTY_CREATE_RATE_LIMIT = PARTY_JOIN_RATE_LIMIT = "100000 per minute"
    PARTY_RATE_LIMIT = PARTY_POLL_RATE_LIMIT = "100000 per minute"
    SESSION_COOKIE_SECURE = False  # the test client and the browser tests speak plain HTTP
    PUBLIC_PEOPLE_PAGES = True  # the page tests; tests of the closed pages switch it off


class ProductionConfig(Config):
    """No generated secret and never debug: `create_app` refuses to start without a key."""

    DEBUG = False


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
