"""/doc in Debian's chromium: Swagger UI renders every operation of the generated document,
resolves every reference, and asks nothing of any host but ours (it works offline)."""
from __future__ import annotations


import pytest

from tests.support.browser import NEEDS_CHROMIUM

pytestmark = NEEDS_CHROMIUM


def test_swagger_ui_renders_the_whole_document_offline(live_server, page):
    app, base = live_server
    spec = app.test_client().get("/openapi.json").get_json()
    operations = sum(len(item) for item in spec["paths"].values())
    elsewhere: list[str] = []

    def only_ours(route):
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:  # no CDN, no validator badge, no fonts: as on a machine without internet
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto(base + "/doc", wait_until="load")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    page.wait_for_function(f"document.querySelectorAll('.opblock').length >= {operations}",
                           timeout=15000)
    assert page.locator(".opblock").count() == operations
    for tag in ("playlists", "operations", "parties"):
        assert page.locator(f"#operations-tag-{tag}").count() == 1
    # a reference Swagger UI cannot resolve shows in its errors box
    page.locator("#operations-parties-join_party").click()
    page.wait_for_selector("#operations-parties-join_party .opblock-body", timeout=15000)
    assert page.locator(".errors-wrapper").count() == 0
    page.locator(".btn.authorize").click()
    dialog = page.locator(".dialog-ux").inner_text()
    assert "apiKey" in dialog and "partyToken" in dialog
    assert elsewhere == []
