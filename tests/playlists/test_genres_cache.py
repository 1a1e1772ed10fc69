"""Members' favourite genres kept per process: read once per ``interval`` per member, a new
user found at once, a changed user's genres after the interval."""
from __future__ import annotations

import time

from sqlalchemy import delete, insert

from app.db import Genre, User, user_genres as user_genres_table
from app.extensions import db
from app.playlists.histories import GenresCache
from tests.support.sql import count_selects


def _set_genres(user_id: int, names: list[str]) -> None:
    db.session.execute(delete(user_genres_table).where(user_genres_table.c.user_id == user_id))
    for name in names:
        genre = db.session.query(Genre).filter_by(name=name).one_or_none()
        if genre is None:
            genre = Genre(name=name)
            db.session.add(genre)
            db.session.flush()
        db.session.execute(insert(user_genres_table).values(user_id=user_id, genre_id=genre.id))
    db.session.commit()


def test_genres_are_read_again_only_after_the_interval(app):
    with app.app_context():
        db.session.add_all([User(user_id=1), User(user_id=2)])
        db.session.commit()
        _set_genres(1, ["rock"])
        cache = GenresCache(0.5)
        assert cache.get([1, 2, 3]) == {1: ["rock"], 2: []}  # 3 does not exist
        _set_genres(1, ["jazz", "pop"])  # as a re-import would
        db.session.add(User(user_id=3))
        db.session.commit()
        seen, stop = count_selects(db.engine)
        try:
            got = cache.get([1, 2])
        finally:
            stop()
        assert seen == [] and got == {1: ["rock"], 2: []}  # within the interval: kept
        got[1].append("changed by a caller")
        assert cache.get([3]) == {3: []}  # never kept as missing: found as soon as it exists
        assert cache.get([1]) == {1: ["rock"]}
        time.sleep(0.6)
        assert sorted(cache.get([1])[1]) == ["jazz", "pop"]
