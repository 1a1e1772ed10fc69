"""Checks any browser test can run on a page it has open: no horizontal overflow, and no serious
or critical accessibility violation found by axe-core.

axe-core's JavaScript comes from the ``axe-playwright-python`` wheel (requirements-dev.txt),
which ships it; only the script is used, run through Playwright's own ``evaluate``. Usage::

    from tests.support.ui_checks import assert_accessible, assert_fits, viewports
    assert_fits(page)                      # nothing wider than the viewport
    assert_accessible(page, "builder")     # axe-core, serious + critical = failure
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from tests.support.paths import ARTIFACTS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
BLOCKING = ("serious", "critical")


def viewports():
    """Parametrise a test over the phone and the desktop width."""
    return pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1366px"])


@lru_cache(maxsize=1)
def axe_source() -> str:
    try:
        import axe_playwright_python
    except ImportError:
        pytest.fail("axe-core is missing: pip install -r requirements-dev.txt "
                    "(axe-playwright-python ships axe.min.js)")
    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text("utf-8")


def overflow(page) -> dict:
    """The page's scroll width against its client width, and the widest offenders."""
    return page.evaluate("""() => {
        const doc = document.documentElement, width = doc.clientWidth;
        const wide = [];
        for (const el of document.body.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.right > width + 1 && getComputedStyle(el).position !== 'fixed') {
                let inScroller = false;
                for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                    const ox = getComputedStyle(p).overflowX;
                    if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') { inScroller = true; break; }
                }
                if (!inScroller) wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                    + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '')
                    + ' right=' + Math.round(r.right));
            }
        }
        return {scrollWidth: doc.scrollWidth, clientWidth: width, wide: wide.slice(0, 8)};
    }""")


def assert_fits(page) -> None:
    o = overflow(page)
    assert o["scrollWidth"] <= o["clientWidth"] and not o["wide"], \
        f"wider than the {o['clientWidth']} px viewport: {o}"


def axe_violations(page, impacts=BLOCKING) -> list[dict]:
    """Run axe-core on the open page; violations of the given impacts, summarised."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())  # evaluate is not subject to the page's CSP
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in impacts]


def assert_accessible(page, name: str) -> None:
    """No serious or critical axe-core violation; the full list lands in test-artifacts/."""
    found = axe_violations(page, impacts=("minor", "moderate", "serious", "critical"))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(found, indent=2), "utf-8")
    blocking = [v for v in found if v["impact"] in BLOCKING]
    assert not blocking, f"axe-core on {name}: {json.dumps(blocking, indent=2)}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
