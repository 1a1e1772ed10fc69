"""Security headers, the production guard, and model files that can never run code.

Why these are tests and not review items: a single template with an inline ``<script>`` or a
new blueprint that forgets the headers silently reopens XSS / clickjacking; a config change can
quietly allow a debug console in production. Each of those must fail CI.
"""
from __future__ import annotations

import secrets
import ast
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from app import create_app
from app.security.headers import SECURITY_HEADERS
from tests.support.browser import CHROMIUM
from tests.support.paths import ROOT



def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_security_headers(response, where: str) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("Referrer-Policy"), where
    csp = _directives(headers.get("Content-Security-Policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"], where
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts is not None, where
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, where
    assert "*" not in scripts and not any(s.startswith(("http:", "https:")) for s in scripts)
    assert csp.get("object-src") == ["'none'"], where


class _InlineScriptFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, on* handlers, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src") and names.get("type") not in (
                "application/json", "application/ld+json"):
            self._in_inline_script = True
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}=...> event handler attribute")
            if name in ("href", "src", "action", "formaction") and value and \
                    value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}='javascript:...'>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]!r}")


def _inline_script_problems(html: str) -> list[str]:
    finder = _InlineScriptFinder()
    finder.feed(html)
    return finder.problems


def _get_routes(app) -> list[str]:
    """Every GET route without URL parameters: the pages a visitor can open directly."""
    return sorted({rule.rule for rule in app.url_map.iter_rules()
                   if "GET" in (rule.methods or ()) and not rule.arguments})


def test_security_headers_on_every_page(app, client):
    routes = _get_routes(app)
    assert "/" in routes and "/health" in routes
    for path in routes:
        assert_security_headers(client.get(path), f"GET {path}")
    # errors, static files and JSON answers carry them too
    assert_security_headers(client.get("/no-such-page"), "404")
    assert_security_headers(client.get("/doc"), "/doc")
    assert_security_headers(client.get("/static/swagger/init.js"), "static file")
    assert_security_headers(client.post("/predict", data="x", content_type="text/plain"), "415")
    assert_security_headers(client.post("/predict", json={"user_id": 1}), "422")


def test_a_security_header_a_response_sets_itself_is_kept_once(tmp_path):
    """The hook adds only the headers a response lacks, whatever the case of its own."""
    from flask import Response

    app = create_app("testing")

    @app.get("/own-frame-policy")
    def _own():
        return Response("x", headers=[("x-frame-options", "SAMEORIGIN"),
                                      ("Referrer-Policy", "no-referrer")])

    response = app.test_client().get("/own-frame-policy")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Referrer-Policy") == ["no-referrer"]
    for name in set(SECURITY_HEADERS) - {"X-Frame-Options", "Referrer-Policy"}:
        assert response.headers.getlist(name) == [SECURITY_HEADERS[name]], name


def test_pages_have_no_inline_scripts(app, client):
    """The CSP would block them in a browser; catch them here instead of in production."""
    for path in _get_routes(app):
        response = client.get(path)
        if response.mimetype == "text/html":
            assert _inline_script_problems(response.get_data(as_text=True)) == [], path
    for template in sorted((ROOT / "templates").rglob("*.html")) + sorted(
            (ROOT / "static").rglob("*.html")):
        text = template.read_text()
        problems = _inline_script_problems(re.sub(r"{[{%#].*?[}%#]}", "", text, flags=re.S))
        assert problems == [], f"{template.relative_to(ROOT)}: {problems}"


def test_finder_catches_what_csp_blocks():
    assert _inline_script_problems("<script>alert(1)</script>")
    assert _inline_script_problems('<a href="javascript:alert(1)">x</a>')
    assert _inline_script_problems('<img src="x" onerror="alert(1)">')
    assert not _inline_script_problems('<script src="/static/app.js"></script>')


def test_header_values_match_policy():
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


# ----- production configuration -----

def _production(tmp_path, **overrides):
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.db'}",
              "MODEL_DIR": str(tmp_path / "models"),
              "PREDICTIONS_LOG": str(tmp_path / "predictions.jsonl")}
    config.update(overrides)
    return create_app("production", config)


def test_production_refuses_to_start_without_secret_key(tmp_path):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        _production(tmp_path, SECRET_KEY="")


def test_production_never_runs_in_debug_mode(tmp_path, monkeypatch):
    app = _production(tmp_path, SECRET_KEY=secrets.token_hex(32), DEBUG=True)
    assert app.debug is False and app.config["DEBUG"] is False
    monkeypatch.setenv("FLASK_DEBUG", "1")  # what `flask run --debug` sets before loading us
    with pytest.raises(RuntimeError, match="debug"):
        _production(tmp_path, SECRET_KEY=secrets.token_hex(32))


