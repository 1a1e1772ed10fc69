"""Counts of what is imported: shown by /health, the builder's footer and the scripts."""
from __future__ import annotations

from sqlalchemy import func, select

from app.db import ListeningEvent, Track, User
from app.extensions import db


def catalogue_counts() -> dict[str, int]:
    return {
        "users": db.session.scalar(select(func.count()).select_from(User)) or 0,
        "tracks": db.session.scalar(select(func.count()).select_from(Track)) or 0,
        "events": db.session.scalar(select(func.count()).select_from(ListeningEvent)) or 0,
    }
