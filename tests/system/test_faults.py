"""Faults against a real gunicorn: load, a killed worker, broken model files, a killed training
run, and a database locked by another writer.

Why a real server: the promises under test (rows = log lines under concurrency, no torn log
lines when a process dies, 503 rather than 500 on a locked database) are about processes,
sockets and file locks, which the Flask test client does not have.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.apps import sqlite_url
from tests.support.paths import ROOT
from tests.support.servers import GunicornServer, serve_world, start_gunicorn
from tests.support.traffic import prediction_rows, random_predict

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def load_server(api_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_load")
    server = serve_world(api_world, root)
    yield server
    server.stop()


def test_8_clients_x_500_requests(load_server: GunicornServer):
    """Zero 5xx; database rows = log lines = requests; every line parses."""
    before = len(prediction_rows(load_server.db_path))

    def client(seed: int) -> tuple[Counter, set[str]]:
        rng = random.Random(seed)
        statuses: Counter = Counter()
        ids: set[str] = set()
        with requests.Session() as session:
            for _ in range(500):
                response = random_predict(session, load_server.url, rng)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    ids.add(response.headers["X-Prediction-Id"])
        return statuses, ids

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    elapsed = time.perf_counter() - started
    statuses = sum((r[0] for r in results), Counter())
    served = set().union(*(r[1] for r in results))
    print(f"\n4,000 requests in {elapsed:.1f}s ({4000 / elapsed:.0f}/s): {dict(statuses)}")
    assert [code for code in statuses if code >= 500] == []
    assert statuses == Counter({200: 4000})
    rows = {r[0] for r in prediction_rows(load_server.db_path)}
    lines = load_server.log_lines()
    assert len(rows) == before + 4000 == len(lines)
    assert {line["prediction_id"] for line in lines} == rows
    assert served <= rows and len(served) == 4000
    for line in lines:
        assert {"user_id", "other_users", "playlist", "timestamp", "elapsed_time", "model",
                "is_ab", "prediction_id", "model_version"} <= set(line)


def test_worker_killed_under_load_keeps_serving_and_log_valid(load_server: GunicornServer):
    """SIGKILL one of two workers mid-load: the other answers, the master replaces the dead one,
    and the log holds only whole lines (one os.write per line under flock)."""
    victims = load_server.worker_pids()
    assert len(victims) == 2
    stop = threading.Event()
    killed_at: list[float] = []

    def client(seed: int) -> tuple[Counter, int, int]:
        rng = random.Random(1000 + seed)
        statuses: Counter = Counter()
        dropped = after_kill = 0
        with requests.Session() as session:
            for _ in range(400):
                if stop.is_set():
                    break
                try:
                    response = random_predict(session, load_server.url, rng)
                # the request the dead worker was serving: refused, or cut off mid-answer
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                    dropped += 1
                    continue
                statuses[response.status_code] += 1
                if killed_at and response.status_code == 200:
                    after_kill += 1
        return statuses, dropped, after_kill

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, i) for i in range(4)]
        time.sleep(1.0)
        os.kill(victims[0], signal.SIGKILL)
        killed_at.append(time.monotonic())
        time.sleep(3.0)
        stop.set()
        results = [f.result() for f in futures]
    statuses = sum((r[0] for r in results), Counter())
    dropped = sum(r[1] for r in results)
    after_kill = sum(r[2] for r in results)
    assert [code for code in statuses if code >= 500] == [], statuses
    assert dropped <= 2, f"{dropped} requests lost; only the killed worker's own may be"
    assert after_kill > 20, "the service stopped answering after the worker died"

    deadline = time.monotonic() + 30
    while len(load_server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = load_server.worker_pids()
    assert len(workers) == 2 and victims[0] not in workers, "the master did not replace it"
    assert requests.post(load_server.url + "/predict", timeout=30, json={
        "user_id": 101, "other_users": [102], "playlist_length": 5}).status_code == 200

    lines = load_server.log_lines()  # asserts whole lines, each valid JSON
    ids = [line["prediction_id"] for line in lines]
    assert len(ids) == len(set(ids))
    rows = {r[0] for r in prediction_rows(load_server.db_path)}
    # a line may be written by the killed worker just before its COMMIT: never the reverse
    assert rows <= set(ids) and len(set(ids) - rows) <= 1


# ----- model files broken on disk -----

def _copy_world(api_world, root: Path) -> tuple[Path, Path, str]:
    """A private database and model directory, the DB's recorded path pointing at the copy."""
    db_path = api_world.copy_db(root)
    model_dir = root / "models"
    shutil.copytree(api_world.model_dir, model_dir)
    with sqlite3.connect(db_path) as conn:
        version, = conn.execute("SELECT version FROM model_versions WHERE active").fetchone()
        conn.execute("UPDATE model_versions SET path = ? WHERE version = ?",
                     (str(model_dir / version), version))
    return db_path, model_dir, version


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_broken_artifact_starts_degraded_and_serves_base(api_world, tmp_path, damage):
    db_path, model_dir, version = _copy_world(api_world, tmp_path)
    if damage == "missing":
        shutil.rmtree(model_dir / version)
    else:
        arrays = model_dir / version / "arrays.npz"
        data = bytearray(arrays.read_bytes())
        data[len(data) // 2:len(data) // 2 + 64] = os.urandom(64)
        arrays.write_bytes(bytes(data))
    server = start_gunicorn(tmp_path / "srv", database_url=sqlite_url(db_path),
                            model_dir=model_dir, workers=1, healthy=False)
    try:
        health = requests.get(server.url + "/health", timeout=10)
        assert health.status_code == 503
        # public answer: a reason code only (the error text is on the admin health page)
        assert health.json() == {"status": "degraded", "model_version": None,
                                 "reason": "model_unavailable"}
        assert f"model version {version} cannot be loaded" in server.output()
        assert ("checksum" if damage == "corrupt" else "missing") in server.output()

        served = requests.post(server.url + "/predict", timeout=30, json={
            "user_id": 101, "other_users": [102, 103], "playlist_length": 10})
        assert served.status_code == 200 and len(served.json()) == 10
        assert served.headers["X-Model"] == "base"
        advanced = requests.post(server.url + "/predict/advanced", timeout=30, json={
            "user_id": 101, "playlist_length": 10})
        assert advanced.status_code == 503 and advanced.json()["error"] == "model_unavailable"
        line = server.log_lines()[-1]
        assert line["model"] == "base" and line["prediction_id"] == \
            served.headers["X-Prediction-Id"]
    finally:
        server.stop()


def test_training_killed_half_way_leaves_previous_version_active(api_world, tmp_path):
    from app import create_app
    from app.extensions import db
    from app.modelstore import registry
    from app.recommender import artifact
    from app.playlists.holder import model_status

    db_path, model_dir, version = _copy_world(api_world, tmp_path)
    env = {**os.environ, "POZYTYWKA_CONFIG": "development", "DATABASE_URL": sqlite_url(db_path),
           "MODEL_DIR": str(model_dir), "INSTANCE_DIR": str(tmp_path), "CI": "true",
           "PREDICTIONS_LOG": str(tmp_path / "p.jsonl")}
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "model", "train",
                             "--epochs", "500"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # "training on N pairs ..." is printed before the first epoch
            seen.append(line)
            if line.startswith("training on") or time.monotonic() > deadline:
                break
        time.sleep(1.0)  # well into the epochs (500 would take far longer)
        assert proc.poll() is None, "training ended before it could be killed:\n" + "".join(seen)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert any(line.startswith("training on") for line in seen), "".join(seen)

    assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) == [version]
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": sqlite_url(db_path),
                                 "MODEL_DIR": str(model_dir)})
    with app.app_context():
        assert [v.version for v in registry.versions()] == [version]
        pointer = registry.active_pointer()
        assert pointer is not None and pointer[0] == version
        artifact.load(registry.artifact_folder(pointer[0], pointer[1], str(model_dir)),
                      expected_checksum=pointer[2])
        status = model_status()
        assert status["loaded"] and status["version"] == version and not status["error"]
        db.session.remove()
        db.engine.dispose()


