"""Whose address the limits count: the socket's, or the one ``PROXY_HOPS`` proxies vouch for.

Behind nginx every client arrived from the proxy's address, so one per-address limit held them
all; trusting ``X-Forwarded-For`` without a proxy would let each client pick a fresh address.
"""
from __future__ import annotations

from tests.support.apps import make_api_app

SEED = {"user_id": 123, "playlist_length": 5}


def _statuses(client, forwarded: list[str], proxy: str = "127.0.0.1") -> list[int]:
    return [client.post("/predict/base", json=SEED, environ_base={"REMOTE_ADDR": proxy},
                        headers={"X-Forwarded-For": f}).status_code for f in forwarded]


def test_without_a_proxy_the_header_is_ignored(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="2 per minute")
    assert app.config["PROXY_HOPS"] == 0
    forged = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    assert _statuses(app.test_client(), forged, proxy="198.51.100.9") == [200, 200, 429]


def test_behind_one_proxy_each_client_has_its_own_limit(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="2 per minute", PROXY_HOPS=1)
    client = app.test_client()
    assert _statuses(client, ["203.0.113.1"] * 3) == [200, 200, 429]
    assert _statuses(client, ["203.0.113.2"]) == [200]  # another client behind the same proxy
    # a client adding its own entry: nginx appends (or sets) the real one last, which counts
    assert _statuses(client, ["198.51.100.50, 203.0.113.1"]) == [429]
