"""Admin login under attack: nobody can lock the admin out, and no login input answers 500.

Before: 30 failed logins for a user name from any addresses locked that name out everywhere
for 15 minutes (2 a minute kept it locked); a JSON body was read by Flask-WTF but counted under
one empty name, so it bypassed the lock; ``next=/admin%0d%0aX:1`` and JSON user names that
were numbers, objects, booleans or files answered 500. Every test here failed then.
"""
from __future__ import annotations

import io
import re

import pytest
from flask_migrate import upgrade
from werkzeug.security import generate_password_hash

from app import create_app
from app.extensions import db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def login_app(tmp_path):
    def make(**overrides):
        config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'login.db'}",
                  "MODEL_DIR": str(tmp_path / "models"),
                  "PREDICTIONS_LOG": str(tmp_path / "predictions.jsonl"),
                  "ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")}
        config.update(overrides)
        app = create_app("testing", config)
        with app.app_context():
            upgrade()
        made.append(app)
        return app

    made: list = []
    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _csrf(client, addr: str) -> str:
    page = client.get("/admin/login", environ_base={"REMOTE_ADDR": addr})
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                     page.get_data(as_text=True)).group(1)


def _attempt(client, password: str, addr: str, username: str = "admin", **kwargs) -> int:
    data = {"csrf_token": _csrf(client, addr), "username": username, "password": password}
    return client.post("/admin/login", data=data, environ_base={"REMOTE_ADDR": addr},
                       **kwargs).status_code


def test_failures_from_other_addresses_do_not_lock_the_admin_out(login_app):
    app = login_app()
    # 30 failures for the name from 30 addresses, and 30 more from one address
    assert {_attempt(app.test_client(), "guess", f"198.51.100.{i}") for i in range(30)} == {401}
    attacker = [_attempt(app.test_client(), "guess", "203.0.113.5") for _ in range(30)]
    assert attacker[:10] == [401] * 10 and set(attacker[10:]) == {429}
    # the attacker's own pair stays locked, the right password included
    assert _attempt(app.test_client(), PASSWORD, "203.0.113.5") == 429
    # the admin, at their own address, is not
    admin = app.test_client()
    assert _attempt(admin, PASSWORD, "192.0.2.10") == 303
    assert admin.get("/admin/").status_code == 200


def test_distributed_guessing_is_bounded_and_the_admins_browser_still_gets_in(login_app):
    app = login_app(ADMIN_LOGIN_USER_RATE_LIMIT="20 per hour")
    browser = app.test_client()
    assert _attempt(browser, PASSWORD, "192.0.2.10") == 303  # this browser is now known
    cookie = browser.get_cookie("admin_device", path="/admin/login")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    browser.delete_cookie("session")  # the session ends; the browser stays known

    guesses = [_attempt(app.test_client(), "guess", f"198.51.100.{i}") for i in range(25)]
    assert guesses == [401] * 20 + [429] * 5
    # a stranger with the right password from a fresh address waits: the budget is spent
    assert _attempt(app.test_client(), PASSWORD, "198.51.100.200") == 429
    # the admin's browser, from any address, is exempt from the budget
    assert _attempt(browser, PASSWORD, "203.0.113.77") == 303
    browser.delete_cookie("session")
    # the cookie is bound to its name and signed: another name or a forgery is a stranger
    other = app.test_client()
    other.set_cookie("admin_device", cookie.value, path="/admin/login")
    assert _attempt(other, "guess", "198.51.100.201", username="root") == 401
    forged = app.test_client()
    forged.set_cookie("admin_device", cookie.value[:-3] + "AAA", path="/admin/login")
    assert _attempt(forged, PASSWORD, "198.51.100.202") == 429


def test_json_login_is_refused_and_cannot_bypass_the_lock(login_app):
    app = login_app()
    client = app.test_client()
    addr = "203.0.113.9"
    assert [_attempt(client, "guess", addr) for _ in range(11)][-1] == 429
    token = _csrf(client, addr)
    response = client.post("/admin/login", json={"username": "admin", "password": PASSWORD,
                                                  "csrf_token": token},
                           headers={"X-CSRFToken": token}, environ_base={"REMOTE_ADDR": addr})
    assert response.status_code in (415, 429)
    assert client.get("/admin/", environ_base={"REMOTE_ADDR": addr}).status_code == 302
    # and not only while locked: the route takes the form and nothing else
    fresh = app.test_client()
    token = _csrf(fresh, "192.0.2.44")
    response = fresh.post("/admin/login", json={"username": "admin", "password": PASSWORD},
                          headers={"X-CSRFToken": token},
                          environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert response.status_code == 415
    assert fresh.get("/admin/").status_code == 302


@pytest.mark.parametrize("username", [1, 1.5, {"a": 1}, True, None, [], ["admin"], "x" * 5000])
def test_json_user_names_of_any_type_answer_4xx(login_app, username):
    app = login_app()
    client = app.test_client()
    token = _csrf(client, "127.0.0.1")
    response = client.post("/admin/login", json={"username": username, "password": PASSWORD},
                           headers={"X-CSRFToken": token})
    assert 400 <= response.status_code < 500


def test_form_inputs_that_crashed_answer_4xx(login_app):
    app = login_app()
    client = app.test_client()
    token = _csrf(client, "127.0.0.1")
    # a file where the user name goes
    response = client.post("/admin/login", content_type="multipart/form-data", data={
        "csrf_token": token, "username": (io.BytesIO(b"admin"), "name.txt"),
        "password": PASSWORD})
    assert response.status_code == 400
    # a body of another type
    response = client.post("/admin/login", data="username=admin", content_type="text/plain",
                           headers={"X-CSRFToken": token})
    assert response.status_code == 415


@pytest.mark.parametrize("target", ["/admin%0d%0aX:1", "/admin%0aX:1", "/admin%00",
                                    "/admin/%E2%80%A8x", "/admin%09x", "//evil.example/admin",
                                    "/admin\\..\\x"])
def test_next_targets_never_answer_500_or_leave(login_app, target):
    app = login_app()
    client = app.test_client()
    token = _csrf(client, "127.0.0.1")
    response = client.post(f"/admin/login?next={target}", data={
        "csrf_token": token, "username": "admin", "password": PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"
    # with a session, the login page redirects to `next` at once
    again = client.get(f"/admin/login?next={target}")
    assert again.status_code == 302 and again.headers["Location"] == "/admin/"
    assert "X" not in again.headers


def test_a_safe_next_is_kept(login_app):
    app = login_app()
    client = app.test_client()
    token = _csrf(client, "127.0.0.1")
    response = client.post("/admin/login?next=/admin/predictions%3Farm%3Dbase", data={
        "csrf_token": token, "username": "admin", "password": PASSWORD})
    assert response.headers["Location"] == "/admin/predictions?arm=base"
