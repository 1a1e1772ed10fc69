"""The API behind a real gunicorn (2 workers): the seed's curl request, load, concurrent users."""
from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.paths import ROOT, SHARED
from tests.support.servers import serve_world
from tests.support.traffic import prediction_rows, random_predict

pytestmark = pytest.mark.slow

# Verbatim from the seed README ("Make recommendations"); only the host:port is substituted.
SEED_CURL = """curl -X 'POST' \\
    'http://localhost:8081/predict' \\
    -H 'accept: application/json' \\
    -H 'Content-Type: application/json' \\
    -d '{
    "user_id": 123,
    "other_users": [
      124, 125, 126, 127, 128
    ],
    "playlist_length": 20
}'"""


@pytest.fixture(scope="module")
def server(api_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("gunicorn")
    srv = serve_world(api_world, root)
    yield srv
    srv.stop()


def rows(server) -> list[tuple]:
    return prediction_rows(server.db_path, "id, model, arm, is_ab")


def test_gunicorn_config_defaults_to_port_8081_and_reads_workers_from_env(monkeypatch):
    for name in ("HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    config: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), config)
    assert config["bind"] == "127.0.0.1:8081" and config["workers"] == 2
    assert config["preload_app"] is True  # the master loads once, the workers fork with it
    monkeypatch.setenv("GUNICORN_PRELOAD", "0")
    exec((ROOT / "gunicorn.conf.py").read_text(), config)
    assert config["preload_app"] is False
    monkeypatch.delenv("GUNICORN_PRELOAD")
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    monkeypatch.setenv("HOST", "0.0.0.0")
    exec((ROOT / "gunicorn.conf.py").read_text(), config)
    assert config["workers"] == 5 and config["bind"] == "0.0.0.0:8081"


def test_an_access_log_to_dev_null_is_off(monkeypatch):
    """gunicorn formats each access line for any path, /dev/null too: that value means off."""
    config: dict = {}
    for value, expected in (("/dev/null", None), ("off", None), ("", None), ("-", "-"),
                            ("/var/log/p.log", "/var/log/p.log")):
        monkeypatch.setenv("GUNICORN_ACCESSLOG", value)
        exec((ROOT / "gunicorn.conf.py").read_text(), config)
        assert config["accesslog"] == expected, value
    monkeypatch.delenv("GUNICORN_ACCESSLOG")
    exec((ROOT / "gunicorn.conf.py").read_text(), config)
    assert config["accesslog"] == "-"


def test_a_started_worker_keeps_its_start_up_objects_out_of_full_collections():
    """A full collection walked every object the worker loaded (a pause of tens of ms on some
    request); after ``post_worker_init`` they are frozen, even when the model warm-up failed."""
    import gc

    config: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), config)

    class Worker:  # no app: the warm-up fails, is logged, and the worker still freezes
        wsgi = None
        pid = 0
        log = None

    assert gc.get_freeze_count() == 0
    try:
        config["post_worker_init"](Worker())
        assert gc.get_freeze_count() > 10_000  # every module and object loaded so far
    finally:
        gc.unfreeze()


def test_seed_readme_still_has_this_request():
    readme = SHARED / "seed" / "README.md"
    if not readme.exists():
        pytest.skip("../shared/seed/README.md is not next to this checkout")
    assert SEED_CURL in readme.read_text()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_seed_curl_example_works_as_written(server):
    command = SEED_CURL.replace("http://localhost:8081", f"http://localhost:{server.port}")
    result = subprocess.run(["bash", "-c", command + " --silent --show-error"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    tracks = json.loads(result.stdout)
    assert isinstance(tracks, list) and len(tracks) == 20
    assert all(list(t) == ["id", "name", "artist"] and all(isinstance(v, str) and v
                                                           for v in t.values()) for t in tracks)
    assert len({t["id"] for t in tracks}) == 20
    line = server.log_lines()[-1]
    assert line["user_id"] == 123 and line["other_users"] == [124, 125, 126, 127, 128]
    assert line["playlist"] == [t["id"] for t in tracks] and line["is_ab"] is True


def test_headers_over_http(server):
    response = requests.post(server.url + "/predict", timeout=10, json={
        "user_id": 130, "other_users": [131], "playlist_length": 5})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Prediction-Id"])
    assert response.headers["X-AB-Arm"] == response.headers["X-Model"]
    wrong = requests.get(server.url + "/predict", timeout=10)
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert wrong.json()["error"] == "method_not_allowed"
    big = requests.post(server.url + "/predict", data=b"{" + b" " * 200_000 + b"}",
                        headers={"Content-Type": "application/json"}, timeout=10)
    assert big.status_code == 413 and big.json()["error"] == "payload_too_large"


def test_concurrent_first_requests_over_http_store_one_assignment(server):
    users = [290, 291, 292, 293, 294]  # untouched by the other tests of this module
    barrier = threading.Barrier(8)
    key = server.api_key("concurrent-backend")  # only a trusted call stores an assignment

    def first_request(user: int) -> str:
        barrier.wait()
        response = requests.post(server.url + "/predict", timeout=30, json={
            "user_id": user, "other_users": [], "playlist_length": 5},
            headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        return response.headers["X-AB-Arm"]

    for user in users:
        with ThreadPoolExecutor(8) as pool:
            arms = list(pool.map(first_request, [user] * 8))
        assert len(set(arms)) == 1
    with sqlite3.connect(server.db_path, timeout=30) as conn:
        rows = conn.execute(
            "SELECT user_id, count(*), min(arm) FROM assignments WHERE user_id BETWEEN 290 "
            "AND 294 GROUP BY user_id").fetchall()
    assert [(u, n) for u, n, _ in rows] == [(u, 1) for u in users]


def test_8_clients_x_200_requests(server):
    """Zero 5xx; afterwards log lines = database rows = served requests, every line JSON."""
    served_before = len(rows(server))

    def client(seed: int) -> Counter:
        rng = random.Random(seed)
        statuses: Counter = Counter()
        with requests.Session() as session:
            for _ in range(200):
                response = random_predict(session, server.url, rng, max_members=10)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    assert len(response.json()) in (5, 10, 20)
        return statuses

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        totals = sum(pool.map(client, range(8)), Counter())
    elapsed = time.perf_counter() - started
    print(f"\n1,600 requests in {elapsed:.1f}s ({1600 / elapsed:.0f}/s): {dict(totals)}")
    assert not [code for code in totals if code >= 500]
    assert totals == Counter({200: 1600})

    stored, lines = rows(server), server.log_lines()  # log_lines fails on a torn line
    assert len(stored) == served_before + 1600
    assert len(lines) == len(stored)
    assert {line["prediction_id"] for line in lines} == {row[0] for row in stored}
