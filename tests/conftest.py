"""Shared fixtures: a real, migrated SQLite database per test and small generated worlds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ARTIFACTS = ROOT / "test-artifacts"


def make_app(tmp_path: Path, **overrides):
    """An app on a fresh SQLite file, migrated through Alembic exactly as in production."""
    from flask_migrate import upgrade

    config = {
        "SQLALCHEMY_DATABASE_URI": os.environ.get("TEST_DATABASE_URL")
        or f"sqlite:///{tmp_path / 'test.db'}",
        "MODEL_DIR": str(tmp_path / "models"),
        "PREDICTIONS_LOG": str(tmp_path / "predictions.jsonl"),
    }
    config.update(overrides)
    app = create_app("testing", config)
    with app.app_context():
        upgrade()
    return app


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
    from app.datagen import generate_export

    out = tmp_path_factory.mktemp("world")
    generate_export(out, users=200, tracks=2000, sessions=6000, seed=1, faults=True)
    return out
