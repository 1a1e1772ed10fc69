"""Admin login: a password hash from configuration or admin users in the database.

No account exists by default and no password is built in: production gets access only through
``ADMIN_PASSWORD_HASH`` (user name ``ADMIN_USERNAME``, default "admin") or
``flask --app wsgi admin create-user``. Passwords are checked with werkzeug's salted hashes; an
unknown user name costs the same hash check as a known one, so timing does not reveal which
names exist. The session is renewed at login and expires after ``ADMIN_SESSION_HOURS``.
"""
from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import urlsplit

from flask import current_app, redirect, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import AdminUser
from app.extensions import db

SESSION_KEY = "admin_user"
SESSION_AT = "admin_since"
_DUMMY_HASH: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = generate_password_hash("not-a-password")
    return _DUMMY_HASH


def config_username() -> str:
    return str(current_app.config.get("ADMIN_USERNAME") or "admin")


def login_configured() -> bool:
    """Whether anyone can log in at all (the login page explains how to set it up if not)."""
    if current_app.config.get("ADMIN_PASSWORD_HASH"):
        return True
    return db.session.scalar(select(AdminUser.id).limit(1)) is not None


def check_credentials(username: str, password: str) -> str | None:
    """The user name to log in as, or None. Database users take precedence over the config."""
    username = username.strip()
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is not None:
        if check_password_hash(user.password_hash, password):
            user.last_login_at = _now()
            db.session.commit()
            return user.username
        return None
    configured = current_app.config.get("ADMIN_PASSWORD_HASH") or ""
    if configured and username == config_username():
        try:
            return username if check_password_hash(configured, password) else None
        except (ValueError, TypeError):  # a malformed hash in the environment
            current_app.logger.error("ADMIN_PASSWORD_HASH is not a werkzeug password hash")
            return None
    check_password_hash(_dummy_hash(), password)
    return None


def log_in(username: str) -> None:
    session.clear()  # a fresh session: nothing from before the login survives (fixation)
    session[SESSION_KEY] = username
    session[SESSION_AT] = _now().isoformat()


def log_out() -> None:
    session.pop(SESSION_KEY, None)
    session.pop(SESSION_AT, None)


def current_admin() -> str | None:
    username = session.get(SESSION_KEY)
    since = session.get(SESSION_AT)
    if not username or not since:
        return None
    hours = float(current_app.config.get("ADMIN_SESSION_HOURS", 8))
    try:
        if _now() - datetime.fromisoformat(since) > timedelta(hours=hours):
            log_out()
            return None
    except ValueError:
        log_out()
        return None
    return username


def safe_next(target: str | None) -> str:
    """Only a path inside /admin: a login link cannot send anyone to another site."""
    default = url_for("admin.dashboard")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or "\\" in target:
        return default
    return target


def login_required(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_admin() is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper
