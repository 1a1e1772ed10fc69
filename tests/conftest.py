"""Shared fixtures: a real, migrated SQLite database per test and small generated worlds.

Only fixtures live here; the plain functions and classes they use are in ``tests/support/``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from tests.support.apps import ApiWorld, make_api_app, make_app  # noqa: E402
from tests.support.paths import ROOT  # noqa: E402
from tests.support.postgres import libpq_url, start_postgres  # noqa: E402


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A small generated export (200 users, 2,000 tracks), shared read-only by the session."""
    from app.data.generator.writers import generate_export

    out = tmp_path_factory.mktemp("world")
    generate_export(out, users=200, tracks=2000, sessions=6000, seed=1, faults=True)
    return out


# ----- PostgreSQL (tests marked `postgres`; issue 7) -----

@pytest.fixture(scope="session")
def postgres_url():
    """A reachable PostgreSQL server's URL; skips (with the reason) when none can be had, or
    fails when REQUIRE_POSTGRES=1 (CI), where a skip would hide a broken setup."""
    import subprocess

    url, why, started = start_postgres()
    required = os.environ.get("REQUIRE_POSTGRES") == "1"
    if url is None:
        if required:
            pytest.fail(f"PostgreSQL not available but REQUIRE_POSTGRES=1: {why}")
        pytest.skip(f"PostgreSQL not available: {why}. Set TEST_POSTGRES_URL or install "
                    "Debian's postgresql (scripts/postgres.sh does so as root).")
    try:
        import psycopg

        with psycopg.connect(libpq_url(url), connect_timeout=5):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means "no server for this run"
        if required:
            pytest.fail(f"PostgreSQL at {url} is not reachable: {exc}")
        pytest.skip(f"PostgreSQL at {url} is not reachable: {exc}")
    yield url
    if started:  # leave nothing running that this session started
        subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop"],
                       capture_output=True, timeout=120)


@pytest.fixture
def postgres_database(postgres_url: str):
    """A fresh, empty database on the server for one test (dropped afterwards), so tests never
    see each other's rows and can run in any order."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    name = f"pozytywka_t_{uuid.uuid4().hex[:12]}"
    admin = libpq_url(base.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----- API (issue 4): a trained world shared by the session, copied per test -----

@pytest.fixture(scope="session")
def api_world(small_world, tmp_path_factory) -> ApiWorld:
    from app.data.importer.write import import_export
    from app.modelstore import registry
    from app.recommender import artifact
    from app.modelstore.loaders import load_interactions as load_from_database
    from app.recommender.training import TrainParams, train

    world = ApiWorld(tmp_path_factory.mktemp("api_world"))
    app = make_app(world.root, SQLALCHEMY_DATABASE_URI=f"sqlite:///{world.db_path}",
                   MODEL_DIR=str(world.model_dir))
    with app.app_context():
        import_export(small_world)
        model = train(load_from_database(), TrainParams(epochs=5, components=16))
        registry.register(artifact.save(model, world.model_dir), activate=True)
        db.session.remove()
        db.engine.dispose()  # checkpoints the WAL: the file alone is the whole database
    return world


@pytest.fixture
def api_app(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def api_client(api_app):
    return api_app.test_client()


# ----- recommender (issue 3): the small world in memory and a model trained on it -----

@pytest.fixture(scope="session")
def world_data(api_world, tmp_path_factory):
    """The small world as an ``InteractionData``, read from a copy of the trained world's DB."""
    from app.modelstore.loaders import load_interactions as load_from_database

    root = tmp_path_factory.mktemp("world_data")
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI":
                                 f"sqlite:///{api_world.copy_db(root)}"})
    with app.app_context():
        data = load_from_database()
        db.engine.dispose()
    return data


@pytest.fixture(scope="session")
def trained_small(world_data):
    """A model trained in memory on the whole small world (keeps its LightFM object)."""
    from app.recommender.training import TrainParams, train

    return train(world_data, TrainParams(epochs=5, components=16, seed=3))


@pytest.fixture
def world_app(api_world, tmp_path):
    """An app on a private copy of the trained world (database and model directory), with
    the model holder re-checking the database on every request."""
    import shutil

    models = tmp_path / "models"
    shutil.copytree(api_world.model_dir, models)
    app = make_api_app(api_world, tmp_path, MODEL_DIR=str(models), MODEL_RELOAD_SECONDS=0)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
