"""The catalogue and the listening history, as imported from a Pozytywka export.

Natural keys of the export (user_id, artist id, track id) are the primary keys, so that a
re-import upserts instead of duplicating.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

EVENT_TYPES = ("play", "skip", "like", "advertisement")
STORAGE_CLASSES = ("slow", "medium", "fast")

user_genres = Table(
    "user_genres",
    db.metadata,
    Column("user_id", ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("genre_id", ForeignKey("genres.id", ondelete="CASCADE"), primary_key=True),
)

artist_genres = Table(
    "artist_genres",
    db.metadata,
    Column("artist_id", ForeignKey("artists.id", ondelete="CASCADE"), primary_key=True),
    Column("genre_id", ForeignKey("genres.id", ondelete="CASCADE"), primary_key=True),
)


class Genre(db.Model):
    __tablename__ = "genres"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class User(db.Model):
    __tablename__ = "users"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(200), default="", index=True)
    street: Mapped[str] = mapped_column(String(300), default="")
    premium_user: Mapped[bool] = mapped_column(Boolean, default=False)

    favourite_genres: Mapped[list[Genre]] = relationship(secondary=user_genres, lazy="selectin")


class Artist(db.Model):
    __tablename__ = "artists"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), default="")

    genres: Mapped[list[Genre]] = relationship(secondary=artist_genres, lazy="selectin")


class Track(db.Model):
    __tablename__ = "tracks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    popularity: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    artist_id: Mapped[str] = mapped_column(ForeignKey("artists.id"), index=True)
    release_date: Mapped[str] = mapped_column(String(10), default="")
    danceability: Mapped[float] = mapped_column(Float)
    energy: Mapped[float] = mapped_column(Float)
    key: Mapped[int] = mapped_column(Integer)
    loudness: Mapped[float] = mapped_column(Float)
    speechiness: Mapped[float] = mapped_column(Float)
    acousticness: Mapped[float] = mapped_column(Float)
    instrumentalness: Mapped[float] = mapped_column(Float)
    liveness: Mapped[float] = mapped_column(Float)
    valence: Mapped[float] = mapped_column(Float)
    tempo: Mapped[float] = mapped_column(Float)

    artist: Mapped[Artist] = relationship(lazy="joined")

    @property
    def release_year(self) -> int | None:
        head = (self.release_date or "")[:4]
        return int(head) if head.isascii() and head.isdigit() else None


class ListeningEvent(db.Model):
    """One event of a listening session. ``track_id`` is null for adverts.

    ``dedup_key`` is a 64-bit hash of the whole natural row (session, time, user, track, type):
    a re-import or a repeated row in the export hits the unique index and is skipped.
    """

    __tablename__ = "listening_events"
    __table_args__ = (
        Index("ix_events_user_time", "user_id", "timestamp"),
        Index("ix_events_session", "session_id"),
        # Covers "which tracks did these users play/like" (base model, profiles) without the table.
        Index("ix_events_user_type_track", "user_id", "event_type", "track_id"),
        CheckConstraint(
            "event_type IN ('play', 'skip', 'like', 'advertisement')", name="ck_event_type"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[int] = mapped_column(BigInteger, unique=True)
    session_id: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.user_id"))
    track_id: Mapped[str | None] = mapped_column(ForeignKey("tracks.id"), nullable=True, index=True)
    event_type: Mapped[str] = mapped_column(String(16))


class TrackStorage(db.Model):
    __tablename__ = "track_storage"
    __table_args__ = (
        CheckConstraint("storage_class IN ('slow', 'medium', 'fast')", name="ck_storage_class"),
    )

    track_id: Mapped[str] = mapped_column(ForeignKey("tracks.id"), primary_key=True)
    storage_class: Mapped[str] = mapped_column(String(16))
    daily_cost: Mapped[float] = mapped_column(Float)
