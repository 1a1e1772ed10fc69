"""Public pages through Flask's test client, on a real imported world with a trained model.

CSRF stays on (the testing config does not switch it off), so every POST here carries the
token read from the page, exactly as a browser would.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime

from sqlalchemy import select, update

from app.db import Artist, ListeningEvent, ModelVersion, Prediction, Track, User
from app.extensions import db
from tests.support.apps import make_api_app
from tests.support.pages import csrf_token

SEED_GROUP = [123, 124, 125]


def build(client, members, **options):
    page = client.get("/?" + "&".join(f"member={m}" for m in members)).get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "member": [str(m) for m in members],
            "length": "20", "strategy": "average_without_misery", "model": "advanced"}
    data.update({k: str(v) for k, v in options.items()})
    return client.post("/playlists", data=data)


def log_lines(app) -> list[dict]:
    with open(app.config["PREDICTIONS_LOG"], encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_builder_page_without_members(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Nobody yet" in html
    assert 'id="count-users" data-value="200"' in html  # the catalogue summary stays on /
    assert 'id="count-tracks" data-value="' in html and 'id="count-events"' in html
    assert 'action="/playlists"' in html and 'name="csrf_token"' in html
    # CSP-ready: no inline script, no style attribute, no inline handler
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html
    assert '<label for="q">' in html and 'data-typeahead="/users/search.json"' in html


def test_search_by_id_name_and_city_paginated(client, web_app):
    with web_app.app_context():
        user = db.session.get(User, 123)
        name, city = user.name, user.city
        in_city = db.session.scalar(select(db.func.count()).select_from(User)
                                    .where(User.city == city))
    by_id = client.get("/?q=123").get_data(as_text=True)
    assert name in by_id and "member=123" in by_id  # an "Add" link carrying the member id
    by_name = client.get(f"/?q={name.split()[0].lower()}").get_data(as_text=True)
    assert name in by_name
    by_city = client.get(f"/users/search?q={city}").get_data(as_text=True)
    assert f"{in_city} people match" in by_city
    if in_city > 10:  # ten per page; the next page continues the list
        assert "Page 1 of" in by_city and "page=2" in by_city
        page2 = client.get(f"/users/search?q={city}&page=2")
        assert page2.status_code == 200 and "Page 2 of" in page2.get_data(as_text=True)
    # case-insensitive beyond ASCII: "łódź" finds "Łódź"
    lodz = client.get("/users/search.json?q=łódź&limit=25").get_json()
    assert lodz["total"] > 0 and all(r["city"] == "Łódź" for r in lodz["results"])
    nothing = client.get("/?q=zzzzzzzz").get_data(as_text=True)
    assert "No one matches" in nothing
    # LIKE wildcards are literal text, not patterns
    assert "No one matches" in client.get("/?q=%25%25").get_data(as_text=True)


def test_search_json_for_the_typeahead(client, web_app):
    data = client.get("/users/search.json?q=123&limit=5").get_json()
    assert data["results"][0]["user_id"] == 123
    assert set(data["results"][0]) == {"user_id", "name", "city", "favourite_genres", "url"}
    assert data["results"][0]["url"] == "/users/123"
    many = client.get("/users/search.json?q=a&limit=5").get_json()
    assert len(many["results"]) == 5 and many["pages"] >= 2 and many["total"] > 5


def test_members_in_the_url_show_their_top_genres(client):
    html = client.get("/?member=123&member=124&member=999999&member=abc").get_data(as_text=True)
    assert html.count('class="member"') == 2
    assert "Listens to most:" in html and 'class="chip"' in html
    assert "There is no user with id 999999" in html
    assert "“abc” is not a user id." in html
    # remove link: the group without that member
    assert 'href="/?member=124"' in html


def test_build_saves_a_prediction_and_redirects_to_its_permalink(client, web_app):
    response = build(client, SEED_GROUP, strategy="fair")
    assert response.status_code == 303
    match = re.fullmatch(r"/playlists/([0-9a-f]{32})", response.headers["Location"])
    assert match
    pid = match.group(1)
    with web_app.app_context():
        row = db.session.get(Prediction, pid)
        assert row.endpoint == "/playlists" and row.model == "advanced" and row.strategy == "fair"
        assert row.members == SEED_GROUP and len(row.track_ids) == 20
    line = log_lines(web_app)[-1]
    assert line["prediction_id"] == pid and line["endpoint"] == "/playlists"
    assert line["user_id"] == 123 and line["other_users"] == [124, 125]

    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<td class=\"num muted\">(\d+)</td>", html)
    assert rows == [str(i) for i in range(1, 21)]
    assert html.count('<td class="heat heat-') >= 20 * 3  # one liking cell per member per track
    fits = re.findall(r'<span class="bar-value">(\d+)%</span>', html)
    assert len(fits) == 3
    assert 'id="taste-match"' in html and 'id="total-duration"' in html
    assert "Permanent link" in html


def test_ab_choice_uses_the_first_members_arm(client, web_app):
    with web_app.app_context():
        from app.experiments import assignment

        assignment.set_include_builder("default", True)  # outside the experiment by default
    response = build(client, SEED_GROUP, model="ab")
    pid = response.headers["Location"].rsplit("/", 1)[1]
    with web_app.app_context():
        row = db.session.get(Prediction, pid)
        from app.experiments import assignment

        assert row.is_ab and row.arm == assignment.arm_for(assignment.active_experiment(), 123).arm
        assert row.model == row.arm


def test_downloads_json_csv_m3u(client, web_app):
    pid = build(client, SEED_GROUP).headers["Location"].rsplit("/", 1)[1]
    doc = client.get(f"/playlists/{pid}.json")
    assert doc.mimetype == "application/json"
    assert "attachment" in doc.headers["Content-Disposition"]
    payload = doc.get_json()
    assert payload["prediction_id"] == pid and len(payload["tracks"]) == 20
    assert [m["user_id"] for m in payload["members"]] == SEED_GROUP
    assert set(payload["tracks"][0]["member_scores"]) == {"123", "124", "125"}
    assert payload["total_duration_ms"] == sum(t["duration_ms"] for t in payload["tracks"])

    table = list(csv.reader(io.StringIO(client.get(f"/playlists/{pid}.csv").get_data(as_text=True))))
    assert table[0][:7] == ["position", "track_id", "name", "artist", "genres", "duration_ms",
                            "explicit"]
    # the member columns carry the labels of the page (unique within the group)
    labels = [m["label"] for m in payload["members"]]
    assert len(set(labels)) == 3
    assert table[0][7:] == [*labels, "for_members", "turn_of", "reason"]
    assert len(table) == 21 and [r[1] for r in table[1:]] == [t["id"] for t in payload["tracks"]]

    m3u = client.get(f"/playlists/{pid}.m3u")
    lines = m3u.get_data(as_text=True).splitlines()
    assert m3u.mimetype == "audio/x-mpegurl" and lines[0] == "#EXTM3U"
    assert sum(1 for line in lines if line.startswith("#EXTINF:")) == 20
    assert f"spotify:track:{payload['tracks'][0]['id']}" in lines


def test_friendly_errors_empty_group_and_unknown_user(client):
    page = client.get("/").get_data(as_text=True)
    empty = client.post("/playlists", data={"csrf_token": csrf_token(page), "length": "20",
                                            "model": "advanced"})
    assert empty.status_code == 422
    assert "The group is empty" in empty.get_data(as_text=True)

    unknown = client.post("/playlists", data={"csrf_token": csrf_token(page), "length": "20",
                                              "member": ["123", "999999"], "model": "advanced"})
    html = unknown.get_data(as_text=True)
    assert unknown.status_code == 422 and "There is no user with id 999999" in html
    assert 'data-member-id="123"' in html  # the known member stays in the group

    too_long = client.post("/playlists", data={"csrf_token": csrf_token(page), "length": "5000",
                                               "member": ["123"], "model": "advanced"})
    assert too_long.status_code == 422
    assert "between 1 and 100" in too_long.get_data(as_text=True)


def test_no_model_is_a_friendly_message(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path)
    with app.app_context():
        db.session.execute(update(ModelVersion).values(active=False))
        db.session.commit()
    client = app.test_client()
    response = build(client, SEED_GROUP, model="advanced")
    assert response.status_code == 503
    assert "No recommendation model is available yet" in response.get_data(as_text=True)
    # the A/B choice falls back to the base model, like the API, and says so on the page
    from app.experiments import assignment

    with app.app_context():
        experiment = assignment.active_experiment()
        user = next(u for u in range(101, 400) if assignment.arm_for(experiment, u).arm == "advanced")
    served = build(client, [user], model="ab")
    assert served.status_code == 303
    page = client.get(served.headers["Location"]).get_data(as_text=True)
    assert "comes from the base model" in page
    assert "No recommendation model has been trained yet" in client.get(
        f"/users/{user}").get_data(as_text=True)


def test_csrf_token_is_required(client):
    response = client.post("/playlists", data={"member": ["123"], "length": "20"})
    assert response.status_code == 400
    assert "The form expired or did not come from this site" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"


def test_names_are_escaped_everywhere(client, web_app):
    evil = "<script>alert(1)</script>"
    with web_app.app_context():
        track = db.session.scalar(select(Track).limit(1))
        db.session.add(Artist(id="evil-artist", name=evil))
        db.session.add(Track(
            id="EvilTrack000000000000x", name=evil, popularity=1, duration_ms=1000,
            explicit=False, artist_id="evil-artist", release_date="2020", danceability=0.5,
            energy=0.5, key=1, loudness=-5.0, speechiness=0.1, acousticness=0.1,
            instrumentalness=0.1, liveness=0.1, valence=0.5, tempo=120.0))
        db.session.get(User, 123).name = evil
        db.session.add(Prediction(
            id="e" * 32, created_at=datetime(2026, 1, 1), endpoint="/playlists",
            model="advanced", model_version=None, is_ab=False, fallback=False, user_id=123,
            other_users=[124], playlist_length=2, strategy="fair", exclude_explicit=False,
            track_ids=["EvilTrack000000000000x", track.id], members=[123, 124],
            member_scores=[[0.5, 0.5], [0.2, 0.9]], member_fit=[0.4, 0.7], elapsed_ms=1.0))
        db.session.commit()
    pages = [client.get("/playlists/" + "e" * 32), client.get("/?q=script&member=123"),
             client.get("/users/search?q=script"), client.get("/users/123")]
    for page in pages:
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert evil not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # CSV cells that a spreadsheet would run as formulas are neutralised
    with web_app.app_context():
        db.session.get(Track, "EvilTrack000000000000x").name = "=HYPERLINK(\"http://x\")"
        db.session.commit()
    table = list(csv.reader(io.StringIO(
        client.get("/playlists/" + "e" * 32 + ".csv").get_data(as_text=True))))
    assert table[1][2] == "'=HYPERLINK(\"http://x\")"


def test_user_page(client, web_app):
    with web_app.app_context():
        user = db.session.get(User, 123)
        declared = sorted(g.name for g in user.favourite_genres)
        events = db.session.scalar(select(db.func.count()).select_from(ListeningEvent)
                                   .where(ListeningEvent.user_id == 123))
    response = client.get("/users/123")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for genre in declared:
        assert genre in html
    assert ("None declared." in html) == (not declared)
    assert events > 0 and 'id="top-artists"' in html and 'id="recent-events"' in html
    assert len(re.findall(r'<li class="bar-row">', html)) >= 2
    top = re.search(r'<table [^>]*id="top-tracks">(.*?)</table>', html, re.S).group(1)
    assert top.count("<tr>") == 21  # header + 20 tracks
    assert len(re.findall(r'<td class="heat heat-(?:\d+|na)">\d+%</td>', top)) == 20
    assert 'href="/?member=123"' in html


def test_user_page_top_list_is_the_built_playlist_by_liking(client, web_app):
    """The person's own top list is the recommender's playlist for them alone, each track with
    its member score as the record would store it (four decimals), highest first, and the
    model version that built it."""
    from html import unescape

    from app.playlists.request import PlaylistRequest
    from app.playlists.service import build_playlist

    with web_app.app_context():
        top = build_playlist(PlaylistRequest.settle([123], 20))
        liking = [round(float(x), 4) for x in top.group.member_scores[:, 0]]
        order = sorted(range(len(liking)), key=lambda i: liking[i], reverse=True)
        want = [(top.tracks[i].name, top.tracks[i].artist, f"{liking[i] * 100:.0f}%")
                for i in order]
        version = top.group.version
    html = client.get("/users/123").get_data(as_text=True)
    table = re.search(r'<table [^>]*id="top-tracks">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r'<td class="track-name">(.*?)(?: <span class="badge|</td>).*?'
                      r'<td>(.*?)</td>.*?<td class="heat [^"]*">(.*?)</td>', table, re.S)
    assert [tuple(unescape(v) for v in row) for row in rows] == want
    assert version and f'<span class="mono">{version}</span>' in table


def test_unknown_pages_are_html_404(client):
    for url in ("/users/999999", "/playlists/" + "0" * 32, "/playlists/" + "0" * 32 + ".csv"):
        response = client.get(url)
        assert response.status_code == 404 and response.mimetype == "text/html", url
        assert "There is nothing at this address" in response.get_data(as_text=True)


def test_builder_recommends_and_settles_on_turns_plus(client, web_app):
    html = client.get("/?member=123").get_data(as_text=True)
    assert re.search(r'<option[^>]*value="turns_plus"[^>]*>turns plus \(recommended\)', html)
    assert "turns (recommended)" not in html
    page = client.get("/?member=123").get_data(as_text=True)
    response = client.post("/playlists", data={
        "csrf_token": csrf_token(page), "member": ["123", "124"], "length": "10",
        "model": "advanced"})
    assert response.status_code == 303
    pid = response.headers["Location"].rsplit("/", 1)[1]
    with web_app.app_context():
        assert db.session.get(Prediction, pid).strategy == "turns_plus"


def test_every_track_says_whose_it_is_and_why(client, web_app):
    from app.db import ListeningEvent, Track

    pid = build(client, [123, 124], strategy="average").headers["Location"].rsplit("/", 1)[1]
    tracks = client.get(f"/playlists/{pid}.json").get_json()["tracks"]
    compromise = [t for t in tracks if t["for_members"] == []]
    theirs = [t for t in tracks if t["for_members"]]
    assert compromise and theirs  # the average takes tracks that are nobody's favourite
    assert all(t["reason"] == "group" and t["reason_member"] is None for t in compromise)
    for t in theirs:
        assert t["reason"] != "group" and t["reason_member"] in t["for_members"]
        match = re.fullmatch(r"you played this (track|artist) (\d+) times", t["reason"])
        if match:  # the count quoted is the member's own plays in the database
            ev = ListeningEvent
            query = select(db.func.count()).select_from(ev).join(Track, Track.id == ev.track_id)
            query = query.where(ev.user_id == t["reason_member"], ev.event_type == "play")
            with web_app.app_context():
                if match.group(1) == "track":
                    query = query.where(ev.track_id == t["id"])
                else:
                    artist = db.session.get(Track, t["id"]).artist_id
                    query = query.where(Track.artist_id == artist)
                assert db.session.scalar(query) == int(match.group(2))
    html = client.get(f"/playlists/{pid}").get_data(as_text=True)
    assert html.count("for the whole group: a compromise") == len(compromise)
    body = client.get(f"/playlists/{pid}.csv").get_data(as_text=True)
    table = list(csv.reader(io.StringIO(body)))
    assert sum(r[-1].startswith("for the whole group") for r in table[1:]) == len(compromise)


def test_turns_known_reads_each_members_own_history(client, web_app):
    from app.playlists.holder import get_holder
    from app.playlists.histories import known_histories

    members = [123, 124, 125]
    with web_app.app_context():
        rec = get_holder().current().recommender
        known = known_histories(rec.catalogue, members, rec.model.params.weights)
        for uid, top in zip(members, known):
            heard = set(db.session.scalars(select(ListeningEvent.track_id).where(
                ListeningEvent.user_id == uid,
                ListeningEvent.event_type.in_(("play", "like")))).all())
            assert len(top) and set(rec.catalogue.item_ids[top].astype(str)) <= heard
    pid = build(client, members, strategy="turns_known").headers["Location"].rsplit("/", 1)[1]
    payload = client.get(f"/playlists/{pid}.json").get_json()
    assert payload["strategy"] == "turns_known" and len(payload["tracks"]) == 20
    assert {t["turn_of"] for t in payload["tracks"]} >= set(members)
