"""Pozytywka Group Playlists: the Flask application factory."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.errors import register_error_handlers
from app.security.audit import configure_audit_log
from app.security.files import secure_instance_files
from app.security.headers import init_security
from app.security.secret_key import configure_secret_key
from app.web.templating import register_filters
from config import CONFIGS, INSTANCE_DIR


def create_app(config_name: str | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``overrides`` wins over the config class (tests use it)."""
    name = config_name or os.environ.get("POZYTYWKA_CONFIG", "development")
    if name not in CONFIGS:
        raise RuntimeError(f"unknown POZYTYWKA_CONFIG {name!r}; use one of {sorted(CONFIGS)}")
    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        instance_path=str(INSTANCE_DIR),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.config.from_object(CONFIGS[name])
    if overrides:
        app.config.update(overrides)
    if name == "production":
        app.config["DEBUG"] = False
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    secure_instance_files(app)  # database, predictions log: owner-only (app/security/files.py)
    configure_secret_key(app, name)
    _trust_proxies(app)
    configure_audit_log(app)

    _init_extensions(app)
    register_filters(app)
    register_error_handlers(app)  # JSON app-wide; the pages register HTML ones on their blueprint
    _register_blueprints(app)
    init_security(app, production=name == "production")
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind ``PROXY_HOPS`` proxies, the client address is the one the nearest proxy saw."""
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def _init_extensions(app: Flask) -> None:
    from app.extensions import csrf, db, limiter, migrate
    from app import db as _tables  # noqa: F401  (registers every table on the metadata)

    db.init_app(app)
    csrf.init_app(app)

    @app.after_request
    def _retry_after_only_when_refused(response):
        """Flask-Limiter's headers put Retry-After on every answer under a limit, successful
        ones too; it means "come back later", so only a 429 or a 503 keeps it. Registered
        before the limiter's own hook, so it runs after it (Flask runs them in reverse)."""
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        elif getattr(response, "own_retry_after", None):  # the service knows better
            response.headers["Retry-After"] = response.own_retry_after
        return response

    limiter.init_app(app)

    @app.after_request
    def _note_own_retry_after(response):
        """Runs before the limiter's hook, which would overwrite a 503's own Retry-After (how
        long the model or the log needs) with the limit's window."""
        response.own_retry_after = response.headers.get("Retry-After")
        return response

    @app.teardown_request
    def _forget_rate_limit_hit(_exc):  # the SQLite store's per-request answers (ratelimit.py)
        forget = getattr(limiter.storage, "forget", None)
        if forget is not None:
            forget()

    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"),
                     render_as_batch=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _configure_sqlite(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL lets readers run beside one writer; the busy timeout makes writers queue, not fail."""

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()


def _register_blueprints(app: Flask) -> None:
    from app.experiments.cli import ab_cli
    from app.api import bp as api_bp
    from app.api.cli import api_key_cli
    from app.data.cli import data_cli
    from app.modelstore.cli import model_cli
    from app.admin import bp as admin_bp
    from app.admin.cli import admin_cli
    from app.extensions import csrf
    from app.web import bp as web_bp
    from app.party.cli import party_cli
    from app.party.api import bp as party_api_bp
    from app.party.pages import bp as party_pages_bp

    csrf.exempt(api_bp)  # JSON clients post without a form token; the API holds no session
    app.register_blueprint(web_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(party_api_bp)  # token-authenticated; cookie changes need X-Requested-With
    app.register_blueprint(party_api_bp)
    app.register_blueprint(party_pages_bp)
    for group in (data_cli, model_cli, ab_cli, admin_cli, api_key_cli, party_cli):
        app.cli.add_command(group)
