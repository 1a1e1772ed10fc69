"""The database read into the recommender's in-memory structures: one ``InteractionData`` for
training and evaluation, one ``Catalogue`` for serving.

The recommender (``app/recommender/``) never imports SQLAlchemy: these loaders are the only
place where its structures meet the tables. Export folders and Last.fm have their own loaders
(``dataset.load_from_export``, ``offline.lastfm``) that need no database.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Float, case, cast, func, select

from app.db import Artist, Genre, ListeningEvent, Track, User, artist_genres, user_genres
from app.extensions import db
from app.recommender.catalogue import Catalogue
from app.recommender.dataset import LIKE, PLAY, SKIP, InteractionData, assemble


def load_interactions(engine=None) -> InteractionData:
    """Read users, catalogue and listening events with SQLAlchemy Core into one data set."""
    engine = engine or db.engine
    with engine.connect() as conn:
        users = pd.read_sql(select(User.user_id).order_by(User.user_id), conn)
        ugen = pd.read_sql(select(user_genres.c.user_id, Genre.name.label("genre"))
                           .join(Genre, Genre.id == user_genres.c.genre_id), conn)
        tracks, artists, agen = _catalogue_frames(conn)
        events = _read_events(conn, engine.dialect)
    return assemble(users, ugen, tracks, artists, agen, events, source="database")


def load_catalogue(engine=None) -> Catalogue:
    """Every track with its artist, genres, name and duration: what serving needs, no events."""
    engine = engine or db.engine
    with engine.connect() as conn:
        tracks, artists, agen = _catalogue_frames(conn)
    return Catalogue.from_frames(tracks, artists, agen)


def _catalogue_frames(conn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(tracks, artists, (artist_id, genre) pairs), tracks in id order."""
    artists = pd.read_sql(select(Artist.id, Artist.name), conn)
    agen = pd.read_sql(select(artist_genres.c.artist_id, Genre.name.label("genre"))
                       .join(Genre, Genre.id == artist_genres.c.genre_id), conn)
    tracks = pd.read_sql(select(Track.__table__).order_by(Track.id), conn)
    return tracks, artists, agen


def _events_query(dialect: str):
    """Events with the time as epoch seconds and the kind as a code, computed by the database:
    SQLAlchemy's per-row DateTime parsing of a full export's events costs more than training."""
    ev = ListeningEvent.__table__.c
    if dialect == "sqlite":
        seconds = (func.julianday(ev.timestamp) - 2440587.5) * 86400.0
    else:
        seconds = func.extract("epoch", ev.timestamp)
    kind = case((ev.event_type == "play", PLAY), (ev.event_type == "skip", SKIP),
                (ev.event_type == "like", LIKE), else_=-1)
    return (select(ev.user_id, ev.track_id, cast(seconds, Float).label("seconds"),
                   kind.label("kind"))
            .where(ev.track_id.is_not(None), ev.event_type != "advertisement"))


def _read_events(conn, dialect) -> pd.DataFrame:
    """Stream the events through the driver's cursor into numpy columns: no SQLAlchemy row
    object per event, which ``pd.read_sql`` would build for every one of them."""
    sql = str(_events_query(dialect.name).compile(dialect=dialect,
                                                  compile_kwargs={"literal_binds": True}))
    names = ["user_id", "track_id", "seconds", "kind"]
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        frames = []
        while chunk := cursor.fetchmany(250_000):
            frames.append(pd.DataFrame.from_records(chunk, columns=names))
    finally:
        cursor.close()
    if not frames:
        return pd.DataFrame({"user_id": np.zeros(0, np.int64), "track_id": np.zeros(0, object),
                             "seconds": np.zeros(0), "kind": np.zeros(0, np.int64)})
    return pd.concat(frames, ignore_index=True)
