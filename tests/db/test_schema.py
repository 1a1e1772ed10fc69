"""The Alembic migrations build exactly the schema the models describe.

Why: tests and production create tables through migrations only; a model change without a
migration (or the reverse) would pass every other test on one side and break on the other.
"""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db


def test_migrated_database_matches_the_models(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, db.metadata) == []
