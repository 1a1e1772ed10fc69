"""A live party in chromium: the host starts it from the builder at 1366 px, two guests join
on 390 px phones (one as a found user, one as a new listener), one skips, and the other's page
shows the new queue within 3 s; axe-core finds nothing serious or critical on any party page."""
from __future__ import annotations

import time

import pytest

from tests.support.browser import NEEDS_CHROMIUM
from tests.support.ui_checks import DESKTOP, PHONE, assert_accessible, assert_fits, shot

pytestmark = NEEDS_CHROMIUM

UPCOMING = "() => Array.from(document.querySelectorAll('#upcoming li')).map(li => li.dataset.track)"


def _context(browser, viewport, problems):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return context, page


def test_party_host_and_two_phone_guests(live_server, browser):
    _, base = live_server
    problems: list[str] = []
    contexts = []
    try:
        hc, host = _context(browser, DESKTOP, problems)
        contexts.append(hc)
        host.goto(base + "/?member=123&member=124")
        host.click("#party-button")
        host.wait_for_selector("#now-playing .t-name")
        host.wait_for_selector("#upcoming li button[data-action=remove]")  # the host's controls
        assert_fits(host)
        assert_accessible(host, "party-host-1366")
        join = host.get_attribute("#join-link", "href")
        assert host.locator("img.party-qr").evaluate("img => img.naturalWidth") > 0

        # guest 1: a Pozytywka user found by search
        c1, g1 = _context(browser, PHONE, problems)
        contexts.append(c1)
        g1.goto(join)
        assert_fits(g1)
        assert_accessible(g1, "party-join-390")
        g1.fill("#party-q", "125")
        g1.click("form[role=search] button[type=submit]")
        g1.click('button.join-as[data-user-id="125"]')
        g1.wait_for_selector("#skip-button")

        # guest 2: a new listener who picks genres
        c2, g2 = _context(browser, PHONE, problems)
        contexts.append(c2)
        g2.goto(join)
        g2.fill("#guest-name", "Ola")
        boxes = g2.locator("input[name=genre]")
        for i in range(min(3, boxes.count())):
            boxes.nth(i).check()
        g2.click("#join-new-button")
        g2.wait_for_selector("#skip-button")
        assert "Ola" in g2.inner_text("#guests")
        assert_fits(g2)
        assert_accessible(g2, "party-guest-390")
        shot(g2, "party-guest-390")

        # both phones see the same queue; guest 1 skips; guest 2's page follows within 3 s
        g1.wait_for_function(f"() => ({UPCOMING})().length > 0")
        before = g2.evaluate(UPCOMING)
        with g1.expect_response(lambda r: r.url.endswith("/events")) as answer:
            started = time.monotonic()
            g1.click("#skip-button")
        after = answer.value.json()
        wanted = [t["id"] for t in after["upcoming"]]
        assert wanted != before, "the skip did not re-plan the upcoming tracks"
        g2.wait_for_function(f"want => JSON.stringify(({UPCOMING})()) === JSON.stringify(want)",
                             arg=wanted, timeout=3000)
        assert time.monotonic() - started < 3.0
        host.wait_for_function(f"want => JSON.stringify(({UPCOMING})()) === JSON.stringify(want)",
                               arg=wanted, timeout=3000)
        shot(host, "party-host-1366")

        # the host's controls: move up, remove, give guests the controls, end the party
        second = wanted[1]
        host.click(f'#upcoming li[data-track="{second}"] button[data-action=move-up]')
        host.wait_for_function(f"() => ({UPCOMING})()[0] === {second!r}", timeout=3000)
        g2.wait_for_function(f"() => ({UPCOMING})()[0] === {second!r}", timeout=3000)
        host.click(f'#upcoming li[data-track="{second}"] button[data-action=remove]')
        host.wait_for_function(f"() => !({UPCOMING})().includes({second!r})", timeout=3000)
        g1.wait_for_function(f"() => !({UPCOMING})().includes({second!r})", timeout=3000)
        assert g2.locator("#next-button").is_hidden()
        host.check("#controls-toggle")
        g2.wait_for_selector("#next-button", state="visible", timeout=3000)
        g2.wait_for_selector("#upcoming li button[data-action=remove]", timeout=3000)
        playing = g2.inner_text("#now-playing")
        g2.click("#next-button")
        host.wait_for_function("text => document.querySelector('#now-playing').innerText !== text",
                               arg=playing, timeout=3000)
        g1.click("#leave-button")
        g1.wait_for_url(base + "/")
        host.wait_for_function("() => !document.querySelector('#guests').innerText.includes('Ola')"
                               " || document.querySelectorAll('#guests li').length === 4",
                               timeout=3000)
        host.once("dialog", lambda d: d.accept())
        host.click("#end-button")
        host.wait_for_selector("text=The party has ended")
        g2.wait_for_selector("text=The party has ended", timeout=5000)
        # the only console lines allowed: the browser's own note of the ended party's 410s
        assert [p for p in problems if "status of 410" not in p] == [], problems
    finally:
        for c in contexts:
            c.close()
