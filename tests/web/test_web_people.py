"""Finding people and reading a user page (issue 15): id prefixes match, an exact id comes
first, and the recent events leave adverts out."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.db import ListeningEvent, User
from app.extensions import db


def test_id_prefix_finds_people(client, web_app):
    with web_app.app_context():
        expected = sorted(u for u in db.session.scalars(select(User.user_id))
                          if str(u).startswith("12"))
    assert len(expected) > 1
    data = client.get("/users/search.json?q=12&limit=50").get_json()
    found = {r["user_id"] for r in data["results"]}
    assert set(expected) <= found
    exact = client.get("/users/search.json?q=123&limit=5").get_json()
    assert exact["results"][0]["user_id"] == 123  # the exact id first, then its extensions


def test_recent_events_leave_adverts_out(client, web_app):
    with web_app.app_context():
        newest = db.session.scalar(select(func.max(ListeningEvent.timestamp))
                                   .where(ListeningEvent.user_id == 123)) or datetime(2024, 1, 1)
        session = (db.session.scalar(select(func.max(ListeningEvent.session_id))) or 0) + 1
        for i in range(20):  # the newest twenty events of user 123 are adverts
            db.session.add(ListeningEvent(dedup_key=-(10**12) - i, session_id=session,
                                          timestamp=newest + timedelta(minutes=i + 1),
                                          user_id=123, track_id=None,
                                          event_type="advertisement"))
        db.session.commit()
    html = client.get("/users/123").get_data(as_text=True)
    recent = re.search(r'<table class="compact" id="recent-events">(.*?)</table>', html, re.S)
    assert recent is not None, "plays and skips before the adverts are still listed"
    assert "advert" not in recent.group(1)
