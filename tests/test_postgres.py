"""The application on a real PostgreSQL: migrations, import, A/B races, two app servers.

Why: a deployment that outgrows one machine runs several gunicorn hosts against one PostgreSQL.
SQLite hides dialect differences (types, partial indexes, ON CONFLICT, locking), so the same
operations are proven here on the real server. The server comes from TEST_POSTGRES_URL or from
scripts/postgres.sh; without one these tests skip with the reason.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from app.extensions import db
from tests.conftest import make_app

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def pg_app(tmp_path: Path, postgres_database: str):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _schema_diff(app) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, db.metadata)


def test_migrations_up_down_up_match_models(pg_app):
    from flask_migrate import downgrade, upgrade

    with pg_app.app_context():
        assert db.engine.dialect.name == "postgresql"
        tables = set(inspect(db.engine).get_table_names())
        assert set(db.metadata.tables) <= tables
    assert _schema_diff(pg_app) == []
    with pg_app.app_context():
        downgrade(revision="base")
        db.engine.dispose()
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        db.engine.dispose()
        assert set(db.metadata.tables) <= set(inspect(db.engine).get_table_names())
    assert _schema_diff(pg_app) == []


def _counts() -> dict[str, int]:
    from app.db import ListeningEvent, Track, TrackStorage, User
    from app.db.catalog import Artist

    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in (User, Artist, Track, TrackStorage, ListeningEvent)}


def test_import_small_world_same_as_sqlite_and_idempotent(pg_app, app, small_world):
    """The same export gives the same rows on PostgreSQL as on SQLite; a re-import adds none."""
    from app.importer import import_export

    with app.app_context():
        import_export(small_world)
        expected = _counts()
    with pg_app.app_context():
        report = import_export(small_world)
        assert _counts() == expected
        assert sum(f.skipped for f in report.files.values()) > 0  # the faults were reported
        again = import_export(small_world)
        assert sum(f.imported for f in again.files.values()) == 0
        assert _counts() == expected


def test_concurrent_first_requests_store_one_assignment(pg_app):
    """Many workers racing on a user's first request: one row, and every racer sees its arm."""
    from app import ab
    from app.db.experiments import Assignment

    racers, users = 8, list(range(900_001, 900_021))
    for user_id in users:
        barrier = threading.Barrier(racers)
        arms: list[str] = []
        errors: list[BaseException] = []

        def race(uid: int = user_id) -> None:
            try:
                with pg_app.app_context():
                    experiment = ab.active_experiment()
                    choice = ab.arm_for(experiment, uid)
                    barrier.wait(timeout=10)
                    arms.append(ab.store_assignment(choice))
                    db.session.commit()
                    db.session.remove()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=race) for _ in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert len(arms) == racers and len(set(arms)) == 1, arms
    with pg_app.app_context():
        rows = db.session.execute(select(Assignment.user_id, func.count())
                                  .where(Assignment.user_id.in_(users))
                                  .group_by(Assignment.user_id)).all()
        assert sorted(rows) == [(u, 1) for u in users]
