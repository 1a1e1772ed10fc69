"""Small reads shared by several rooms: what is imported, users and tracks by id.

The counts are shown by /health, the builder's footer and the scripts; the lookups serve the
playlist permalinks (public and admin) and the builder.
"""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import func, select

from app.db import ListeningEvent, Track, User
from app.extensions import db


def catalogue_counts() -> dict[str, int]:
    return {
        "users": db.session.scalar(select(func.count()).select_from(User)) or 0,
        "tracks": db.session.scalar(select(func.count()).select_from(Track)) or 0,
        "events": db.session.scalar(select(func.count()).select_from(ListeningEvent)) or 0,
    }


def existing_users(ids: Iterable[int]) -> dict[int, User]:
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    users = db.session.scalars(select(User).where(User.user_id.in_(ids))).all()
    return {u.user_id: u for u in users}


def tracks_by_id(track_ids: list[str]) -> dict[str, Track]:
    """Catalogue rows for a stored playlist (artist joined, genres selected in)."""
    if not track_ids:
        return {}
    tracks = db.session.scalars(select(Track).where(Track.id.in_(list(set(track_ids))))).all()
    return {t.id: t for t in tracks}
