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
    from app.data.generator.writers import generate_export

    out = tmp_path_factory.mktemp("world")
    generate_export(out, users=200, tracks=2000, sessions=6000, seed=1, faults=True)
    return out


# ----- PostgreSQL (tests marked `postgres`; issue 7) -----

def _start_postgres() -> tuple[str | None, str, bool]:
    """(SQLAlchemy URL, why not, started here) from TEST_POSTGRES_URL, else a throwaway server
    started by scripts/postgres.sh (installs Debian's postgresql when root and it is missing)."""
    import subprocess

    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        return url, "", False
    default = "postgresql+psycopg://postgres@127.0.0.1:54329/pozytywka_test"
    try:  # already running (another test session, or .ci/run): use it, and leave it running
        import psycopg

        with psycopg.connect(_libpq_url(default), connect_timeout=2):
            return default, "", False
    except Exception:  # noqa: BLE001 - not running (or no driver): start it below
        pass
    try:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"scripts/postgres.sh start failed: {exc}", False
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("postgresql"):
        return None, (f"scripts/postgres.sh start exited {proc.returncode}: "
                      f"{(proc.stderr or proc.stdout).strip()[-300:]}"), False
    return lines[-1], "", True


@pytest.fixture(scope="session")
def postgres_url():
    """A reachable PostgreSQL server's URL; skips (with the reason) when none can be had, or
    fails when REQUIRE_POSTGRES=1 (CI), where a skip would hide a broken setup."""
    import subprocess

    url, why, started = _start_postgres()
    required = os.environ.get("REQUIRE_POSTGRES") == "1"
    if url is None:
        if required:
            pytest.fail(f"PostgreSQL not available but REQUIRE_POSTGRES=1: {why}")
        pytest.skip(f"PostgreSQL not available: {why}. Set TEST_POSTGRES_URL or install "
                    "Debian's postgresql (scripts/postgres.sh does so as root).")
    try:
        import psycopg

        with psycopg.connect(_libpq_url(url), connect_timeout=5):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means "no server for this run"
        if required:
            pytest.fail(f"PostgreSQL at {url} is not reachable: {exc}")
        pytest.skip(f"PostgreSQL at {url} is not reachable: {exc}")
    yield url
    if started:  # leave nothing running that this session started
        subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop"],
                       capture_output=True, timeout=120)


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_database(postgres_url: str):
    """A fresh, empty database on the server for one test (dropped afterwards), so tests never
    see each other's rows and can run in any order."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    name = f"pozytywka_t_{uuid.uuid4().hex[:12]}"
    admin = _libpq_url(base.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----- API (issue 4): a trained world shared by the session, copied per test -----

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


@pytest.fixture(scope="session")
def api_world(small_world, tmp_path_factory) -> ApiWorld:
    from app.data.importer.write import import_export
    from app.modelstore import registry
    from app.recommender import artifact
    from app.data.loaders import load_interactions as load_from_database
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


def feedback_token(response, user_id: int) -> str:
    """The member's token from a predict answer's X-Feedback-Tokens header (USER=TOKEN,...)."""
    for item in response.headers["X-Feedback-Tokens"].split(","):
        user, _, token = item.partition("=")
        if int(user) == user_id:
            return token
    raise KeyError(user_id)


def make_api_app(world: ApiWorld, tmp_path: Path, **overrides):
    """An app on a private copy of the trained world's database (already at the head revision)."""
    config = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{world.copy_db(tmp_path)}",
        "MODEL_DIR": str(world.model_dir),
        "PREDICTIONS_LOG": str(tmp_path / "predictions.jsonl"),
    }
    config.update(overrides)
    return create_app("testing", config)


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
    from app.data.loaders import load_interactions as load_from_database

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


# ----- real gunicorn servers for load, fault and multi-host tests (issue 7) -----

class GunicornServer:
    """A gunicorn master started by ``start_gunicorn``; ``stop()`` ends its process group."""

    def __init__(self, root: Path, port: int, proc, log_path: Path, env: dict[str, str]):
        self.root, self.port, self.proc, self.log_path, self.env = root, port, proc, log_path, env
        self.url = f"http://127.0.0.1:{port}"

    def worker_pids(self) -> list[int]:
        import psutil

        return sorted(child.pid for child in psutil.Process(self.proc.pid).children())

    def log_lines(self) -> list[dict]:
        """Every line of the predictions log, parsed; fails the test on a torn or bad line."""
        import json

        if not self.log_path.exists():
            return []
        raw = self.log_path.read_bytes()
        assert not raw or raw.endswith(b"\n"), "the predictions log ends in a partial line"
        return [json.loads(line) for line in raw.decode("utf-8").splitlines()]

    def output(self) -> str:
        path = self.root / "gunicorn.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(root: Path, *, database_url: str, model_dir: Path | str, workers: int = 2,
                   port: int | None = None, log_path: Path | None = None,
                   env: dict[str, str] | None = None, healthy: bool = True,
                   timeout: float = 90) -> GunicornServer:
    """Serve ``wsgi:app`` through gunicorn.conf.py exactly as scripts/serve.sh does.

    Waits until /health answers (200, or any answer when ``healthy`` is False: a degraded
    server still answers 503); fails the test with gunicorn's output otherwise.
    """
    import subprocess
    import sys
    import time

    import requests

    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = log_path or root / "predictions.jsonl"
    full_env = {
        **os.environ,
        "POZYTYWKA_CONFIG": "development", "DATABASE_URL": database_url,
        "INSTANCE_DIR": str(root), "MODEL_DIR": str(model_dir),
        "PREDICTIONS_LOG": str(log_path), "HOST": "127.0.0.1", "PORT": str(port),
        "WEB_CONCURRENCY": str(workers), "GUNICORN_ACCESSLOG": "/dev/null",
        # Load tests send more than any one client may; the limit tests pass their own.
        "PREDICT_RATE_LIMIT": "1000000 per minute", "FEEDBACK_RATE_LIMIT": "1000000 per minute",
        **(env or {}),
    }
    output = open(root / "gunicorn.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=full_env, stdout=output,
                            stderr=subprocess.STDOUT, start_new_session=True)
    output.close()
    server = GunicornServer(root, port, proc, log_path, full_env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = requests.get(server.url + "/health", timeout=5).status_code
            if status == 200 or not healthy:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"gunicorn on port {port} did not become ready:\n"
                        + server.output()[-3000:])
        time.sleep(0.2)
    return server


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def serve_world(world: ApiWorld, root: Path) -> GunicornServer:
    """gunicorn on a private copy of the trained small world; ``.db_path`` is that copy."""
    db_path = world.copy_db(root)
    server = start_gunicorn(root, database_url=sqlite_url(db_path), model_dir=world.model_dir)
    server.db_path = db_path
    return server


SMALL_WORLD_USERS = range(101, 289)
PREDICT_PATHS = ("/predict", "/predict/base", "/predict/advanced")


def random_predict(session, url: str, rng, *, max_members: int = 8,
                   lengths: tuple[int, ...] = (5, 10, 20),
                   paths: tuple[str, ...] = PREDICT_PATHS):
    """POST a random group of the small world's users to one of ``paths`` (load tests)."""
    group = rng.sample(SMALL_WORLD_USERS, rng.randint(1, max_members))
    return session.post(url + rng.choice(paths), timeout=30, json={
        "user_id": group[0], "other_users": group[1:], "playlist_length": rng.choice(lengths)})


def prediction_rows(db_path: Path, columns: str = "id") -> list[tuple]:
    """The predictions table of a SQLite copy a server writes to."""
    import sqlite3

    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute(f"SELECT {columns} FROM predictions").fetchall()
