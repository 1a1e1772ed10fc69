"""The application on a real PostgreSQL: migrations, import, A/B races, two app servers.

Why: a deployment that outgrows one machine runs several gunicorn hosts against one PostgreSQL.
SQLite hides dialect differences (types, partial indexes, ON CONFLICT, locking), so the same
operations are proven here on the real server. The server comes from TEST_POSTGRES_URL or from
scripts/postgres.sh; without one these tests skip with the reason.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from app.extensions import db
from tests.support.apps import make_app
from tests.support.traffic import random_predict

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
    from app.data.importer.write import import_export

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
    from app.experiments import assignment
    from app.db.experiments import Assignment

    racers, users = 8, list(range(900_001, 900_021))
    for user_id in users:
        barrier = threading.Barrier(racers)
        arms: list[str] = []
        errors: list[BaseException] = []

        def race(uid: int = user_id) -> None:
            try:
                with pg_app.app_context():
                    experiment = assignment.active_experiment()
                    choice = assignment.arm_for(experiment, uid)
                    barrier.wait(timeout=10)
                    arms.append(assignment.store_assignment(choice))
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


# ----- two app servers (hosts) sharing one PostgreSQL and one model store -----

@pytest.fixture
def pg_world(tmp_path: Path, postgres_database: str, api_world, small_world):
    """The small world imported into PostgreSQL, with the trained model of ``api_world``
    registered from a shared model directory (what an NFS / object-store mount would hold)."""
    import shutil

    from app.data.importer.write import import_export
    from app.modelstore import registry
    from app.recommender import artifact

    model_dir = tmp_path / "shared-models"
    shutil.copytree(api_world.model_dir, model_dir)
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database, MODEL_DIR=str(model_dir))
    with app.app_context():
        import_export(small_world)
        (version_dir,) = [p for p in model_dir.iterdir() if not p.name.startswith(".")]
        registry.register(artifact.load(version_dir), activate=True)
        db.session.remove()
        db.engine.dispose()
    return app, postgres_database, model_dir


def test_two_app_servers_share_one_postgres(pg_world, tmp_path):
    import random
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from app.db.experiments import Assignment, Prediction
    from app.modelstore import registry
    from app.modelstore.loaders import load_interactions as load_from_database
    from app.recommender import artifact
    from app.recommender.training import TrainParams, train
    from tests.support.servers import start_gunicorn

    app, url, model_dir = pg_world
    env = {"MODEL_RELOAD_SECONDS": "1"}
    hosts = [start_gunicorn(tmp_path / f"host{i}", database_url=url, model_dir=model_dir,
                            workers=2, env=env) for i in (1, 2)]
    try:
        # the backend's key (only trusted calls store assignments), made on one host, good on both
        auth = {"Authorization": f"Bearer {hosts[0].api_key('two-hosts-backend')}"}
        # 1. first requests for the same new users race across both hosts: one assignment each
        users = list(range(270, 276))
        for user in users:
            barrier = threading.Barrier(8)

            def first(i: int, uid: int = user) -> str:
                barrier.wait(timeout=20)
                response = requests.post(hosts[i % 2].url + "/predict", timeout=30, json={
                    "user_id": uid, "other_users": [101], "playlist_length": 5},
                    headers=auth)
                assert response.status_code == 200, response.text
                return response.headers["X-AB-Arm"]

            with ThreadPoolExecutor(8) as pool:
                assert len(set(pool.map(first, range(8)))) == 1

        # 2. mixed load on both hosts at once
        def client(seed: int) -> Counter:
            rng = random.Random(seed)
            statuses: Counter = Counter()
            with requests.Session() as session:
                session.headers.update(auth)
                for _ in range(60):
                    response = random_predict(
                        session, hosts[seed % 2].url, rng, max_members=6, lengths=(10,),
                        paths=("/predict", "/predict", "/predict/base", "/predict/advanced"))
                    statuses[response.status_code] += 1
            return statuses

        with ThreadPoolExecutor(8) as pool:
            statuses = sum(pool.map(client, range(8)), Counter())
        assert statuses == Counter({200: 480}), statuses

        # 3. a version activated in the shared database reaches both hosts without a restart
        with app.app_context():
            old = registry.active_pointer()[0]
            model = train(load_from_database(), TrainParams(epochs=1, components=8))
            new = registry.register(artifact.save(model, model_dir), activate=True).version
            db.session.remove()
        assert new != old
        deadline = time.monotonic() + 20
        seen = {}
        while time.monotonic() < deadline and set(seen.values()) != {new}:
            for host in hosts:
                for _ in range(4):  # reach both workers of the host
                    response = requests.post(host.url + "/predict/advanced", timeout=30, json={
                        "user_id": 101, "playlist_length": 5})
                    seen[(host.port, _)] = response.headers["X-Model-Version"]
            time.sleep(0.3)
        assert set(seen.values()) == {new}

        # every row has exactly one line in one host's log; the logs are valid and disjoint
        logs = [host.log_lines() for host in hosts]
        ids = [{line["prediction_id"] for line in lines} for lines in logs]
        assert all(len(i) == len(lines) for i, lines in zip(ids, logs))
        assert not ids[0] & ids[1] and ids[0] and ids[1]
        with app.app_context():
            rows = db.session.execute(select(Prediction.id, Prediction.user_id, Prediction.arm,
                                             Prediction.is_ab, Prediction.model,
                                             Prediction.fallback)).all()
            arms = dict(db.session.execute(select(Assignment.user_id, Assignment.arm)).all())
            per_user = db.session.execute(select(Assignment.user_id, func.count())
                                          .group_by(Assignment.user_id)).all()
            # the row's JSON columns, written as ready JSON text, read back as JSON values
            stored = db.session.execute(select(Prediction.track_ids, Prediction.member_scores,
                                               Prediction.attribution)
                                        .where(Prediction.model == "advanced")).all()
            db.session.remove()
            db.engine.dispose()
        assert {r.id for r in rows} == ids[0] | ids[1]
        assert all(n == 1 for _, n in per_user)
        assert stored
        for playlist, scores, attribution in stored:
            assert isinstance(scores, list) and len(scores) == len(playlist)
            assert all(isinstance(v, float) and 0 <= v <= 1 for row in scores for v in row)
            assert isinstance(attribution, list) and all("for" in a for a in attribution)
        for row in rows:
            if row.is_ab:  # an A/B row carries the user's one stored arm, and served it
                assert row.arm == arms[row.user_id]
                assert row.model == row.arm or row.fallback
    finally:
        for host in hosts:
            host.stop()
