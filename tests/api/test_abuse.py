"""Hostile clients against the real server.

Why through gunicorn: body limits, chunked uploads and slow parsing are decided where the socket
is read; the in-process checks in test_api.py cannot see a server that buffers 50 MB before
saying no. Model files crafted to run code are in tests/recommender/test_artifact_safety.py.

Every test stands alone: the checks of the log and of the server's health "after abuse" use the
``abused_server`` fixture, which sends its own fuzzing, load and hostile bodies first, so they
hold whether the file runs whole, one test at a time, or in any order.
"""
from __future__ import annotations

import json
import os
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.apps import sqlite_url
from tests.support.servers import GunicornServer, start_gunicorn
from tests.support.traffic import random_predict

pytestmark = pytest.mark.slow

# Many examples per operation; SCHEMATHESIS_ABUSE_EXAMPLES overrides (e.g. 1000 for a long run).
ABUSE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_ABUSE_EXAMPLES", "200"))
POSTS = ("/predict", "/predict/base", "/predict/advanced", "/feedback")
# What ``abused_server`` sends before the "after abuse" checks (a short pass of each kind).
SETUP_FUZZ_EXAMPLES = 40
SETUP_PREDICTS = 48


@pytest.fixture(scope="module")
def abuse_server(api_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("abuse")
    server = start_gunicorn(root, database_url=sqlite_url(api_world.copy_db(root)),
                            model_dir=api_world.model_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def abuse_schema(abuse_server: GunicornServer):
    return schemathesis.openapi.from_url(abuse_server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("abuse_schema")


OVERSIZED = b"[" + b"1," * 100_000 + b"1]"


def _chunks():  # no Content-Length: the limit must hold while the stream is read
    for _ in range(64):
        yield b" " * 16_384


@pytest.fixture(scope="module")
def abused_server(abuse_server: GunicornServer, abuse_schema):
    """The server after abuse this fixture sends itself: a fuzzing pass over every operation,
    concurrent playlists from the small world's users (so the log has lines from both workers
    to check), oversized, chunked and pathological bodies. The checks that follow abuse use it,
    so they never depend on the fuzz test (or any other test here) having run first."""
    @given(case=abuse_schema.as_strategy())
    @settings(max_examples=SETUP_FUZZ_EXAMPLES, deadline=None, database=None,
              derandomize=True, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call(timeout=30)

    def client(seed: int) -> int:
        rng = random.Random(seed)
        with requests.Session() as session:
            return sum(random_predict(session, abuse_server.url, rng).status_code == 200
                       for _ in range(SETUP_PREDICTS // 4))

    fuzz()
    with ThreadPoolExecutor(4) as pool:
        served = sum(pool.map(client, range(4)))
    for path in POSTS:
        requests.post(abuse_server.url + path, data=OVERSIZED, timeout=30,
                      headers={"Content-Type": "application/json"})
        requests.post(abuse_server.url + path, data=_chunks(), timeout=30,
                      headers={"Content-Type": "application/json"})
    for body, _, _ in PATHOLOGICAL:
        requests.post(abuse_server.url + "/predict", data=body, timeout=30,
                      headers={"Content-Type": "application/json"})
    if served == 0 or not abuse_server.log_lines():
        pytest.fail(f"the abuse set-up served {served} playlists and logged none: the checks "
                    "after it would have nothing to check")
    return abuse_server


@schema.parametrize()
@settings(max_examples=ABUSE_EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_json_endpoint_over_http_conforms(case):
    """No 5xx and no answer outside the documented schema, over a real socket."""
    case.call_and_validate(timeout=30)


def test_log_stays_valid_after_fuzzing(abused_server: GunicornServer):
    lines = abused_server.log_lines()
    assert len({line["prediction_id"] for line in lines}) == len(lines)


# ----- bodies too large, too deep, too big to parse -----

def _timed_post(url: str, data, **kwargs) -> tuple[requests.Response, float]:
    started = time.perf_counter()
    response = requests.post(url, data=data, timeout=30,
                             headers={"Content-Type": "application/json"}, **kwargs)
    return response, time.perf_counter() - started


def _assert_error(response: requests.Response, status: int, error: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert body["error"] == error and body["message"]


@pytest.mark.parametrize("path", POSTS)
def test_oversized_bodies_are_413(abuse_server: GunicornServer, path: str):
    url = abuse_server.url + path
    response, took = _timed_post(url, OVERSIZED)
    _assert_error(response, 413, "payload_too_large")
    assert took < 1.0

    response, took = _timed_post(url, _chunks())
    _assert_error(response, 413, "payload_too_large")
    assert took < 1.0


def test_declared_huge_body_is_refused_before_it_is_sent(abuse_server: GunicornServer):
    """A client announcing 50 MB is answered 413 at once, without the server waiting for it."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", abuse_server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50000000\r\nConnection: close\r\n\r\n" + b"[" * 1000)
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.perf_counter() - started < 1.0


PATHOLOGICAL = [
    (b"[" * 100_000 + b"]" * 100_000, 413, "payload_too_large"),  # 100,000 nested arrays
    (b"[" * 30_000 + b"]" * 30_000, 400, "bad_request"),            # deep, within the size limit
    (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "bad_request"),  # deep objects
    (b'{"user_id": ' + b"9" * 5000 + b', "playlist_length": 5}', 400, "bad_request"),
    (json.dumps({"user_id": 101, "other_users": list(range(101, 10_101)),
                 "playlist_length": 5}).encode(), 422, "validation_error"),
    (json.dumps({"user_id": 101, "playlist_length": 5, "strategy": "x" * 60_000}).encode(),
     422, "validation_error"),
    (b'{"user_id": 101, "playlist_length": 1e999}', 422, "validation_error"),
    (b'\xff\xfe{"user_id": 101}', 400, "bad_request"),
]


@pytest.mark.parametrize("body, status, error", PATHOLOGICAL)
def test_pathological_json_is_rejected_quickly(abuse_server: GunicornServer, body, status,
                                                error):
    response, took = _timed_post(abuse_server.url + "/predict", body)
    _assert_error(response, status, error)
    assert took < 1.0, f"took {took:.2f}s"


def test_server_still_healthy_after_abuse(abused_server: GunicornServer):
    assert requests.get(abused_server.url + "/health", timeout=10).status_code == 200
    served = requests.post(abused_server.url + "/predict", timeout=30, json={
        "user_id": 123, "other_users": [124], "playlist_length": 5})
    assert served.status_code == 200 and len(served.json()) == 5
    assert "Traceback" not in abused_server.output()