def test_production_wsgi_entry_point_refuses_without_secret_key(tmp_path):
    """The path gunicorn takes (`wsgi:app`) with a real environment, not config overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FLASK_DEBUG")}
    env.update(POZYTYWKA_CONFIG="production", DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}",
               INSTANCE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr


def test_production_sets_secure_cookies(tmp_path):
    app = _production(tmp_path, SECRET_KEY=secrets.token_hex(32))
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")


# ----- model files are data, never code -----

def test_every_numpy_load_refuses_pickles():
    """Static check over the whole code base: no np.load without allow_pickle=False, no pickle."""
    offenders: list[str] = []
    for path in sorted(list((ROOT / "app").rglob("*.py")) + list((ROOT / "bench").rglob("*.py"))
                       + [ROOT / "wsgi.py", ROOT / "config.py"]):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "cloudpickle")
                       for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports pickle")
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name == "load" and isinstance(func, ast.Attribute) and \
                        getattr(func.value, "id", "") in ("np", "numpy"):
                    ok = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                             and k.value.value is False for k in node.keywords)
                    if not ok:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} np.load "
                                         f"without allow_pickle=False")
    assert offenders == []


# ----- every page of a real world, logged in as admin -----

def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@pytest.fixture
def admin_app(api_world, tmp_path):
    from werkzeug.security import generate_password_hash

    from app.extensions import db
    from tests.support.apps import make_api_app

    app = make_api_app(api_world, tmp_path,
                       ADMIN_PASSWORD_HASH=generate_password_hash("correct horse"))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _log_in(client, password: str = "correct horse", addr: str = "127.0.0.1"):
    page = client.get("/admin/login", environ_base={"REMOTE_ADDR": addr}).get_data(as_text=True)
    return client.post("/admin/login", data={"csrf_token": _csrf(page), "username": "admin",
                                             "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def test_every_reachable_page_has_headers_and_no_inline_script(admin_app):
    """Crawl the site as a logged-in admin: every page a visitor can reach, with real data."""
    client = admin_app.test_client()
    served = client.post("/predict", json={"user_id": 123, "other_users": [124, 125],
                                           "playlist_length": 10})
    assert served.status_code == 200
    pid = served.headers["X-Prediction-Id"]
    assert _log_in(client).status_code == 303
    queue = ["/", "/?member=123&member=124", "/users/123", "/users/search?q=12",
             f"/playlists/{pid}", f"/playlists/{pid}.json", "/admin/", "/admin/predictions",
             f"/admin/predictions/{pid}", "/admin/models", "/admin/experiments", "/doc",
             "/health", "/openapi.json", "/no-such-page"]
    seen: set[str] = set()
    while queue and len(seen) < 80:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code < 500, path
        assert_security_headers(response, f"GET {path}")
        if response.mimetype == "text/html":
            html = response.get_data(as_text=True)
            assert _inline_script_problems(html) == [], path
            for link in re.findall(r'href="(/[^"#]*)"', html):
                link = link.replace("&amp;", "&")
                if not link.startswith(("/static/", "/doc/assets/", "/admin/logout")):
                    queue.append(link)
    assert len(seen) >= 15


# ----- admin login rate limit (Flask-Limiter) -----

def test_admin_login_attempts_are_rate_limited(admin_app):
    """Password guessing is capped per client address; the right password does not bypass it
    once the limit is hit, and other addresses (or a spoofed X-Forwarded-For) do not reset it."""
    limit = int(str(admin_app.config.get("ADMIN_LOGIN_RATE_LIMIT", "10 per minute")).split()[0])
    client = admin_app.test_client()
    statuses = [_log_in(client, "wrong", addr="203.0.113.7").status_code for _ in range(limit)]
    assert statuses == [401] * limit
    blocked = _log_in(client, "wrong", addr="203.0.113.7")
    assert blocked.status_code == 429
    assert _log_in(client, "correct horse", addr="203.0.113.7").status_code == 429
    page = client.get("/admin/login", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    spoofed = client.post("/admin/login", data={"csrf_token": _csrf(page.get_data(as_text=True)),
                                                "username": "admin", "password": "x"},
                          headers={"X-Forwarded-For": "198.51.100.1"},
                          environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert spoofed.status_code == 429
    assert_security_headers(blocked, "429")
    # another client is not locked out by the attacker
    assert _log_in(admin_app.test_client(), addr="198.51.100.2").status_code == 303


# ----- a real browser enforces the policy: nothing on our pages is blocked -----

@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed "
                    "(apt-get install -y chromium); .ci/run installs it")
def test_browser_reports_no_csp_violations(admin_app):
    """A policy that blocks our own Swagger UI or page scripts would break them silently."""
    import threading

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, admin_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    client = admin_app.test_client()
    pid = client.post("/predict", json={"user_id": 123, "other_users": [124],
                                        "playlist_length": 10}).headers["X-Prediction-Id"]
    violations: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text else None)
            for path in ("/", "/?member=123&member=124", "/users/123", f"/playlists/{pid}",
                         "/admin/login"):
                page.goto(base + path, wait_until="load")
            page.goto(base + "/doc", wait_until="load")
            page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
            page.goto(base + "/admin/login", wait_until="load")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "correct horse")
            page.press("input[name=password]", "Enter")
            page.wait_for_url(base + "/admin/", timeout=15000)
            for path in ("/admin/", "/admin/predictions", f"/admin/predictions/{pid}",
                         "/admin/models", "/admin/experiments"):
                page.goto(base + path, wait_until="load")
            browser.close()
    finally:
        server.shutdown()
    assert violations == []
