"""A/B experiments, sticky user assignments, served predictions and their feedback."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

# An arm's name is the model it serves, so that /predict can route on it without a lookup table.
ARM_MODELS = ("base", "advanced")
FEEDBACK_EVENTS = ("play", "skip", "like")


class Experiment(db.Model):
    """At most one row is active: a partial unique index enforces it in the database itself."""

    __tablename__ = "experiments"
    __table_args__ = (
        Index("uq_experiments_one_active", "active", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    salt: Mapped[str] = mapped_column(String(64))  # secret: never sent to clients
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The public builder's "A/B" playlists count as evidence only where an admin says so.
    include_builder: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false())

    arms: Mapped[list["ExperimentArm"]] = relationship(
        back_populates="experiment", lazy="selectin", order_by="ExperimentArm.id",
        cascade="all, delete-orphan",
    )


class ExperimentArm(db.Model):
    __tablename__ = "experiment_arms"
    __table_args__ = (
        UniqueConstraint("experiment_id", "name", name="uq_arm_name"),
        CheckConstraint("weight >= 0", name="ck_arm_weight"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))  # the model the arm serves: base / advanced
    weight: Mapped[float] = mapped_column(Float)

    experiment: Mapped[Experiment] = relationship(back_populates="arms")


class Assignment(db.Model):
    """A user's arm, written on their first request; the unique key keeps it single and sticky."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("experiment_id", "user_id", name="uq_assignment_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    arm: Mapped[str] = mapped_column(String(32))
    bucket: Mapped[float] = mapped_column(Float)  # kept so a re-weighting can be audited
    assigned_at: Mapped[datetime] = mapped_column(DateTime)


class Prediction(db.Model):
    """One served playlist, with enough detail to show it again (permalink) and to evaluate it.

    ``arm`` is the user's arm; ``model`` is what actually served, which differs from the arm
    only when ``fallback`` is set (advanced arm, no loadable model, base served instead).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_created", "created_at"),
        Index("ix_predictions_user", "user_id"),
        Index("ix_predictions_experiment_arm", "experiment_id", "arm"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), nullable=True)
    arm: Mapped[str | None] = mapped_column(String(32), nullable=True)
    is_ab: Mapped[bool] = mapped_column(Boolean, default=False)
    # Evidence: made by an authenticated API client (or the builder of an experiment that
    # includes it). Untrusted A/B rows are served and kept, but left out of every A/B figure.
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    client_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # api_clients.id
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[int] = mapped_column(Integer)
    other_users: Mapped[list] = mapped_column(JSON, default=list)
    playlist_length: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str | None] = mapped_column(String(32), nullable=True)
    exclude_explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    track_ids: Mapped[list] = mapped_column(JSON, default=list)
    # The members in scoring order (requesting user first, duplicates removed); member_scores
    # holds, per track, each member's expected liking (0-1); member_fit, per member, the fit.
    members: Mapped[list] = mapped_column(JSON, default=list)
    member_scores: Mapped[list | None] = mapped_column(JSON, nullable=True)
    member_fit: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # Per track, whom it is for: {"for": [user ids], "turn": user id or null} (the turn member
    # chose it; the others have it among their favourites). Null on rows served before it
    # existed or when no model could attribute the tracks.
    attribution: Mapped[list | None] = mapped_column(JSON, nullable=True)
    elapsed_ms: Mapped[float] = mapped_column(Float)

    experiment: Mapped[Experiment | None] = relationship(lazy="joined")


class Feedback(db.Model):
    """What happened to a served track, reported by a client through `POST /feedback`.

    One row per (prediction, user, track, event type): a replayed report changes nothing.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_prediction", "prediction_id"),
        Index("uq_feedback_event", "prediction_id", "user_id", "track_id", "event_type",
              unique=True),
        CheckConstraint("event_type IN ('play', 'skip', 'like')", name="ck_feedback_event"),
        CheckConstraint("ms_played >= 0", name="ck_feedback_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Integer)
    track_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(16))
    ms_played: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
