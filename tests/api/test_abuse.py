"""Hostile clients against the real server, and model files crafted to run code.

Why through gunicorn: body limits, chunked uploads and slow parsing are decided where the socket
is read; the in-process checks in test_api.py cannot see a server that buffers 50 MB before
saying no. Why a crafted artifact with a *valid* checksum: the checksum protects against
accidents, while ``allow_pickle=False`` is what protects against an attacker who can write to
the model store and recompute it; this test removes the first guard to prove the second.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import GunicornServer, sqlite_url, start_gunicorn

pytestmark = pytest.mark.slow

# Many examples per operation; SCHEMATHESIS_ABUSE_EXAMPLES overrides (e.g. 1000 for a long run).
ABUSE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_ABUSE_EXAMPLES", "200"))
POSTS = ("/predict", "/predict/base", "/predict/advanced", "/feedback")


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


@schema.parametrize()
@settings(max_examples=ABUSE_EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_json_endpoint_over_http_conforms(case):
    """No 5xx and no answer outside the documented schema, over a real socket."""
    case.call_and_validate(timeout=30)


def test_log_stays_valid_after_fuzzing(abuse_server: GunicornServer):
    lines = abuse_server.log_lines()
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
    response, took = _timed_post(url, b"[" + b"1," * 100_000 + b"1]")
    _assert_error(response, 413, "payload_too_large")
    assert took < 1.0

    def chunks():  # no Content-Length: the limit must hold while the stream is read
        for _ in range(64):
            yield b" " * 16_384

    response, took = _timed_post(url, chunks())
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


@pytest.mark.parametrize("body, status, error", [
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
])
def test_pathological_json_is_rejected_quickly(abuse_server: GunicornServer, body, status,
                                                error):
    response, took = _timed_post(abuse_server.url + "/predict", body)
    _assert_error(response, status, error)
    assert took < 1.0, f"took {took:.2f}s"


def test_server_still_healthy_after_abuse(abuse_server: GunicornServer):
    assert requests.get(abuse_server.url + "/health", timeout=10).status_code == 200
    served = requests.post(abuse_server.url + "/predict", timeout=30, json={
        "user_id": 123, "other_users": [124], "playlist_length": 5})
    assert served.status_code == 200 and len(served.json()) == 5
    assert "Traceback" not in abuse_server.output()


# ----- model files are data, never code -----

class _Payload:
    """Unpickling this would create the sentinel file: proof that code ran."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def _rewrite_arrays(folder: Path, replace: dict[str, bytes]) -> None:
    """Swap members of arrays.npz and re-sign meta.json, as an attacker with write access
    to the model store could: the checksum then passes and only allow_pickle=False remains."""
    arrays = folder / "arrays.npz"
    with zipfile.ZipFile(arrays) as src:
        members = {name: src.read(name) for name in src.namelist()}
    members.update(replace)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    arrays.write_bytes(buf.getvalue())
    meta = json.loads((folder / "meta.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta, separators=(",", ":")))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("member", ["user_bias.npy", "item_vectors.npy"])
def test_object_array_in_artifact_is_refused_not_unpickled(trained_small, tmp_path, member):
    from app.recommender import artifact

    art = artifact.save(trained_small, tmp_path / "models")
    sentinel = tmp_path / "code-ran"
    payload = np.empty(3, dtype=object)
    payload[:] = [_Payload(sentinel), 1.0, 2.0]
    _rewrite_arrays(art.path, {member: _npy(payload)})
    with pytest.raises(artifact.ArtifactError, match="(?i)pickle|object"):
        artifact.load(art.path)
    assert not sentinel.exists(), "loading the artifact executed code from it"


def test_artifact_failing_its_recorded_checksum_is_refused(trained_small, tmp_path):
    """Consistent arrays + meta.json that differ from what the database recorded at training."""
    from app.recommender import artifact

    art = artifact.save(trained_small, tmp_path / "models")
    with zipfile.ZipFile(art.path / "arrays.npz") as src:
        bias = np.load(io.BytesIO(src.read("item_bias.npy")), allow_pickle=False)
    _rewrite_arrays(art.path, {"item_bias.npy": _npy(bias + 10.0)})  # "boost my tracks"
    artifact.load(art.path)  # self-consistent on its own ...
    with pytest.raises(artifact.ArtifactError, match="checksum"):
        artifact.load(art.path, expected_checksum=art.checksum)  # ... but not what was trained
