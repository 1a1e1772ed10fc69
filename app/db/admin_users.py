"""Admin accounts created with `flask admin create-user`; only password hashes are stored."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class AdminUser(db.Model):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AdminSessionVersion(db.Model):
    """The current session version of an admin user name; a session of another version is over.

    Keyed by name, not by user row, and kept when the user is deleted: logout, a password change
    or a deletion bumps it, so a cookie from before stops working at once, also for the
    configured (``ADMIN_PASSWORD_HASH``) login and for a user re-created under the same name.
    """

    __tablename__ = "admin_session_versions"

    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