# ----- a database locked by a long write -----

@pytest.fixture(scope="module")
def busy_server(api_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults_busy")
    db_path = api_world.copy_db(root)
    server = start_gunicorn(root, database_url=sqlite_url(db_path), model_dir=api_world.model_dir,
                            workers=1, env={"SQLITE_BUSY_TIMEOUT_MS": "500"})
    server.db_path = db_path
    yield server
    server.stop()


def test_locked_database_waits_busy_timeout_then_503(busy_server: GunicornServer):
    body = {"user_id": 110, "other_users": [111, 112], "playlist_length": 10}
    assert requests.post(busy_server.url + "/predict", json=body, timeout=30).status_code == 200
    lines_before = len(busy_server.log_lines())

    holder = sqlite3.connect(busy_server.db_path, timeout=5, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock ...
        holder.execute("UPDATE experiments SET salt = salt")
        for path, payload in (("/predict", body), ("/predict/advanced", body),
                              ("/predict/base", body)):
            started = time.perf_counter()
            response = requests.post(busy_server.url + path, json=payload, timeout=30)
            waited = time.perf_counter() - started
            assert response.status_code == 503, (path, response.status_code, response.text)
            error = response.json()
            assert error["error"] == "database_unavailable" and error["message"]
            assert response.headers.get("Retry-After")
            assert 0.4 <= waited < 5.0, f"{path} answered after {waited:.2f}s"
        holder.execute("ROLLBACK")  # ... and lets go
    finally:
        holder.close()
    response = requests.post(busy_server.url + "/predict", json=body, timeout=30)
    assert response.status_code == 200
    lines = busy_server.log_lines()
    assert len(lines) == lines_before + 1, "a request that failed must not be logged as served"
    assert len(prediction_rows(busy_server.db_path)) == len(lines)


def test_a_replaced_worker_reads_the_database_before_serving_the_masters_state(api_world,
                                                                               tmp_path):
    """The master loads the model once and forks workers with it (gunicorn.conf.py preloads the
    app). A worker forked later, to replace a dead one, must check the database before its
    first request instead of serving what the master loaded at its own start: here the active
    version's recorded checksum changes after the master loaded it, and with no background
    reload for an hour only the new worker's own check can notice."""
    db_path, model_dir, version = _copy_world(api_world, tmp_path)
    server = start_gunicorn(tmp_path / "srv", database_url=sqlite_url(db_path),
                            model_dir=model_dir, workers=1,
                            env={"MODEL_RELOAD_SECONDS": "3600"})
    try:
        assert requests.get(server.url + "/health", timeout=10).json()["status"] == "ok"
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE model_versions SET checksum = ? WHERE version = ?",
                         ("0" * 64, version))
        first, = server.worker_pids()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while server.worker_pids() in ([], [first]) and time.monotonic() < deadline:
            time.sleep(0.2)
        health = None
        while time.monotonic() < deadline:
            try:
                health = requests.get(server.url + "/health", timeout=10).json()
                break
            except requests.RequestException:
                time.sleep(0.2)
        # the recorded checksum no longer matches the files: the new worker has read that
        # (the master's state it was forked with said "ok")
        assert health is not None and health["reason"] == "model_error", health
    finally:
        server.stop()
