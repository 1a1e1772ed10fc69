"""Status page at `/` until the playlist builder takes over: counts of what is imported."""
from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func, select

from app.db import ListeningEvent, Track, User
from app.extensions import db

bp = Blueprint("status", __name__)


def catalogue_counts() -> dict[str, int]:
    return {
        "users": db.session.scalar(select(func.count()).select_from(User)) or 0,
        "tracks": db.session.scalar(select(func.count()).select_from(Track)) or 0,
        "events": db.session.scalar(select(func.count()).select_from(ListeningEvent)) or 0,
    }


@bp.get("/")
def index():
    return render_template("status.html", counts=catalogue_counts())
