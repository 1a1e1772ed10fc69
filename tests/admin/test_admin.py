"""Admin pages through Flask's test client: login, CSRF, rate limit, every page and form."""
from __future__ import annotations

import secrets
import re

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app import create_app
from app.db import AdminUser, Assignment, Experiment, ModelVersion, Prediction
from app.experiments import assignment
from app.extensions import db
from tests.support.apps import make_app
from tests.support.factories import populate_tiny_experiment
from tests.support.pages import ADMIN_PASSWORD as PASSWORD
from tests.support.pages import csrf_token, login
from tests.support.traffic import client_headers

SEED = {"user_id": 123, "other_users": [124, 125, 126], "playlist_length": 20}
PAGES = ["/admin/", "/admin/predictions", "/admin/models", "/admin/experiments"]


def test_every_admin_page_requires_login(client):
    for url in PAGES + ["/admin/predictions/" + "0" * 32]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/admin/login?next=/admin")
    for url in ["/admin/models/x/activate", "/admin/experiments/1/weights"]:
        page = client.get("/admin/login").get_data(as_text=True)
        response = client.post(url, data={"csrf_token": csrf_token(page)})
        assert response.status_code == 302, url


def test_wrong_password_and_unknown_user_are_refused(client):
    wrong = login(client, password="not the password")
    assert wrong.status_code == 401
    assert "Wrong user name or password." in wrong.get_data(as_text=True)
    assert login(client, username="root").status_code == 401
    assert client.get("/admin/").status_code == 302


def test_login_redirects_to_next_but_never_off_site(client):
    response = login(client, next_url="/admin/models")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/models"
    client.get("/admin/logout")  # GET does nothing
    assert client.get("/admin/models").status_code == 200
    for target in ("https://evil.example/admin", "//evil.example/admin", "/elsewhere"):
        fresh = client.application.test_client()
        page = fresh.get("/admin/login").get_data(as_text=True)
        response = fresh.post(f"/admin/login?next={target}",
                              data={"csrf_token": csrf_token(page), "username": "admin",
                                    "password": PASSWORD})
        assert response.headers["Location"] == "/admin/", target


