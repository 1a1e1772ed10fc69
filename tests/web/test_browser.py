"""End to end in Debian's chromium (headless), driven by Playwright against a live server.

Never downloads a browser: Playwright is pointed at /usr/bin/chromium. Without it the tests skip
with the reason (.ci/run installs it). Screenshots go to test-artifacts/ (git-ignored).
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.db import Prediction
from app.extensions import db
from tests.support.browser import NEEDS_CHROMIUM, PASSWORD
from tests.support.paths import ARTIFACTS


pytestmark = NEEDS_CHROMIUM


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_build_a_playlist_for_three_users(live_server, page):
    app, base = live_server
    page.goto(base + "/")
    # 1st member with the typeahead and the keyboard
    page.fill("#q", "123")
    page.wait_for_selector("#q-suggestions li[role=option]")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector('li.member[data-member-id="123"]')
    # options chosen now survive adding more members (JS carries them into the links)
    page.select_option("#strategy", "fair")
    page.select_option("#model", "advanced")
    # 2nd and 3rd through the server-side search and its "Add" links
    for uid in (124, 125):
        page.fill("#q", str(uid))
        page.click("#search-form button[type=submit]")
        page.click(f'a.add-member[href*="member={uid}"]')
        page.wait_for_selector(f'li.member[data-member-id="{uid}"]')
    assert page.locator("li.member").count() == 3
    assert page.locator("li.member .chip").count() >= 3  # top genres of each member
    assert page.input_value("#strategy") == "fair" and page.input_value("#model") == "advanced"
    page.fill("#length", "20")
    _shot(page, "builder")

    page.click("#build-button")
    page.wait_for_selector("#playlist-table")
    assert re.search(r"/playlists/[0-9a-f]{32}$", page.url)
    assert page.locator("#playlist-table tbody tr").count() == 20
    fits = page.locator("#member-fit .bar-value").all_inner_texts()
    assert len(fits) == 3 and all(re.fullmatch(r"\d+%", f) for f in fits)
    assert page.locator("#taste-match tbody tr").count() == 3
    assert page.locator("#playlist-table td.heat").count() == 60
    _shot(page, "playlist")

    with app.app_context():
        row = db.session.get(Prediction, page.url.rsplit("/", 1)[1])
        assert row.members == [123, 124, 125] and row.endpoint == "/playlists"
        assert row.strategy == "fair" and row.model == "advanced"

    with page.expect_download() as download:
        page.click("text=CSV")
    assert download.value.suggested_filename.endswith(".csv")


def test_builder_works_without_javascript(live_server, browser):
    _, base = live_server
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(base + "/")
        for uid in (130, 131, 132):
            page.fill("#q", str(uid))
            page.press("#q", "Enter")  # the search form submits by itself
            page.click(f'a.add-member[href*="member={uid}"]')
        assert page.locator("li.member").count() == 3
        page.click("#build-button")
        page.wait_for_selector("#playlist-table")
        assert page.locator("#playlist-table tbody tr").count() == 20
    finally:
        context.close()


def test_admin_dashboard_shows_both_arms(live_server, page):
    app, base = live_server
    page.goto(base + "/admin/")
    assert "/admin/login" in page.url
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_selector("#arms")
    assert page.locator('article[data-arm="base"]').count() == 1
    assert page.locator('article[data-arm="advanced"]').count() == 1
    with app.app_context():
        served = db.session.scalar(select(db.func.count()).select_from(Prediction)
                                   .where(Prediction.is_ab.is_(True), Prediction.arm == "base"))
    assert page.locator('article[data-arm="base"] .tile dd').first.inner_text().split()[0] == \
        str(served)
    assert page.locator("svg.chart").count() == 2
    assert page.locator("#verdict-advanced").is_visible()
    _shot(page, "admin-dashboard")

    page.click("text=Predictions")
    page.wait_for_selector("#predictions-table")
    page.locator("#predictions-table a").first.click()
    page.wait_for_selector("#outcome-verdict")
    _shot(page, "admin-prediction")


@pytest.mark.parametrize("width", [390, 1366])
def test_playlist_page_fits_the_screen(live_server, browser, width):
    """Issue 15: on a phone each track is a card (no sideways scrolling, the members' fits as
    chips on screen); on a laptop the table fits. Ten members, the A/B builder's default 20."""
    app, base = live_server
    group = list(range(140, 150))
    response = app.test_client().post("/predict/advanced", json={
        "user_id": group[0], "other_users": group[1:], "playlist_length": 20})
    assert response.status_code == 200
    pid = response.headers["X-Prediction-Id"]
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(f"{base}/playlists/{pid}")
        page.wait_for_selector("#playlist-table")
        sizes = page.evaluate("""() => {
            const d = document.documentElement, w = document.getElementById('playlist-wrap');
            const row = document.querySelector('#playlist-table tbody tr');
            const cells = [...row.querySelectorAll('td.heat')].map(c => c.getBoundingClientRect());
            const name = row.querySelector('td.track-name').getBoundingClientRect();
            return {page: [d.scrollWidth, d.clientWidth], list: [w.scrollWidth, w.clientWidth],
                    cells: cells.length, cellsRight: Math.max(...cells.map(c => c.right)),
                    nameWidth: name.width, h1: document.querySelector('h1').innerText};
        }""")
        _shot(page, f"playlist-{width}")
        assert sizes["page"][0] <= sizes["page"][1], sizes
        assert sizes["list"][0] <= sizes["list"][1], sizes
        # every member's fit for the first track is on screen, without scrolling
        assert sizes["cells"] == 10 and sizes["cellsRight"] <= width, sizes
        if width < 640:  # a card: the title gets the card's width, not a narrow column
            assert sizes["nameWidth"] >= 0.5 * width, sizes
        assert sizes["h1"].endswith("and 8 others"), sizes
        assert page.locator("#playlist-table tbody tr").count() == 20
        assert problems == []
    finally:
        context.close()
