"""Apps for tests: a fresh migrated database, or a private copy of the trained small world."""
from __future__ import annotations

import os
from pathlib import Path

from app import create_app


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


class ApiWorld:
    """A migrated SQLite database holding ``small_world`` and one active trained model.

    Built once per session (generate, import, train: a few seconds); tests get a private copy
    of the database file (``api_app``), and share the read-only model directory.
    """

    def __init__(self, root: Path):
        self.root = root
        self.db_path = root / "test.db"
        self.model_dir = root / "models"

    def copy_db(self, dest: Path) -> Path:
        import shutil

        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.db_path, dest / "api.db")
        return dest / "api.db"


def make_api_app(world: ApiWorld, tmp_path: Path, **overrides):
    """An app on a private copy of the trained world's database (already at the head revision)."""
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{world.copy_db(tmp_path)}",
        "MODEL_DIR": str(world.model_dir),
        "PREDICTIONS_LOG": str(tmp_path / "predictions.jsonl"),
    }
    config.update(overrides)
    return create_app("testing", config)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
