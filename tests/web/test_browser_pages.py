"""The builder, the user page and the admin pages as a person sees them, at a phone's width
(390 px) and a laptop's (1366 px): nothing wider than the screen, no serious or critical
accessibility violation (axe-core), the layout fixes of issue 15 held in place. Screenshots land
in test-artifacts/."""
from __future__ import annotations

import pytest

from tests.support.browser import PASSWORD
from tests.support.ui_checks import (DESKTOP, assert_accessible, assert_fits, shot,
                                      viewports)

pytestmark = pytest.mark.browser


def _tag(viewport) -> str:
    return f"{viewport['width']}"


def _checked(live_server, open_page, viewport, path: str, ready: str, name: str):
    """A public page at ``viewport``: it fits, passes axe-core, and leaves a screenshot."""
    _, base = live_server
    page = open_page(viewport)
    page.goto(base + path)
    page.wait_for_selector(ready)
    assert_fits(page)
    assert_accessible(page, f"{name}-{_tag(viewport)}")
    shot(page, f"{name}-{_tag(viewport)}")
    return page


def _login(page, base):
    page.goto(base + "/admin/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("form.login-form button[type=submit], main form button[type=submit]")
    page.wait_for_url(lambda url: "/admin/login" not in url)


@viewports()
def test_builder_fits_and_is_accessible(live_server, open_page, viewport):
    page = _checked(live_server, open_page, viewport, "/?member=123&member=124&member=125&q=12",
                    "#members", "builder")
    if viewport is DESKTOP:
        # the two cards side by side end at about the same height: no empty column under one
        group = page.locator("section[aria-labelledby=group-title]").bounding_box()
        options = page.locator("section[aria-labelledby=options-title]").bounding_box()
        assert abs((group["y"] + group["height"]) - (options["y"] + options["height"])) < 2


@viewports()
def test_user_page_fits_and_is_accessible(live_server, open_page, viewport):
    page = _checked(live_server, open_page, viewport, "/users/123", "#recent-title", "user")
    assert page.locator("#recent-events").inner_text().count("advert") == 0
    if viewport is DESKTOP:
        # the favourite genres share a card with the history instead of a box of their own
        declared = page.locator("#declared-genres").bounding_box()
        history = page.locator("section[aria-labelledby=history-title]").bounding_box()
        assert declared["y"] >= history["y"] and declared["y"] < history["y"] + history["height"]


@viewports()
def test_admin_pages_fit_and_are_accessible(live_server, open_page, viewport):
    _, base = live_server
    page = open_page(viewport)
    page.goto(base + "/admin/login")
    # the login page's header carries the whole public menu, not just "Build a playlist"
    assert page.locator(".site-nav a").count() >= 3
    assert_fits(page)
    assert_accessible(page, f"admin-login-{_tag(viewport)}")
    _login(page, base)
    for path, name in (("/admin/", "dashboard"), ("/admin/?interval=sequential", "dashboard-seq"),
                       ("/admin/models", "models"), ("/admin/experiments", "experiments")):
        page.goto(base + path)
        assert_fits(page)
        assert_accessible(page, f"admin-{name}-{_tag(viewport)}")
        shot(page, f"admin-{name}-{_tag(viewport)}")
    page.goto(base + "/admin/")
    # the admin menu stays on one line on a laptop; on a phone it is a grid of every entry
    # (test_browser_people.py), never a sideways-scrolling bar
    tops = page.eval_on_selector_all(".site-nav > *", "els => els.map(e => e.getBoundingClientRect().top)")
    if viewport is DESKTOP:
        assert max(tops) - min(tops) < 4, tops
    # the last day's label of each chart is inside the chart
    for chart in page.locator("svg.chart").all():
        box = chart.bounding_box()
        last = chart.locator("text.x-label").last.bounding_box()
        assert last["x"] + last["width"] <= box["x"] + box["width"] + 0.5
