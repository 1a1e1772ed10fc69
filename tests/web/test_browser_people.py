"""The pages with people who share names, in chromium at a phone's width (390 px) and a
laptop's (1366 px): every member has one label, unique within the group, used by the legend,
the tables, the chips and the downloads; genre chips say what they are; the user page's top
list is in the order it says; the phone's admin menu shows every entry; the taste match fits a
phone. Each page also passes axe-core (no serious or critical violation) and fits the screen.
Screenshots of the playlist page land in test-artifacts/."""
from __future__ import annotations

import csv
import io
import re
import threading

import pytest
from werkzeug.security import generate_password_hash

from app.db import User
from app.extensions import db
from app.web.forms import BASE_HELP, STRATEGY_HELP
from tests.support.apps import make_api_app
from tests.support.browser import NEEDS_CHROMIUM, PASSWORD
from tests.support.pages import csrf_token
from tests.support.ui_checks import DESKTOP, PHONE, assert_accessible, assert_fits, shot, viewports

pytestmark = NEEDS_CHROMIUM

# Four Agnieszkas, two with the same full name, and an Adam Jankowski whose initials (AJ) are
# theirs too: first names, full names and initials all collide.
NAMES = {281: "Agnieszka Jankowska", 282: "Agnieszka Jankowska", 283: "Agnieszka Lis",
         284: "Adam Jankowski", 285: "Agnieszka Dudek", 286: "Piotr Nowak"}
GROUP = list(NAMES)
LABELS = {281: "Agnieszka #281", 282: "Agnieszka #282", 283: "Agnieszka #283", 284: "Adam",
          285: "Agnieszka #285", 286: "Piotr"}


@pytest.fixture(scope="module")
def people_server(api_world, tmp_path_factory):
    """A live server of its own, whose users 281-286 are renamed to share names."""
    from werkzeug.serving import make_server

    app = make_api_app(api_world, tmp_path_factory.mktemp("people"),
                       ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD))
    with app.app_context():
        for uid, name in NAMES.items():
            db.session.get(User, uid).name = name
        db.session.commit()
    client = app.test_client()

    def build(model: str, strategy: str = "turns") -> str:
        token = csrf_token(client.get("/").get_data(as_text=True))
        response = client.post("/playlists", data={
            "csrf_token": token, "member": [str(m) for m in GROUP], "length": "20",
            "model": model, "strategy": strategy})
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        return response.headers["Location"].rsplit("/", 1)[1]

    playlists = {"advanced": build("advanced"), "base": build("base")}
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}", playlists
    server.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _boxes_inside(page, selectors: list[str]) -> None:
    """No box holding member data is wider than the viewport, nor scrolls sideways inside."""
    width = page.viewport_size["width"]
    for selector in selectors:
        for el in page.locator(selector).all():
            if not el.is_visible():
                continue
            box = el.bounding_box()
            assert box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5, (selector, box)
            inner = el.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert inner[0] <= inner[1] + 1, (selector, inner)


