"""The deployment of deploy/: Debian's nginx in front of gunicorn, and several app hosts
sharing one PostgreSQL and one Redis.

Why: gunicorn's sync workers read each request on the worker, so two clients that send half a
header and wait (slowloris) held the whole service for a minute. nginx, configured as shipped in
``deploy/nginx/pozytywka.conf``, buffers whole requests; these tests start it and gunicorn as
processes and attack them over loopback, bounded in sockets and seconds.
"""
from __future__ import annotations

import http.client
import re
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.support.proxy import start_nginx
from tests.support.servers import start_gunicorn
from tests.support.apps import sqlite_url

pytestmark = pytest.mark.slow

SEED = {"user_id": 123, "other_users": [124, 125, 126], "playlist_length": 10}
SLOW_HEADER = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\n")


def _slow_clients(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send a request line and a header or two, and never finish."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(SLOW_HEADER)
        sockets.append(sock)
    return sockets


def _drip(sockets: list[socket.socket], n: int) -> int:
    """One more header line on every socket still open (keeps a slowloris going); how many
    were still open."""
    alive = 0
    for sock in sockets:
        try:
            sock.sendall(f"X-Slow-{n}: 1\r\n".encode())
            alive += 1
        except OSError:
            pass
    return alive


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _timed_predict(url: str) -> tuple[int, float]:
    start = time.monotonic()
    response = requests.post(url + "/predict", json=SEED, timeout=(1, 1))
    return response.status_code, time.monotonic() - start


def _wait_healthy(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not recover")


@pytest.fixture
def proxied(api_world, tmp_path):
    """gunicorn (2 sync workers, as shipped) with nginx from deploy/ in front of it."""
    root = tmp_path / "app"
    db_path = api_world.copy_db(root)
    app_server = start_gunicorn(root, database_url=sqlite_url(db_path),
                                model_dir=api_world.model_dir, workers=2,
                                env={"PROXY_HOPS": "1"})
    try:
        proxy = start_nginx(app_server.port)
    except BaseException:
        app_server.stop()
        raise
    yield app_server, proxy
    proxy.stop()
    app_server.stop()


def test_slowloris_holds_bare_gunicorn_but_not_nginx(proxied):
    app_server, proxy = proxied
    assert _timed_predict(app_server.url)[0] == 200

    # The attack as measured: two slow sockets straight at gunicorn hold both sync workers.
    sockets = _slow_clients(app_server.port, 2)
    try:
        time.sleep(0.3)
        with pytest.raises(requests.Timeout):
            _timed_predict(app_server.url)
    finally:
        _close(sockets)  # the workers read EOF and are free again
    _wait_healthy(app_server.url)

    # Through nginx: 50 slow sockets stay open while /predict keeps answering within 1 s.
    sockets = _slow_clients(proxy.port, 50)
    try:
        timings = []
        started = time.monotonic()
        for n in range(12):
            assert _drip(sockets, n) == 50  # nginx still holds every slow client
            status, seconds = _timed_predict(proxy.url)
            timings.append((status, seconds))
            time.sleep(0.25)
        assert time.monotonic() - started < 30
    finally:
        _close(sockets)
    assert all(status == 200 for status, _ in timings), timings
    assert max(seconds for _, seconds in timings) < 1.0, timings


def _login_from(source: str, port: int, forged_for: str) -> int:
    """A failed admin login through nginx from the loopback address ``source``, claiming to
    be ``forged_for`` in its own X-Forwarded-For header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/admin/login", headers={"X-Forwarded-For": forged_for})
        page = conn.getresponse()
        html = page.read().decode()
        cookie = page.getheader("Set-Cookie", "").split(";")[0]
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        body = f"csrf_token={token}&username=intruder&password=guess"
        conn.request("POST", "/admin/login", body=body, headers={
            "Cookie": cookie, "X-Forwarded-For": forged_for,
            "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_the_app_sees_the_address_nginx_saw_never_the_clients_header(proxied):
    """nginx connects to gunicorn from 127.0.0.1; the client comes from 127.0.0.7 and forges
    X-Forwarded-For. With PROXY_HOPS=1 the app records 127.0.0.7: the rate limits and the
    audit lines key on the real client, and a forged header changes nothing."""
    app_server, proxy = proxied
    assert _login_from("127.0.0.7", proxy.port, "203.0.113.9") == 401
    deadline = time.monotonic() + 10
    while "failed admin login for 'intruder'" not in app_server.output():
        assert time.monotonic() < deadline, app_server.output()[-2000:]
        time.sleep(0.1)
    line = next(x for x in app_server.output().splitlines() if "'intruder'" in x)
    assert line.endswith("from 127.0.0.7"), line
    assert "203.0.113.9" not in app_server.output()


# ----- several app hosts: one PostgreSQL, one Redis -----

from tests.system.test_postgres import pg_world  # noqa: E402,F401  (the fixture)


@pytest.mark.postgres
def test_two_hosts_share_one_limit_and_one_experiment(pg_world, tmp_path):
    """Two gunicorn hosts (2 workers each) on one PostgreSQL and one Redis (Debian's
    redis-server): a client alternating between them gets the limit once, not once per host;
    a user keeps one arm on both, and feedback for a playlist served by one host is accepted
    and recorded by the other."""
    import secrets

    from sqlalchemy import func, select

    from app.db import Feedback
    from app.db.experiments import Assignment
    from app.extensions import db
    from tests.support.proxy import start_redis
    from tests.support.traffic import feedback_token

    app, url, model_dir = pg_world
    redis = start_redis(tmp_path / "redis")
    limit = 20
    # one API client calls both hosts (only a client's playlists are A/B evidence); its limit
    # is the one that must be shared. One SECRET_KEY: tokens from one host verify on both.
    env = {"RATELIMIT_STORAGE_URI": redis.url, "CLIENT_PREDICT_RATE_LIMIT": f"{limit} per minute",
           "SECRET_KEY": secrets.token_hex(32)}
    hosts = []
    try:
        hosts = [start_gunicorn(tmp_path / f"host{i}", database_url=url, model_dir=model_dir,
                                workers=2, env=env) for i in (1, 2)]
        auth = {"Authorization": f"Bearer {hosts[0].api_key('two-hosts')}"}
        served = []
        for user in range(271, 275):  # each user on both hosts: one arm
            pair = [requests.post(host.url + "/predict", timeout=30, headers=auth, json={
                "user_id": user, "other_users": [101], "playlist_length": 5}) for host in hosts]
            assert [r.status_code for r in pair] == [200, 200], [r.text for r in pair]
            assert pair[0].headers["X-AB-Arm"] == pair[1].headers["X-AB-Arm"]
            served.append((user, pair[0]))
        # feedback on host 2 for what host 1 served
        for user, response in served:
            answer = requests.post(hosts[1].url + "/feedback", timeout=30, headers=auth, json={
                "prediction_id": response.headers["X-Prediction-Id"], "user_id": user,
                "track_id": response.json()[0]["id"], "event_type": "like",
                "feedback_token": feedback_token(response, user)})
            assert answer.status_code == 201, answer.text
        # the rest of the limit, alternating hosts: exactly `limit` answers in all, then 429
        statuses = [200] * 8
        for i in range(limit):
            response = requests.post(hosts[i % 2].url + "/predict/base", timeout=30, headers=auth,
                                     json={"user_id": 101, "playlist_length": 5})
            statuses.append(response.status_code)
        assert statuses.count(200) == limit and statuses[limit:] == [429] * 8, statuses
        assert all(requests.post(host.url + "/predict", timeout=30, headers=auth,
                                 json=SEED).status_code == 429 for host in hosts)

        with app.app_context():
            arms = db.session.execute(select(Assignment.user_id, func.count())
                                      .where(Assignment.user_id.between(271, 274))
                                      .group_by(Assignment.user_id)).all()
            feedback = db.session.scalars(select(Feedback.prediction_id)).all()
            db.session.remove()
            db.engine.dispose()
        assert sorted(arms) == [(u, 1) for u in range(271, 275)]
        assert sorted(feedback) == sorted(r.headers["X-Prediction-Id"] for _, r in served)
        assert set(feedback) <= {line["prediction_id"] for line in hosts[0].log_lines()}
    finally:
        for host in hosts:
            host.stop()
        redis.stop()
