"""Fixtures of the page tests: the pages' app and client, and a live server with chromium."""
from __future__ import annotations

import threading

import pytest
from werkzeug.security import generate_password_hash

from app.extensions import db
from tests.support.apps import make_api_app
from tests.support.browser import CHROMIUM, FLAGS, PASSWORD
from tests.support.factories import experiment_history


@pytest.fixture
def web_app(api_app):
    """The trained small world behind the pages (the API's fixture: one private DB copy)."""
    return api_app


@pytest.fixture
def client(web_app):
    return web_app.test_client()


@pytest.fixture(scope="session")
def live_server(api_world, tmp_path_factory):
    from werkzeug.serving import make_server

    app = make_api_app(api_world, tmp_path_factory.mktemp("browser"),
                       ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD))
    experiment_history(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def browser():
    """Module scope: Playwright's sync API runs an event loop, which must be closed before
    another module starts its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    yield page
    context.close()
    assert problems == [], f"browser console errors: {problems}"


@pytest.fixture
def open_page(browser):
    """``open_page(viewport)``: a page in a context of its own (closed after the test); the
    page's uncaught script errors collect in ``page.problems``."""
    contexts = []

    def make(viewport):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.problems = problems
        return page

    yield make
    for context in contexts:
        context.close()
