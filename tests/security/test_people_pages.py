"""People's data behind a login in production.

Before: with no login, ``/users/search.json?q=a&limit=25&page=N`` for 44 pages and then
``/users/<id>`` gave every user's name, city, premium flag, genres, first and last activity and
time-stamped recent listening. Now, unless PUBLIC_PEOPLE_PAGES is on (the demo), those pages
need the admin login and the builder's search shows names only. Every test here failed then.
"""
from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from app import create_app
from app.db import User
from app.extensions import db
from tests.support.apps import make_api_app

PASSWORD = "correct horse battery staple"


@pytest.fixture
def closed_app(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PUBLIC_PEOPLE_PAGES=False,
                       ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _someone(app) -> User:
    with app.app_context():
        user = db.session.get(User, 123)
        db.session.expunge(user)
        return user


def test_people_pages_and_search_need_a_login(closed_app):
    client = closed_app.test_client()
    user = _someone(closed_app)
    for url in ("/users/123", "/users/search?q=a", "/users/search?q=a&page=2"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/admin/login?next=/users"), url
    # the JSON search answers names (and the ids the builder adds) only
    data = client.get("/users/search.json?q=a&limit=25").get_json()
    assert data["results"] and all(set(hit) == {"user_id", "name"} for hit in data["results"])
    # and cannot find who lives where
    assert user.city and user.city.lower() not in (user.name or "").lower()
    by_city = client.get(f"/users/search.json?q={user.city}&limit=25").get_json()
    assert all(user.city.lower() in (hit["name"] or "").lower() for hit in by_city["results"])


def test_the_builder_shows_names_only(closed_app):
    client = closed_app.test_client()
    user = _someone(closed_app)
    html = client.get(f"/?member=123&q={user.name}").get_data(as_text=True)
    assert user.name in html
    assert not re.search(r'href="/users/', html)  # no page links, no "People" in the menu
    assert f"· {user.city}" not in html
    assert 'class="chips"' not in html  # no genres of members or hits


def test_a_logged_in_admin_sees_them_and_comes_back(closed_app):
    client = closed_app.test_client()
    page = client.get("/admin/login?next=/users/123")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      page.get_data(as_text=True)).group(1)
    response = client.post("/admin/login?next=/users/123", data={
        "csrf_token": token, "username": "admin", "password": PASSWORD})
    assert response.headers["Location"] == "/users/123"
    assert client.get("/users/123").status_code == 200
    data = client.get("/users/search.json?q=a&limit=5").get_json()
    assert all("city" in hit and "url" in hit for hit in data["results"])


def test_production_keeps_them_closed_and_the_demo_opens_them(tmp_path, monkeypatch):
    from tests.support.paths import ROOT

    monkeypatch.delenv("PUBLIC_PEOPLE_PAGES", raising=False)
    import importlib

    import config

    importlib.reload(config)
    try:
        assert config.ProductionConfig.PUBLIC_PEOPLE_PAGES is False
        assert config.DevelopmentConfig.PUBLIC_PEOPLE_PAGES is True
    finally:
        importlib.reload(config)
    assert "export PUBLIC_PEOPLE_PAGES=${PUBLIC_PEOPLE_PAGES:-1}" in \
        (ROOT / "scripts" / "demo.sh").read_text()
    key = "9c4f1e7a2b8d5f3e6a0c9b2d7e4f1a8c3b6d0e9f2a5c8b1d"
    app = create_app("production", {"SECRET_KEY": key, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["PUBLIC_PEOPLE_PAGES"] is False