@viewports()
def test_playlist_tells_members_apart(people_server, open_page, viewport):
    app, base, playlists = people_server
    page = open_page(viewport)
    response = page.goto(f"{base}/playlists/{playlists['advanced']}")
    assert "retry-after" not in response.headers  # a successful answer: nothing to retry
    page.wait_for_selector("#playlist-table")

    # one legend: colour and label -> full name and id, a label per member, all different
    legend = page.locator("#member-legend li")
    assert legend.count() == len(GROUP)
    colours: dict[str, str] = {}
    for item, uid in zip(legend.all(), GROUP):
        chip = item.locator(".avatar")
        assert chip.inner_text() == LABELS[uid]
        assert NAMES[uid] in item.inner_text() and f"#{uid}" in item.inner_text()
        colours[LABELS[uid]] = chip.evaluate("e => getComputedStyle(e).backgroundColor")
    assert len(set(colours.values())) == len(GROUP)

    # the same labels in every table and chip
    cells = page.eval_on_selector_all("#playlist-table tbody tr:first-child td.heat",
                                      "els => els.map(e => e.dataset.label)")
    assert cells == [LABELS[u] for u in GROUP]
    assert page.locator("#member-fit .bar-label").all_inner_texts() == [LABELS[u] for u in GROUP]
    chips = page.locator(".for-chips .avatar").all()
    assert chips, "an advanced playlist of turns says whom each track is for"
    for chip in chips:
        label = chip.locator(".chip-label").inner_text().strip()
        assert label in colours, label
        assert chip.evaluate("e => getComputedStyle(e).backgroundColor") == colours[label]
    if viewport is DESKTOP:
        heads = page.locator("#playlist-table thead th.member-col .col-label").all_text_contents()
        assert heads == [LABELS[u] for u in GROUP]
        match = page.locator("#taste-match thead th .col-label").all_text_contents()
        assert match == [LABELS[u] for u in GROUP]
        rows = page.locator("#taste-match tbody th").all_text_contents()
        assert rows == [LABELS[u] for u in GROUP]
        assert page.locator("#taste-match").is_visible()
        assert not page.locator("#taste-pairs").is_visible()
    else:
        # each track's fits read "Agnieszka #281 81%", not "AJ 81%": the label before the value
        before = page.eval_on_selector(
            "#playlist-table tbody tr:first-child td.heat",
            "e => getComputedStyle(e, '::before').content")
        assert LABELS[GROUP[0]] in before
        # the taste match as each member's closest and farthest match, not a scrolling matrix
        assert not page.locator("#taste-match").is_visible()
        pairs = page.locator("#taste-pairs li")
        assert pairs.count() == len(GROUP)
        for item, uid in zip(pairs.all(), GROUP):
            text = item.inner_text()
            assert text.startswith(LABELS[uid]) and "closest" in text and "farthest" in text
            others = [LABELS[u] for u in GROUP if u != uid]
            assert sum(label in text for label in others) >= 1

    # the strategy that built it, in one sentence, with a link to the explanation
    line = page.locator("#how-built").inner_text()
    assert "turns" in line and STRATEGY_HELP["turns"] in line
    _boxes_inside(page, ["#member-legend", "#member-fit", "#taste-pairs", ".taste-matrix",
                         "#playlist-wrap", "#how-built"])
    assert_fits(page)
    assert_accessible(page, f"playlist-repeated-names-{viewport['width']}")
    shot(page, f"playlist-repeated-names-{viewport['width']}")
    page.click("#how-built a")
    page.wait_for_selector("#turns")
    assert STRATEGY_HELP["turns"] in page.locator("#turns").inner_text()
    assert page.url.endswith("/strategies#turns")
    assert_fits(page)
    assert_accessible(page, f"strategies-{viewport['width']}")
    assert page.problems == []


def test_downloads_use_the_labels_of_the_page(people_server):
    app, _, playlists = people_server
    client = app.test_client()
    pid = playlists["advanced"]
    doc = client.get(f"/playlists/{pid}.json").get_json()
    assert [(m["user_id"], m["label"]) for m in doc["members"]] == list(LABELS.items())
    for track in doc["tracks"]:
        assert track["for_labels"] == [LABELS[u] for u in track["for_members"]]
    table = list(csv.reader(io.StringIO(client.get(f"/playlists/{pid}.csv")
                                        .get_data(as_text=True))))
    assert table[0][7:7 + len(GROUP)] == [LABELS[u] for u in GROUP]
    known = set(LABELS.values())
    for row in table[1:]:
        assert all(part in known for part in row[-2].split("; ") if part)
    m3u = client.get(f"/playlists/{pid}.m3u").get_data(as_text=True).splitlines()
    for uid in GROUP:
        assert f"# member {LABELS[uid]}: {NAMES[uid]} (#{uid})" in m3u
    assert any(line.startswith("# for: ") for line in m3u)


@viewports()
def test_base_playlist_shows_no_model_version(people_server, open_page, viewport):
    _, base, playlists = people_server
    page = open_page(viewport)
    page.goto(f"{base}/playlists/{playlists['base']}")
    page.wait_for_selector("#playlist-table")
    model = page.locator(".meta-list div", has_text="Model").locator("dd")
    assert model.inner_text().strip() == "base"
    assert page.locator(".meta-list .mono").count() == 0
    assert BASE_HELP in page.locator("#how-built").inner_text()
    assert_fits(page)
    assert_accessible(page, f"playlist-base-{viewport['width']}")


