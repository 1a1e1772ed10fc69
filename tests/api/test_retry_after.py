"""Retry-After means "come back later": only refusals (429, 503) carry it, successes never,
although Flask-Limiter's headers add it to every answer under a limit."""
from __future__ import annotations

from tests.support.apps import make_api_app

BODY = {"user_id": 123, "other_users": [124, 125], "playlist_length": 10}


def test_retry_after_only_on_429_and_503(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="2 per minute")
    client = app.test_client()
    served = [client.post("/predict/advanced", json=BODY) for _ in range(2)]
    assert [r.status_code for r in served] == [200, 200]
    for response in served:
        assert "Retry-After" not in response.headers, dict(response.headers)
        assert response.headers.get("X-RateLimit-Limit") == "2"  # the limiter's headers stay
    refused = client.post("/predict/advanced", json=BODY)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # the pages too: a successful page under the login limit carries none
    login = client.get("/admin/login")
    assert login.status_code == 200 and "Retry-After" not in login.headers