def test_logout_needs_a_post_with_token(logged_in):
    assert logged_in.get("/admin/logout").status_code == 405
    assert logged_in.post("/admin/logout").status_code == 400  # no CSRF token
    page = logged_in.get("/admin/").get_data(as_text=True)
    response = logged_in.post("/admin/logout", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert logged_in.get("/admin/").status_code == 302


def test_csrf_rejection(client):
    response = client.post("/admin/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "did not come from this site" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    # with a token from another session the form is refused as well
    other = client.application.test_client()
    token = csrf_token(other.get("/admin/login").get_data(as_text=True))
    forged = client.post("/admin/login", data={"csrf_token": token, "username": "admin",
                                               "password": PASSWORD})
    assert forged.status_code == 400


def test_login_attempts_are_rate_limited(client):
    statuses = [login(client, password=f"guess {i}").status_code for i in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    blocked = login(client)  # even the right password waits
    assert blocked.status_code == 429 and "Too many" in blocked.get_data(as_text=True)
    assert blocked.headers.get("Retry-After")


def test_database_admin_user_from_the_cli(admin_app):
    runner = admin_app.test_cli_runner()
    result = runner.invoke(args=["admin", "create-user", "alice", "--password-stdin"],
                           input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    again = runner.invoke(args=["admin", "create-user", "alice", "--password-stdin"],
                          input="a long enough secret\n")
    assert again.exit_code != 0 and "exists" in again.output
    short = runner.invoke(args=["admin", "create-user", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least" in short.output
    with admin_app.app_context():
        stored = db.session.scalar(select(AdminUser).where(AdminUser.username == "alice"))
        assert stored.password_hash.startswith(("scrypt:", "pbkdf2:"))
        assert "a long enough secret" not in stored.password_hash
    client = admin_app.test_client()
    assert login(client, "alice", "a long enough secret").status_code == 303
    assert client.get("/admin/").status_code == 200
    listed = runner.invoke(args=["admin", "list-users"])
    assert "alice" in listed.output and "never" not in listed.output
    hashed = runner.invoke(args=["admin", "hash-password", "--password-stdin"],
                           input="another long secret\n")
    assert hashed.exit_code == 0 and hashed.output.strip().startswith(("scrypt:", "pbkdf2:"))


def test_no_default_password_in_production(monkeypatch):
    """Production ships no password: without ADMIN_PASSWORD_HASH or a created user, no login."""
    monkeypatch.delenv("ADMIN_PASSWORD_HASH", raising=False)
    app = create_app("production", {"SECRET_KEY": secrets.token_hex(32),
                                    "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["ADMIN_PASSWORD_HASH"] == ""
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    with app.app_context():
        db.create_all()
        from app.admin.auth import check_credentials, login_configured

        with app.test_request_context():
            assert not login_configured()
            for guess in ("admin", "", "password", "changeme"):
                assert check_credentials("admin", guess) is None
        page = app.test_client().get("/admin/login")
        assert "No admin account is set up" in page.get_data(as_text=True)
        cookie = page.headers.get("Set-Cookie", "")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _traffic(app, n: int = 24) -> list[str]:
    """Real /predict requests (both arms) and some feedback, through the API."""
    client = app.test_client()
    headers = client_headers(app, f"backend-{n}")  # a trusted client: its playlists count
    ids = []
    for i in range(n):
        body = dict(SEED, user_id=101 + i * 3, other_users=[102 + i * 3, 103 + i * 3])
        response = client.post("/predict", json=body, headers=headers)
        assert response.status_code == 200
        pid = response.headers["X-Prediction-Id"]
        ids.append(pid)
        if i % 2 == 0:
            for track in response.get_json()[:12]:
                client.post("/feedback", json={"prediction_id": pid, "user_id": body["user_id"],
                                               "track_id": track["id"], "event_type": "play",
                                               "ms_played": 600_000, "feedback_token":
                                               response.headers["X-Feedback-Token"]},
                            headers=headers)
    return ids


def test_dashboard_shows_both_arms_with_statistics(admin_app, logged_in):
    _traffic(admin_app)
    html = logged_in.get("/admin/").get_data(as_text=True)
    assert 'data-arm="base"' in html and 'data-arm="advanced"' in html
    with admin_app.app_context():
        served = dict(db.session.execute(
            select(Prediction.arm, db.func.count()).group_by(Prediction.arm)).all())
    for arm in ("base", "advanced"):
        card = re.search(rf'data-arm="{arm}".*?</article>', html, re.S).group(0)
        assert f"<dt>Playlists</dt><dd>{served[arm]}<span" in card
        assert "Latency p50" in card and "Success rate" in card and "Skip rate" in card
    # fresh playlists are pending (their 20-session window is open): no rate, no verdict yet
    assert 'id="verdict-advanced"' in html and "not enough data yet" in html
    assert 'id="srm-verdict"' in html
    assert html.count("<svg class=\"chart\"") == 2 and "Success rate per day" in html
    assert "<script>" not in html and " style=" not in html


def test_predictions_list_filters_and_detail(admin_app, logged_in):
    ids = _traffic(admin_app, 8)
    page = logged_in.get("/admin/predictions").get_data(as_text=True)
    assert page.count('href="/admin/predictions/') == 8
    with admin_app.app_context():
        rows = db.session.scalars(select(Prediction)).all()
        base = sum(1 for r in rows if r.arm == "base")
        day = rows[0].created_at.date().isoformat()
    by_arm = logged_in.get("/admin/predictions?arm=base").get_data(as_text=True)
    assert by_arm.count('href="/admin/predictions/') == base
    by_model = logged_in.get("/admin/predictions?model=advanced").get_data(as_text=True)
    assert by_model.count('href="/admin/predictions/') == 8 - base
    member = logged_in.get("/admin/predictions?user=105").get_data(as_text=True)  # 2nd group
    assert member.count('href="/admin/predictions/') == 1
    dated = logged_in.get(f"/admin/predictions?date_from={day}&date_to={day}")
    assert dated.get_data(as_text=True).count('href="/admin/predictions/') == 8
    before = logged_in.get("/admin/predictions?date_to=2000-01-01").get_data(as_text=True)
    assert "No predictions." in before
    assert "Dates are written" in logged_in.get(
        "/admin/predictions?date_from=yesterday").get_data(as_text=True)

    detail = logged_in.get(f"/admin/predictions/{ids[0]}")
    html = detail.get_data(as_text=True)
    assert detail.status_code == 200 and ids[0] in html
    assert 'id="outcome-verdict"' in html and "success" in html  # 12 tracks played in full
    assert html.count('<td class="num muted">') == 20 and "Feedback received" in html
    assert logged_in.get("/admin/predictions/" + "f" * 32).status_code == 404


def test_model_activation_and_rollback(admin_app, logged_in):
    with admin_app.app_context():
        current = db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
        older = ModelVersion(version="20200101-000000-old", created_at=current.created_at,
                             params={"epochs": 1}, metrics={"lightfm": {"precision@10": 0.1}},
                             data_counts={"users": 1}, path=current.path,
                             checksum=current.checksum, active=False)
        db.session.add(older)
        db.session.commit()
        current_version = current.version
    page = logged_in.get("/admin/models").get_data(as_text=True)
    assert current_version in page and "20200101-000000-old" in page
    assert "lightfm / precision@10" in page
    token = csrf_token(page)
    assert logged_in.post("/admin/models/20200101-000000-old/activate").status_code == 400
    response = logged_in.post("/admin/models/20200101-000000-old/activate",
                              data={"csrf_token": token})
    assert response.status_code == 303
    with admin_app.app_context():
        active = db.session.scalars(select(ModelVersion.version)
                                    .where(ModelVersion.active.is_(True))).all()
        assert active == ["20200101-000000-old"]
    assert "now active" in logged_in.get("/admin/models").get_data(as_text=True)
    logged_in.post(f"/admin/models/{current_version}/activate", data={"csrf_token": token})
    with admin_app.app_context():
        assert db.session.scalars(select(ModelVersion.version)
                                  .where(ModelVersion.active.is_(True))).all() == [current_version]
    assert logged_in.post("/admin/models/nope/activate",
                          data={"csrf_token": token}).status_code == 404


def test_weights_change_never_moves_assigned_users(admin_app, logged_in):
    _traffic(admin_app, 6)
    with admin_app.app_context():
        exp = db.session.scalar(select(Experiment).where(Experiment.active.is_(True)))
        before = dict(db.session.execute(select(Assignment.user_id, Assignment.arm)).all())
        exp_id = exp.id
    page = logged_in.get("/admin/experiments").get_data(as_text=True)
    assert 'name="weight-base"' in page and 'name="weight-advanced"' in page
    token = csrf_token(page)
    assert logged_in.post(f"/admin/experiments/{exp_id}/weights",
                          data={"weight-base": "0", "weight-advanced": "1"}).status_code == 400
    response = logged_in.post(f"/admin/experiments/{exp_id}/weights",
                              data={"csrf_token": token, "weight-base": "0",
                                    "weight-advanced": "1"})
    assert response.status_code == 303
    assert "keeps their arm" in logged_in.get("/admin/experiments").get_data(as_text=True)
    with admin_app.app_context():
        exp = db.session.get(Experiment, exp_id)
        assert dict(assignment.arm_weights(exp)) == {"base": 0.0, "advanced": 1.0}
        after = dict(db.session.execute(select(Assignment.user_id, Assignment.arm)).all())
        assert after == before and "base" in before.values()
    # a new user now lands in advanced; an assigned base user stays in base
    api = admin_app.test_client()
    base_user = next(u for u, arm in before.items() if arm == "base")
    assert api.post("/predict", json=dict(SEED, user_id=base_user)).headers["X-AB-Arm"] == "base"
    assert api.post("/predict", json=dict(SEED, user_id=299)).headers["X-AB-Arm"] == "advanced"
    # invalid weights are refused with a message and change nothing
    for bad in ({"weight-base": "-1", "weight-advanced": "1"},
                {"weight-base": "abc", "weight-advanced": "1"},
                {"weight-base": "inf", "weight-advanced": "1"},
                {"weight-base": "", "weight-advanced": "1"},
                {"weight-advanced": "1"},
                {"weight-base": "0", "weight-advanced": "0"}):
        logged_in.post(f"/admin/experiments/{exp_id}/weights", data={"csrf_token": token, **bad})
        assert "alert-error" in logged_in.get("/admin/experiments").get_data(as_text=True)
    with admin_app.app_context():
        assert dict(assignment.arm_weights(db.session.get(Experiment, exp_id))) == \
            {"base": 0.0, "advanced": 1.0}


@pytest.mark.postgres
def test_admin_pages_on_postgresql(postgres_database, tmp_path):
    """The pages' own SQL (member filter, outcomes) on PostgreSQL, with the hand-built world."""

    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database,
                   ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD))
    try:
        populate_tiny_experiment(app)
        client = app.test_client()
        assert login(client).status_code == 303
        member = client.get("/admin/predictions?user=4").get_data(as_text=True)
        assert member.count('href="/admin/predictions/') == 1 and "/admin/predictions/p2" in member
        assert client.get("/admin/predictions?user=1").get_data(as_text=True).count(
            'href="/admin/predictions/') == 2
        detail = client.get("/admin/predictions/p2").get_data(as_text=True)
        assert "30.0%" in detail  # user 3 heard 180 s of 600 s
        dashboard = client.get("/admin/").get_data(as_text=True)
        assert 'data-arm="base"' in dashboard and 'id="verdict-advanced"' in dashboard
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