@viewports()
def test_builder_labels_listened_and_declared_genres(people_server, open_page, viewport):
    app, base, _ = people_server
    with app.app_context():
        declared = {u: sorted(g.name for g in db.session.get(User, u).favourite_genres)
                    for u in GROUP}
    assert any(declared.values())
    page = open_page(viewport)
    query = "&".join(f"member={u}" for u in GROUP)
    page.goto(f"{base}/?{query}&q=Agnieszka")
    page.wait_for_selector("#members")
    for uid in GROUP:
        member = page.locator(f'li.member[data-member-id="{uid}"]')
        listened = member.locator(".genre-line.listened")
        assert listened.count() == 1  # every member of the small world has a history
        assert listened.locator(".genre-kind").inner_text() == "Listens to most:"
        if declared[uid]:
            line = member.locator(".genre-line.declared")
            assert line.locator(".genre-kind").inner_text() == "Favourite genres:"
            assert line.locator(".chip").all_inner_texts() == declared[uid][:3]
    # the search hits show declared favourites, labelled as such
    hits = page.locator(".results li")
    assert hits.count() >= 4
    for hit in hits.all():
        if hit.locator(".chip").count():
            assert hit.locator(".genre-kind").inner_text() == "Favourite genres:"
    assert_fits(page)
    assert_accessible(page, f"builder-repeated-names-{viewport['width']}")
    # the typeahead's suggestions say which genres they show
    page.fill("#q", "Agnieszka Lis")
    page.wait_for_selector("#q-suggestions li[role=option]")
    suggestion = page.locator("#q-suggestions li[role=option]").first.inner_text()
    assert declared[283] and "favourite genres: " + ", ".join(declared[283][:3]) in suggestion


@viewports()
def test_user_top_list_is_sorted_by_expected_liking(people_server, open_page, viewport):
    _, base, _ = people_server
    page = open_page(viewport)
    page.goto(f"{base}/users/{GROUP[0]}")
    page.wait_for_selector("#top-tracks")
    liking = [int(t.strip().rstrip("%")) for t in
              page.locator("#top-tracks tbody td.heat").all_inner_texts()]
    assert len(liking) == 20 and liking == sorted(liking, reverse=True), liking
    assert "Sorted by expected liking" in page.locator("#top-tracks caption").inner_text()
    assert page.locator("#top-tracks th[aria-sort=descending]").text_content().startswith(
        "Expected liking")
    assert_fits(page)
    assert_accessible(page, f"user-sorted-{viewport['width']}")


@viewports()
def test_admin_menu_shows_every_entry(people_server, open_page, viewport):
    _, base, _ = people_server
    page = open_page(viewport)
    page.goto(base + "/admin/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(lambda url: "/admin/login" not in url)
    entries = page.locator(".site-nav a, .site-nav button")
    texts = [t.strip() for t in entries.all_inner_texts()]
    assert texts == ["Build a playlist", "A/B dashboard", "Predictions", "Models", "Health",
                     "Experiments", "Log out"]
    nav = page.locator(".site-nav")
    inner = nav.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert inner[0] <= inner[1], f"the menu scrolls sideways: {inner}"
    width = viewport["width"]
    for entry in entries.all():
        box = entry.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= width, (entry.inner_text(), box)
        # the whole word is shown, and a tap at its centre lands on it
        assert entry.evaluate("e => e.scrollWidth <= e.clientWidth"), entry.inner_text()
        assert entry.evaluate("""e => { const r = e.getBoundingClientRect();
            const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            return hit === e || e.contains(hit); }"""), entry.inner_text()
    if viewport is PHONE:
        shot(page, "admin-menu-390")
    page.click(".site-nav a:has-text('Health')")
    page.wait_for_url(re.compile(r".*/admin/health"))
    assert_fits(page)
    assert_accessible(page, f"admin-health-{width}")
