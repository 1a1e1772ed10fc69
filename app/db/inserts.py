"""INSERT that yields to an existing row with the same unique key, on every database."""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from app.extensions import db


def insert_ignoring_conflict(model: Any, values: dict[str, Any],
                             index_elements: list[str]) -> bool:
    """Insert ``values`` unless a row with the same ``index_elements`` exists; True if inserted.

    Runs in the caller's transaction. ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and
    PostgreSQL lets exactly one of several concurrent writers win without an error; other
    databases fall back to a savepoint that absorbs the duplicate.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        result = db.session.execute(insert(model).values(**values)
                                    .on_conflict_do_nothing(index_elements=index_elements))
        return bool(result.rowcount)
    try:
        with db.session.begin_nested():
            db.session.add(model(**values))
        return True
    except IntegrityError:
        return False
