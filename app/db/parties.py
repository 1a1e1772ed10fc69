"""Live parties: the party, its guests, its queue and every event that happened in it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

# queue states, in the order a track goes through them ("removed": taken out by the host)
TRACK_STATES = ("played", "playing", "upcoming", "removed")
PARTY_EVENTS = ("create", "join", "leave", "timeout", "skip", "like", "play", "next",
                "remove", "move_up", "controls", "replan", "end")


class Party(db.Model):
    __tablename__ = "parties"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # the join code is a bearer secret (>= 128 bits); kept so a join can be checked
    join_code: Mapped[str] = mapped_column(String(64), unique=True)
    host_user_id: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    guests_control: Mapped[bool] = mapped_column(Boolean, default=False)
    # bumped by every change a client can see: the queue's ETag
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # the next moment the party changes by itself (a track ends, a silent guest times out):
    # a poll before it reads one row and answers from the version
    due_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PartyGuest(db.Model):
    __tablename__ = "party_guests"
    __table_args__ = (Index("ix_party_guests_party", "party_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    genres: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # "host": added by the host with the group (no phone, never times out); "phone": joined
    via: Mapped[str] = mapped_column(String(16), default="phone")
    joined_at: Mapped[datetime] = mapped_column(DateTime)
    left_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)


class PartyTrack(db.Model):
    __tablename__ = "party_tracks"
    __table_args__ = (Index("ix_party_tracks_party", "party_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    track_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    turn_of: Mapped[int | None] = mapped_column(Integer, nullable=True)  # guest id
    for_guests: Mapped[list] = mapped_column(JSON, default=list)
    present: Mapped[list | None] = mapped_column(JSON, nullable=True)  # guest ids, once played
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)  # moved by the host: kept
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PartyEvent(db.Model):
    __tablename__ = "party_events"
    __table_args__ = (Index("ix_party_events_party", "party_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    guest_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    track_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
