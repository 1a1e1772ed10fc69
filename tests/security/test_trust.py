"""Issue 12 (trust): forged and replayed feedback, built-in secret keys, admin sessions that
outlive logout or deletion, rate limits counted per process, login limits per name and address.

Every test here replays an attack that worked before the fix.
"""
from __future__ import annotations

import secrets
import os
import re
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests
from flask import Flask
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes
from sqlalchemy import func, select, text
from werkzeug.security import generate_password_hash

from app import create_app
from app.db import Feedback, Track
from app.extensions import db
from tests.support.apps import make_api_app, sqlite_url
from tests.support.paths import ROOT
from tests.support.servers import start_gunicorn
from tests.support.traffic import feedback_token

SEED = {"user_id": 123, "other_users": [124, 125, 126], "playlist_length": 10}
PASSWORD = "correct horse battery staple"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _log_in(client, username="admin", password=PASSWORD, addr="127.0.0.1"):
    page = client.get("/admin/login", environ_base={"REMOTE_ADDR": addr})
    return client.post("/admin/login", data={"csrf_token": _csrf(page.get_data(as_text=True)),
                                             "username": username, "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def _feedback_rows(app) -> list[tuple]:
    with app.app_context():
        return db.session.execute(select(Feedback.user_id, Feedback.track_id, Feedback.event_type,
                                         Feedback.ms_played)).all()


# ----- forged and replayed feedback -----

def test_feedback_tokens_are_itsdangerous_tokens_under_the_current_secret_key(api_app):
    """The signer is kept per app with its key derived once: its tokens must be exactly what
    itsdangerous's own signer (deriving the key every time) makes and accepts, and a new
    SECRET_KEY must end every token signed under the old one, as it did before the signer
    was kept."""
    import hashlib

    from itsdangerous import BadSignature, TimestampSigner

    from app.api import feedback_tokens

    def plain(secret):
        return TimestampSigner(secret, salt=feedback_tokens._SALT, digest_method=hashlib.sha256)

    old_secret = api_app.config["SECRET_KEY"]
    try:
        with api_app.app_context():
            token = feedback_tokens.issue("ab" * 16, 124)
            plain(old_secret).unsign(f"{'ab' * 16}:124.{token}", max_age=60)
            assert feedback_tokens.problem(token, "ab" * 16, 124) is None
            api_app.config["SECRET_KEY"] = secrets.token_hex(32)
            assert feedback_tokens.problem(token, "ab" * 16, 124) is not None
            renewed = feedback_tokens.issue("ab" * 16, 124)
            plain(api_app.config["SECRET_KEY"]).unsign(f"{'ab' * 16}:124.{renewed}", max_age=60)
            with pytest.raises(BadSignature):
                plain(old_secret).unsign(f"{'ab' * 16}:124.{renewed}")
    finally:
        api_app.config["SECRET_KEY"] = old_secret


def test_feedback_needs_the_members_own_token(api_app, api_client):
    """The attack: ids read from the public permalink, likes posted for someone else."""
    served = api_client.post("/predict", json=SEED)
    other = api_client.post("/predict", json={**SEED, "user_id": 150, "other_users": [151]})
    pid, track = served.headers["X-Prediction-Id"], served.get_json()[0]["id"]
    body = {"prediction_id": pid, "user_id": 124, "track_id": track, "event_type": "like",
            "ms_played": 0}

    missing = api_client.post("/feedback", json=body)
    assert missing.status_code == 422
    assert "feedback_token" in [p["field"] for p in missing.get_json()["details"]]
    from app.api import feedback_tokens
    with api_app.app_context():
        expired = feedback_tokens.issue(pid, 124, now=time.time() - 8 * 24 * 3600)
        issued, mac = feedback_tokens.issue(pid, 124).split(".")
    later = base64_encode(int_to_bytes(bytes_to_int(base64_decode(issued)) + 3600)).decode()
    forged = {
        "another member's": feedback_token(served, 125),
        "another prediction's": feedback_token(other, 150),
        "expired": expired,
        "re-dated": f"{later}.{mac}",
        "made up": "9999999999." + "A" * 43,
        "garbage": "not a token",
        "non-ASCII": "١٢٣.é",
    }
    for name, token in forged.items():
        response = api_client.post("/feedback", json={**body, "feedback_token": token})
        assert response.status_code == 403, name
        assert response.get_json()["error"] == "invalid_feedback_token", name
    assert _feedback_rows(api_app) == []

    good = api_client.post("/feedback", json={**body, "feedback_token": feedback_token(served, 124)})
    assert good.status_code == 201
    assert served.headers["X-Feedback-Token"] == feedback_token(served, 123)
    assert served.headers["Cache-Control"] == "no-store"


def test_replayed_feedback_counts_once_and_ms_played_is_capped(api_app, api_client):
    served = api_client.post("/predict/base", json=SEED)
    pid, track = served.headers["X-Prediction-Id"], served.get_json()[2]["id"]
    with api_app.app_context():
        duration = db.session.scalar(select(Track.duration_ms).where(Track.id == track))
    assert duration > 0
    body = {"prediction_id": pid, "user_id": 123, "track_id": track, "event_type": "play",
            "ms_played": 86_400_000, "feedback_token": served.headers["X-Feedback-Token"]}
    first = api_client.post("/feedback", json=body)
    assert first.status_code == 201 and first.get_json()["ms_played"] == duration
    for _ in range(50):
        again = api_client.post("/feedback", json={**body, "ms_played": 1})
        assert again.status_code == 200
        assert again.get_json() == first.get_json()  # the stored row, unchanged
    # another event type of the same track is a new fact
    assert api_client.post("/feedback", json={**body, "event_type": "like"}).status_code == 201
    assert sorted(_feedback_rows(api_app)) == [(123, track, "like", duration),
                                               (123, track, "play", duration)]


def test_permalinks_never_show_tokens(api_client):
    served = api_client.post("/predict", json=SEED)
    pid = served.headers["X-Prediction-Id"]
    secrets_ = [tok.split(".")[1] for tok in
                (feedback_token(served, u) for u in [123, 124, 125, 126])]
    for path in (f"/playlists/{pid}", f"/playlists/{pid}.json"):
        page = api_client.get(path)
        assert page.status_code == 200, path
        text_ = page.get_data(as_text=True)
        assert not any(mac in text_ for mac in secrets_), path


def test_migration_merges_duplicate_feedback(api_world, tmp_path):
    """0006 adds the unique key; rows replayed before it are merged, not a failed upgrade."""
    from flask_migrate import downgrade, upgrade

    app = make_api_app(api_world, tmp_path)
    client = app.test_client()
    served = client.post("/predict/base", json=SEED)
    pid, track = served.headers["X-Prediction-Id"], served.get_json()[0]["id"]
    with app.app_context():
        downgrade(revision="0005")
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for ms in (1000, 86_400_000, 5000):
            db.session.execute(text(
                "INSERT INTO feedback (prediction_id, user_id, track_id, event_type, ms_played, "
                "created_at) VALUES (:p, 123, :t, 'play', :ms, :now)"),
                {"p": pid, "t": track, "ms": ms, "now": now})
        db.session.execute(text(
            "INSERT INTO feedback (prediction_id, user_id, track_id, event_type, ms_played, "
            "created_at) VALUES (:p, 124, :t, 'play', 86400000, :now)"),
            {"p": pid, "t": track, "now": now})
        db.session.commit()
        db.session.remove()
        upgrade()
        duration = db.session.scalar(select(Track.duration_ms).where(Track.id == track))
        rows = db.session.execute(select(Feedback.user_id, Feedback.ms_played)
                                  .order_by(Feedback.user_id)).all()
        assert rows == [(123, 1000), (124, duration)]
        db.session.remove()
        db.engine.dispose()


# ----- rate limits on the API -----

def test_predict_and_feedback_are_rate_limited_per_address(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="3 per minute",
                       FEEDBACK_RATE_LIMIT="2 per minute")
    client = app.test_client()
    me, other = {"REMOTE_ADDR": "203.0.113.9"}, {"REMOTE_ADDR": "198.51.100.4"}
    statuses = [client.post(path, json=SEED, environ_base=me).status_code
                for path in ("/predict", "/predict/base", "/predict/advanced", "/predict")]
    assert statuses == [200, 200, 200, 429]  # the three endpoints count together
    blocked = client.post("/predict", json=SEED, environ_base=me)
    assert blocked.get_json()["error"] == "too_many_requests"
    assert int(blocked.headers["Retry-After"]) > 0
    served = client.post("/predict", json=SEED, environ_base=other)
    assert served.status_code == 200
    body = {"prediction_id": served.headers["X-Prediction-Id"], "user_id": 123,
            "track_id": served.get_json()[0]["id"], "event_type": "play",
            "feedback_token": served.headers["X-Feedback-Token"]}
    assert [client.post("/feedback", json=body, environ_base=me).status_code
            for _ in range(3)] == [201, 200, 429]


def test_sqlite_store_counts_across_processes(tmp_path):
    """Two processes hitting one key at once: every hit counted once, exactly `limit` pass."""
    script = (
        "import sys\n"
        "from app.security import ratelimit\n"
        "from limits import parse\n"
        "from limits.storage import storage_from_string\n"
        "from limits.strategies import FixedWindowRateLimiter\n"
        "lim = FixedWindowRateLimiter(storage_from_string(sys.argv[1]))\n"
        "item = parse('150 per hour')\n"
        "print(sum(lim.hit(item, 'shared') for _ in range(100)))\n"
    )
    uri = f"sqlite:///{tmp_path / 'limits.sqlite'}"
    procs = [subprocess.Popen([sys.executable, "-c", script, uri], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    passed = [int(proc.communicate(timeout=120)[0]) for proc in procs]
    assert sum(passed) == 150
    assert stat.S_IMODE(os.stat(tmp_path / "limits.sqlite").st_mode) == 0o600


def test_sqlite_store_answers_only_the_request_that_hit(api_world, tmp_path):
    """A request's rate-limit headers come from its own hit, without a query; after the request
    every read goes to the file and sees the other workers' hits. Fails if that answer outlives
    its request (the login limit's ``test`` would then read a stale count)."""
    import sqlite3

    from app.extensions import limiter
    from app.security.ratelimit import SQLiteStorage

    path = tmp_path / "limits.sqlite"
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="10 per minute",
                       RATELIMIT_STORAGE_URI=sqlite_url(path))
    client = app.test_client()
    first = client.post("/predict", json=SEED)
    assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "9"
    store = limiter.storage
    assert isinstance(store, SQLiteStorage)
    with sqlite3.connect(path) as conn:
        (key,) = [k for (k,) in conn.execute("SELECT key FROM rate_limits")]
    other_worker = SQLiteStorage(sqlite_url(path))
    for _ in range(4):
        other_worker.incr(key, 60)
    assert store.get(key) == 5 and store.get_expiry(key) > time.time()
    second = client.post("/predict", json=SEED)
    assert second.headers["X-RateLimit-Remaining"] == "4"
    assert int(second.headers["X-RateLimit-Reset"]) == int(first.headers["X-RateLimit-Reset"])


@pytest.mark.slow
def test_rate_limit_and_audit_lines_across_two_servers(api_world, tmp_path):
    """Two gunicorn masters (separate processes) share one limit; audit lines reach gunicorn's
    output. Before: each process counted alone, and INFO audit lines were dropped."""
    db_path = api_world.copy_db(tmp_path)
    env = {"RATELIMIT_STORAGE_URI": sqlite_url(tmp_path / "shared-limits.sqlite"),
           "PREDICT_RATE_LIMIT": "4 per minute", "SESSION_COOKIE_SECURE": "0",
           "ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD)}
    servers = [start_gunicorn(tmp_path / name, database_url=sqlite_url(db_path),
                              model_dir=api_world.model_dir, workers=1, env=env)
               for name in ("a", "b")]
    try:
        statuses = [requests.post(servers[i % 2].url + "/predict/base", json=SEED,
                                  timeout=30).status_code for i in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]
        session = requests.Session()
        page = session.get(servers[0].url + "/admin/login", timeout=30)
        response = session.post(servers[0].url + "/admin/login", timeout=30,
                                allow_redirects=False,
                                data={"csrf_token": _csrf(page.text), "username": "admin",
                                      "password": PASSWORD})
        assert response.status_code == 303
        deadline = time.monotonic() + 10
        while "[AUDIT] admin login: admin" not in servers[0].output():
            assert time.monotonic() < deadline, servers[0].output()[-2000:]
            time.sleep(0.1)
    finally:
        for server in servers:
            server.stop()


# ----- the secret key -----

def _dev_app(tmp_path, **overrides):
    from flask_migrate import upgrade

    config = {"SQLALCHEMY_DATABASE_URI": sqlite_url(tmp_path / "dev.db"),
              "SECRET_KEY_FILE": str(tmp_path / "instance" / "secret_key"),
              "RATELIMIT_STORAGE_URI": sqlite_url(tmp_path / "limits.sqlite"),
              "MODEL_DIR": str(tmp_path / "models"),
              "PREDICTIONS_LOG": str(tmp_path / "predictions.jsonl"),
              "SESSION_COOKIE_SECURE": False,
              "ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD)}
    config.update(overrides)
    app = create_app("development", config)
    with app.app_context():
        upgrade()
    return app


def _signed_session(secret_key: str, payload: dict) -> str:
    forger = Flask("forger")
    forger.secret_key = secret_key
    return forger.session_interface.get_signing_serializer(forger).dumps(payload)


def test_default_config_refuses_a_cookie_signed_with_the_built_in_key(tmp_path):
    """The configuration scripts/demo.sh and scripts/serve.sh run, with no SECRET_KEY set."""
    app = _dev_app(tmp_path)  # SECRET_KEY from config.py's default, as in the demo
    client = app.test_client()
    forged = _signed_session("dev-only-not-secret", {
        "admin_user": "admin", "admin_since": datetime.now(timezone.utc)
        .replace(tzinfo=None).isoformat()})
    client.set_cookie("session", forged)
    assert client.get("/admin/").status_code == 302
    assert len(app.config["SECRET_KEY"].encode()) >= 32
    if not os.environ.get("SECRET_KEY"):  # generated once, owner-only, then reused
        key_file = tmp_path / "instance" / "secret_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() == app.config["SECRET_KEY"]
        assert _dev_app(tmp_path).config["SECRET_KEY"] == app.config["SECRET_KEY"]


@pytest.mark.parametrize("name", ["development", "production"])
@pytest.mark.parametrize("key", ["dev-only-not-secret", "testing-secret", "x" * 31])
def test_non_test_configs_refuse_weak_keys(tmp_path, name, key):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(name, {"SECRET_KEY": key, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                          "SECRET_KEY_FILE": str(tmp_path / "k")})


def test_production_reads_a_key_file_but_never_creates_one(tmp_path):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production", {"SECRET_KEY": "", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                                  "SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert not (tmp_path / "missing").exists()
    key = secrets.token_hex(32)
    (tmp_path / "key").write_text(key + "\n")
    app = create_app("production", {"SECRET_KEY": "", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                                    "SECRET_KEY_FILE": str(tmp_path / "key")})
    assert app.config["SECRET_KEY"] == key


def test_dockerfile_and_demo_cookie_switch():
    """Secure cookies unless switched off on purpose: only the plain-HTTP demo does."""
    dockerfile = [line for line in (ROOT / "Dockerfile").read_text().splitlines()
                  if not line.lstrip().startswith("#")]
    assert not any("SESSION_COOKIE_SECURE" in line for line in dockerfile)
    assert "SESSION_COOKIE_SECURE=${SESSION_COOKIE_SECURE:-0}" in \
        (ROOT / "scripts" / "demo.sh").read_text()
    app = create_app("development", {"SECRET_KEY": secrets.token_hex(32), "SQLALCHEMY_DATABASE_URI":
                                     "sqlite://"})
    assert app.config["SESSION_COOKIE_SECURE"] is (os.environ.get("SESSION_COOKIE_SECURE",
                                                                  "1") == "1")


# ----- admin sessions end -----

def _cli(app, *args, stdin: str | None = None):
    result = app.test_cli_runner().invoke(args=list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result


def _activate_attempt(client, app) -> int:
    page = client.get("/admin/models")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      page.get_data(as_text=True))
    data = {"csrf_token": token.group(1)} if token else {}
    return client.post("/admin/models/no-such-version/activate", data=data).status_code


def test_logout_ends_every_copy_of_the_session(tmp_path):
    app = _dev_app(tmp_path)
    client = app.test_client()
    assert _log_in(client).status_code == 303
    saved = client.get_cookie("session").value
    assert client.get("/admin/").status_code == 200
    page = client.get("/admin/").get_data(as_text=True)
    assert client.post("/admin/logout", data={"csrf_token": _csrf(page)}).status_code == 303
    thief = app.test_client()
    thief.set_cookie("session", saved)
    assert thief.get("/admin/").status_code == 302
    # logging in again works, with a new session
    assert _log_in(client).status_code == 303 and client.get("/admin/").status_code == 200


def test_deleted_user_and_changed_password_end_sessions(tmp_path):
    app = _dev_app(tmp_path, ADMIN_PASSWORD_HASH="")
    _cli(app, "admin", "create-user", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    alice = app.test_client()
    assert _log_in(alice, "alice").status_code == 303
    assert alice.get("/admin/").status_code == 200
    _cli(app, "admin", "create-user", "alice", "--update", "--password-stdin",
         stdin="a brand new password\n")
    assert alice.get("/admin/").status_code == 302

    assert _log_in(alice, "alice", "a brand new password").status_code == 303
    saved = alice.get_cookie("session").value
    _cli(app, "admin", "delete-user", "alice")
    assert alice.get("/admin/").status_code == 302
    assert _activate_attempt(alice, app) in (302, 400)  # not 404: the view never ran
    # re-created under the same name: the old cookie still opens nothing
    _cli(app, "admin", "create-user", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    replay = app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/admin/").status_code == 302


def test_signed_cookie_for_a_name_that_is_no_admin(tmp_path):
    """Even with the real key (a leaked one), a session must name a real admin."""
    app = _dev_app(tmp_path)
    client = app.test_client()
    forged = _signed_session(app.config["SECRET_KEY"], {
        "admin_user": "mallory", "admin_version": 0, "admin_account": "user:1",
        "admin_since": datetime.now(timezone.utc).replace(tzinfo=None).isoformat()})
    client.set_cookie("session", forged)
    assert client.get("/admin/").status_code == 302


# ----- login limits: failures only, per address and per user name -----

def test_login_failures_count_per_name_and_per_address(tmp_path):
    app = _dev_app(tmp_path, ADMIN_LOGIN_ADDRESS_RATE_LIMIT="4 per minute",
                   ADMIN_LOGIN_USER_RATE_LIMIT="6 per minute", ADMIN_PASSWORD_HASH="")
    for name in ("alice", "bob"):
        _cli(app, "admin", "create-user", name, "--password-stdin", stdin=PASSWORD + "\n")

    def attempt(name: str, password: str = PASSWORD, addr: str = "127.0.0.1") -> int:
        return _log_in(app.test_client(), name, password, addr).status_code

    # successful logins do not count against anyone
    assert [attempt("bob", addr="192.0.2.1") for _ in range(8)] == [303] * 8
    # one address, many names: blocked at the address limit, whatever the name
    spray = [attempt(f"user{i}", "guess", addr="192.0.2.2") for i in range(5)]
    assert spray == [401, 401, 401, 401, 429]
    assert attempt("bob", addr="192.0.2.2") == 429
    # one name, many addresses: blocked at the name limit, from any address
    guesses = [attempt("alice", "guess", addr=f"198.51.100.{i}")
               for i in range(7)]
    assert guesses == [401] * 6 + [429]
    assert attempt("Alice ", addr="198.51.100.99") == 429
    # neither lock blocks another name from another address
    assert attempt("bob", addr="198.51.100.100") == 303
