"""The admin's list of served playlists as SQLAlchemy Core: typed filter values in, conditions
on ``Prediction`` out, so the page never writes SQL of its own."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, Integer, cast, exists, func, or_, select

from app.db import Prediction
from app.db.json_arrays import json_rows
from app.extensions import db


@dataclass(frozen=True)
class PredictionFilters:
    """What the page filters by; None (or empty) leaves that filter out."""
    arm: str = ""
    model: str = ""
    endpoint: str = ""
    member: int | None = None  # the requesting user or any other member
    first_day: date | None = None
    last_day: date | None = None  # inclusive


def has_member(user_id: int) -> ColumnElement[bool]:
    """The prediction was for ``user_id``: the requesting user or one in the JSON list of the
    others, searched in the database."""
    others = json_rows(Prediction.other_users)
    return or_(Prediction.user_id == user_id,
               exists().select_from(others).where(cast(others.c.value, Integer) == user_id))


def criteria(filters: PredictionFilters) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if filters.arm:
        out.append(Prediction.arm == filters.arm)
    if filters.model:
        out.append(Prediction.model == filters.model)
    if filters.endpoint:
        out.append(Prediction.endpoint == filters.endpoint)
    if filters.member is not None:
        out.append(has_member(filters.member))
    if filters.first_day is not None:
        out.append(Prediction.created_at >= datetime.combine(filters.first_day, time.min))
    if filters.last_day is not None:
        out.append(Prediction.created_at
                   < datetime.combine(filters.last_day + timedelta(days=1), time.min))
    return out


def count(filters: PredictionFilters) -> int:
    return db.session.scalar(select(func.count()).select_from(Prediction)
                             .where(*criteria(filters))) or 0


def page(filters: PredictionFilters, number: int, size: int) -> list[Prediction]:
    """One page of the matching predictions, newest first (``number`` from 1)."""
    return list(db.session.scalars(
        select(Prediction).where(*criteria(filters))
        .order_by(Prediction.created_at.desc(), Prediction.id)
        .limit(size).offset((number - 1) * size)))


def filter_options() -> dict[str, list[str]]:
    """The values each of the page's drop-down filters can take."""
    return {name: sorted(x for x in db.session.scalars(select(column).distinct()) if x)
            for name, column in (("arm", Prediction.arm), ("model", Prediction.model),
                                 ("endpoint", Prediction.endpoint))}
