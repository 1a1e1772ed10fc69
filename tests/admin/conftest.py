"""Fixtures of the admin tests: an app with an admin password, its client, logged in."""
from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from app.extensions import db
from tests.support.apps import make_api_app
from tests.support.pages import ADMIN_PASSWORD, login


@pytest.fixture
def admin_app(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path,
                       ADMIN_PASSWORD_HASH=generate_password_hash(ADMIN_PASSWORD))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(admin_app):
    return admin_app.test_client()


@pytest.fixture
def logged_in(client):
    assert login(client).status_code == 303
    return client
