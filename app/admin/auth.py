"""Admin login: a password hash from configuration or admin users in the database.

No account exists by default and no password is built in: production gets access only through
``ADMIN_PASSWORD_HASH`` (user name ``ADMIN_USERNAME``, default "admin") or
``flask --app wsgi admin create-user``. Passwords are checked with werkzeug's salted hashes; an
unknown user name costs the same hash check as a known one, so timing does not reveal which
names exist. The session is renewed at login and expires after ``ADMIN_SESSION_HOURS``.

Every admin request checks the session against the database, not only the cookie's signature:
the user must still exist (or still be the configured login, with the same configured hash)
and the session must carry the user name's current session version, which logout, a password
change and a deletion bump. So a deleted admin, a cookie saved before logout, or a cookie
signed for a name that was never a user opens nothing.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Callable
from urllib.parse import urlsplit

from flask import current_app, redirect, request, session, url_for
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app.common.clock import utcnow
from app.db import AdminSessionVersion, AdminUser
from app.db.inserts import insert_ignoring_conflict
from app.extensions import db

SESSION_KEY = "admin_user"
SESSION_AT = "admin_since"
SESSION_VERSION = "admin_version"
SESSION_ACCOUNT = "admin_account"
_DUMMY_HASH: str | None = None


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
            user.last_login_at = utcnow()
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


def session_version(username: str) -> int:
    return db.session.scalar(select(AdminSessionVersion.version)
                             .where(AdminSessionVersion.username == username)) or 0


def end_sessions(username: str) -> None:
    """Bump the name's session version (in the caller's transaction): every session issued
    before is over, on every worker and host, at its next request."""
    bump = (update(AdminSessionVersion).where(AdminSessionVersion.username == username)
            .values(version=AdminSessionVersion.version + 1))
    if db.session.execute(bump).rowcount:
        return
    if not insert_ignoring_conflict(AdminSessionVersion, {"username": username, "version": 1},
                                    ["username"]):
        db.session.execute(bump)  # a concurrent first bump inserted the row


def _account(username: str) -> str | None:
    """What the session is bound to besides the version: the database user's id, or a
    fingerprint of the configured hash (a new ADMIN_PASSWORD_HASH ends the old sessions).
    None when the name is no longer an admin."""
    user_id = db.session.scalar(select(AdminUser.id).where(AdminUser.username == username))
    if user_id is not None:
        return f"user:{user_id}"
    configured = str(current_app.config.get("ADMIN_PASSWORD_HASH") or "")
    if configured and username == config_username():
        digest = hmac.new(str(current_app.config["SECRET_KEY"]).encode(), configured.encode(),
                          hashlib.sha256).hexdigest()[:32]
        return f"config:{digest}"
    return None


def log_in(username: str) -> None:
    session.clear()  # a fresh session: nothing from before the login survives (fixation)
    session[SESSION_KEY] = username
    session[SESSION_AT] = utcnow().isoformat()
    session[SESSION_VERSION] = session_version(username)
    session[SESSION_ACCOUNT] = _account(username)


def log_out() -> None:
    """End this session and every other session of the same user name."""
    username = session.get(SESSION_KEY)
    if username and current_admin() == username:
        end_sessions(username)
        db.session.commit()
    _forget()


def _forget() -> None:
    for key in (SESSION_KEY, SESSION_AT, SESSION_VERSION, SESSION_ACCOUNT):
        session.pop(key, None)


def current_admin() -> str | None:
    """The logged-in admin's name, checked against the database on every call."""
    username = session.get(SESSION_KEY)
    since = session.get(SESSION_AT)
    if not isinstance(username, str) or not username or not isinstance(since, str):
        return None
    hours = float(current_app.config.get("ADMIN_SESSION_HOURS", 8))
    try:
        expired = utcnow() - datetime.fromisoformat(since) > timedelta(hours=hours)
    except ValueError:
        expired = True
    account = _account(username)
    if (expired or account is None or session.get(SESSION_ACCOUNT) != account
            or session.get(SESSION_VERSION) != session_version(username)):
        _forget()
        return None
    return username


def safe_next(target: str | None) -> str:
    """Only a path inside /admin or /users (people's pages behind the login): a login link
    cannot send anyone to another site. Control
    characters, spaces and non-ASCII are refused too: a CR LF would end the Location header
    (a 500 from Werkzeug, or a header injected by a laxer server)."""
    default = url_for("admin.dashboard")
    if not target or not isinstance(target, str):
        return default
    if not target.isascii() or any(c <= " " or c == "\x7f" for c in target):
        return default
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not parts.path.startswith(("/admin", "/users"))
            or "\\" in target):
        return default
    return target


# ----- trusted devices: a browser that has logged in as a name before -----

DEVICE_COOKIE = "admin_device"
DEVICE_DAYS = 180


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="admin-device")


def remember_device(response, username: str) -> None:
    """After a successful login: a signed cookie naming this browser as a device of the user.
    It proves nothing about the password; it only lets the login limits tell the admin's own
    browser from strangers guessing the same name elsewhere."""
    value = _device_signer().dumps({"u": username.strip().lower()[:100],
                                    "d": secrets.token_hex(8)})
    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_DAYS * 86400,
                        path=url_for("admin.login"), httponly=True, samesite="Strict",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))


def trusted_device_id(username: str) -> str | None:
    """This browser's device id when its cookie is valid and names ``username``."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw or not username or len(raw) > 512:
        return None
    try:
        data = _device_signer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("u") != username or not isinstance(
            data.get("d"), str):
        return None
    return data["d"]


def trusted_device(username: str) -> bool:
    return trusted_device_id(username) is not None


def login_required(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_admin() is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper
