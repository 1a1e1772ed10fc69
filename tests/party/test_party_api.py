"""The parties' JSON API in-process, on the trained small world."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.db import Genre, PartyEvent, User
from app.extensions import db


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def users(app, count, start=0):
    with app.app_context():
        return [u for (u,) in db.session.execute(db.select(User.user_id).order_by(User.user_id)
                                                 .offset(start).limit(count))]


def a_genre(app):
    with app.app_context():
        return db.session.scalar(db.select(Genre.name).order_by(Genre.name).limit(1))


def log_lines(app):
    path = Path(app.config["PREDICTIONS_LOG"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def assert_queue_shape(q):
    assert list(q) == ["now_playing", "upcoming", "played", "guests"]
    tracks = ([q["now_playing"]] if q["now_playing"] else []) + q["upcoming"] + q["played"]
    for t in tracks:
        assert list(t) == ["id", "name", "artist", "for"]
        assert isinstance(t["id"], str) and isinstance(t["name"], str)
        assert all(isinstance(g, int) for g in t["for"])
    for g in q["guests"]:
        assert list(g) == ["guest_id", "user_id", "name"]


def test_walk_create_join_queue_skip_next_leave_end(api_app, api_client):
    host, member, joiner = users(api_app, 3)
    r = api_client.post("/parties", json={"host_user_id": host, "members": [member]})
    assert r.status_code == 201, r.get_data(as_text=True)
    created = r.get_json()
    assert list(created) == ["party_id", "join_code", "host_token"]
    pid, code, host_token = created["party_id"], created["join_code"], created["host_token"]
    assert len(code) >= 22  # >= 128 bits in URL-safe base64

    r = api_client.post(f"/parties/{pid}/guests", json={"join_code": code, "user_id": joiner})
    assert r.status_code == 201
    joined = r.get_json()
    assert list(joined) == ["guest_id", "guest_token"]
    gid, gtoken = joined["guest_id"], joined["guest_token"]
    r = api_client.post(f"/parties/{pid}/guests",
                        json={"join_code": code, "genres": [a_genre(api_app)], "name": "Ola"})
    assert r.status_code == 201
    newbie = r.get_json()["guest_id"]

    r = api_client.get(f"/parties/{pid}/queue", headers=bearer(gtoken))
    assert r.status_code == 200
    q = r.get_json()
    assert_queue_shape(q)
    assert q["now_playing"] is not None and len(q["upcoming"]) >= 5
    assert {g["guest_id"] for g in q["guests"]} >= {gid, newbie}
    assert any(g["user_id"] is None and g["name"] == "Ola" for g in q["guests"])
    # the newcomers each get a track of their own within the next 3
    for g in (gid, newbie):
        assert any(g in t["for"] for t in q["upcoming"][:3]), (g, q["upcoming"][:3])
    etag = r.headers["ETag"]
    r = api_client.get(f"/parties/{pid}/queue", headers={**bearer(gtoken),
                                                         "If-None-Match": etag})
    assert r.status_code == 304 and r.headers["ETag"] == etag and not r.data

    # a guest skips the track playing: the upcoming part is re-planned, the rest kept
    playing = q["now_playing"]["id"]
    r = api_client.post(f"/parties/{pid}/events", headers=bearer(gtoken),
                        json={"guest_id": gid, "track_id": playing, "event": "skip"})
    assert r.status_code == 200
    after = r.get_json()
    assert_queue_shape(after)
    assert r.headers["ETag"] != etag
    ids = [t["id"] for t in after["played"]] + ([after["now_playing"]["id"]]
                                                if after["now_playing"] else []) + \
        [t["id"] for t in after["upcoming"]]
    assert len(ids) == len(set(ids))
    # the old ETag no longer matches
    r = api_client.get(f"/parties/{pid}/queue", headers={**bearer(gtoken),
                                                         "If-None-Match": etag})
    assert r.status_code == 200

    # a guest cannot act as another guest, nor take the host's actions
    r = api_client.post(f"/parties/{pid}/events", headers=bearer(gtoken),
                        json={"guest_id": newbie, "track_id": playing, "event": "like"})
    assert r.status_code == 403 and r.get_json()["error"] == "not_yourself"
    assert api_client.post(f"/parties/{pid}/next", headers=bearer(gtoken)).status_code == 403

    before = after["now_playing"]["id"]
    r = api_client.post(f"/parties/{pid}/next", headers=bearer(host_token))
    assert r.status_code == 200
    nxt = r.get_json()
    assert_queue_shape(nxt)
    assert before in [t["id"] for t in nxt["played"]]
    assert nxt["now_playing"]["id"] != before

    r = api_client.delete(f"/parties/{pid}/guests/{gid}", headers=bearer(gtoken))
    assert r.status_code == 200
    left = r.get_json()
    assert gid not in {g["guest_id"] for g in left["guests"]}
    assert all(gid not in t["for"] for t in left["upcoming"])
    r = api_client.post(f"/parties/{pid}/events", headers=bearer(gtoken),
                        json={"guest_id": gid, "track_id": before, "event": "like"})
    assert r.status_code == 403

    r = api_client.delete(f"/parties/{pid}", headers=bearer(gtoken))
    assert r.status_code == 403
    r = api_client.delete(f"/parties/{pid}", headers=bearer(host_token))
    assert r.status_code == 204
    for call in (lambda: api_client.get(f"/parties/{pid}/queue", headers=bearer(host_token)),
                 lambda: api_client.post(f"/parties/{pid}/guests",
                                         json={"join_code": code, "user_id": joiner}),
                 lambda: api_client.post(f"/parties/{pid}/next", headers=bearer(host_token))):
        r = call()
        assert r.status_code == 410 and r.get_json()["error"] == "party_ended"

    # every re-plan was one predictions-log line, and every event is kept
    lines = [x for x in log_lines(api_app) if x.get("party_id") == pid]
    reasons = [x["reason"] for x in lines]
    assert reasons[0] == "start" and "join" in reasons and "skip" in reasons \
        and "leave" in reasons
    text = Path(api_app.config["PREDICTIONS_LOG"]).read_text()
    assert host_token not in text and gtoken not in text and code not in text
    with api_app.app_context():
        kinds = [e.kind for e in db.session.scalars(db.select(PartyEvent).where(
            PartyEvent.party_id == pid).order_by(PartyEvent.id))]
    assert kinds.count("replan") == len(lines)
    for k in ("create", "join", "skip", "next", "leave", "end"):
        assert k in kinds


@pytest.fixture
def party(api_app, api_client):
    host, member = users(api_app, 2, start=10)
    r = api_client.post("/parties", json={"host_user_id": host, "members": [member]})
    return r.get_json()


def test_wrong_join_code_and_tokens_of_another_party(api_app, api_client, party):
    pid = party["party_id"]
    r = api_client.post(f"/parties/{pid}/guests",
                        json={"join_code": party["join_code"][:-1] + "x", "user_id": 1})
    assert r.status_code == 404 and r.get_json()["error"] == "unknown_party"
    other = api_client.post("/parties", json={"host_user_id": users(api_app, 1, 20)[0]}) \
        .get_json()
    # the other party's host token does not open this party
    r = api_client.get(f"/parties/{pid}/queue", headers=bearer(other["host_token"]))
    assert r.status_code == 403
    r = api_client.get(f"/parties/{pid}/queue")
    assert r.status_code == 401
    forged = party["host_token"][:-2] + ("AA" if not party["host_token"].endswith("AA") else "BB")
    assert api_client.get(f"/parties/{pid}/queue", headers=bearer(forged)).status_code == 403


def test_bad_input_gets_the_error_contract(api_client, party):
    pid = party["party_id"]
    for body in ({"host_user_id": "1"}, {"host_user_id": 1, "members": [1.5]},
                 {"host_user_id": 1, "strategy": "nope"}):
        r = api_client.post("/parties", json=body)
        assert r.status_code == 422 and set(r.get_json()) == {"error", "message", "details"}
    r = api_client.post("/parties", json={"host_user_id": 999_999})
    assert r.status_code == 404 and r.get_json()["error"] == "unknown_users"
    r = api_client.post(f"/parties/{pid}/guests", json={"join_code": party["join_code"]})
    assert r.status_code == 422
    r = api_client.post(f"/parties/{pid}/guests", json={"join_code": party["join_code"],
                                                        "genres": ["no such genre"]})
    assert r.status_code == 422
    r = api_client.post(f"/parties/{pid}/events", headers=bearer(party["host_token"]),
                        json={"guest_id": 1, "track_id": "x", "event": "dance"})
    assert r.status_code == 422
    r = api_client.post("/parties/nope/next", headers=bearer(party["host_token"]))
    assert r.status_code == 404
    r = api_client.post(f"/parties/{pid}/events", headers=bearer(party["host_token"]),
                        data="{", content_type="application/json")
    assert r.status_code == 400


def test_cookie_changes_need_the_request_header(api_app, api_client, party):
    pid = party["party_id"]
    api_client.set_cookie(f"pz_party_{pid}", party["host_token"])
    assert api_client.get(f"/parties/{pid}/queue").status_code == 200
    assert api_client.post(f"/parties/{pid}/next").status_code == 403
    r = api_client.post(f"/parties/{pid}/next", headers={"X-Requested-With": "pozytywka"})
    assert r.status_code == 200


def test_join_is_rate_limited(api_world, tmp_path):
    from tests.support.apps import make_api_app

    app = make_api_app(api_world, tmp_path, PARTY_JOIN_RATE_LIMIT="3 per minute",
                       RATELIMIT_STORAGE_URI="memory://")
    client = app.test_client()
    r = client.post("/parties", json={"host_user_id": users(app, 1)[0]})
    pid = r.get_json()["party_id"]
    codes = [client.post(f"/parties/{pid}/guests", json={"join_code": "guess", "user_id": 1})
             .status_code for _ in range(5)]
    assert codes[:3] == [404, 404, 404] and codes[3:] == [429, 429]


def test_the_clock_advances_the_queue_and_silent_guests_time_out(api_app, api_client, party,
                                                                 monkeypatch):
    from datetime import timedelta

    from app.common.clock import utcnow
    from app.party import service

    pid, host = party["party_id"], bearer(party["host_token"])
    joiner = users(api_app, 1, start=30)[0]
    g = api_client.post(f"/parties/{pid}/guests",
                        json={"join_code": party["join_code"], "user_id": joiner}).get_json()
    q0 = api_client.get(f"/parties/{pid}/queue", headers=host).get_json()
    assert g["guest_id"] in {x["guest_id"] for x in q0["guests"]}
    later = utcnow() + timedelta(minutes=30)  # past the silence timeout and several tracks
    monkeypatch.setattr(service, "utcnow", lambda: later)
    q1 = api_client.get(f"/parties/{pid}/queue", headers=host).get_json()
    # the silent phone guest is gone; the members the host brought stay
    assert g["guest_id"] not in {x["guest_id"] for x in q1["guests"]}
    assert len(q1["guests"]) == 2
    # half an hour on, several tracks have ended: played in their order, another plays
    played = [t["id"] for t in q1["played"]]
    assert played[0] == q0["now_playing"]["id"]
    assert len(played) >= 5 and len(set(played)) == len(played)
    # the guest left at the end of their silence, when the queue was re-planned without them
    assert all(g["guest_id"] not in t["for"] for t in q1["played"][2:] + q1["upcoming"])
    assert q1["now_playing"] is not None and len(q1["upcoming"]) >= 5
    with api_app.app_context():
        kinds = [e.kind for e in db.session.scalars(db.select(PartyEvent).where(
            PartyEvent.party_id == pid))]
    assert "timeout" in kinds


def test_only_failed_joins_count_against_the_limit_and_pages_share_it(api_world, tmp_path):
    from tests.support.apps import make_api_app

    app = make_api_app(api_world, tmp_path, PARTY_JOIN_RATE_LIMIT="4 per minute",
                       RATELIMIT_STORAGE_URI="memory://")
    client = app.test_client()
    party = client.post("/parties", json={"host_user_id": users(app, 1)[0]}).get_json()
    pid, code = party["party_id"], party["join_code"]
    ok = [client.post(f"/parties/{pid}/guests", json={"join_code": code, "genres": [a_genre(app)]})
          .status_code for _ in range(6)]
    assert ok == [201] * 6
    assert client.get(f"/party/{pid}/join?code=guess").status_code == 404
    assert client.get(f"/party/{pid}/join?code=guess2").status_code == 404
    codes = [client.post(f"/parties/{pid}/guests", json={"join_code": "g", "user_id": 1})
             .status_code for _ in range(3)]
    assert codes == [404, 404, 429]
    assert client.get(f"/party/{pid}/join?code={code}").status_code == 429


def test_a_party_replays_from_its_events(api_app, api_client):
    from app.party import service

    host, member, a, b = users(api_app, 4, start=40)
    party = api_client.post("/parties", json={"host_user_id": host, "members": [member]}) \
        .get_json()
    pid, code, ht = party["party_id"], party["join_code"], bearer(party["host_token"])
    ga = api_client.post(f"/parties/{pid}/guests", json={"join_code": code, "user_id": a}) \
        .get_json()
    api_client.post(f"/parties/{pid}/guests",
                    json={"join_code": code, "genres": [a_genre(api_app)]})
    q = api_client.get(f"/parties/{pid}/queue", headers=ht).get_json()
    api_client.post(f"/parties/{pid}/events", headers=bearer(ga["guest_token"]),
                    json={"guest_id": ga["guest_id"], "track_id": q["now_playing"]["id"],
                          "event": "skip"})
    api_client.post(f"/parties/{pid}/events", headers=bearer(ga["guest_token"]),
                    json={"guest_id": ga["guest_id"], "track_id": q["upcoming"][0]["id"],
                          "event": "like"})
    api_client.post(f"/parties/{pid}/next", headers=ht)
    api_client.delete(f"/parties/{pid}/guests/{ga['guest_id']}", headers=ht)
    with api_app.app_context():
        steps = service.replay(pid)
    assert [s["reason"] for s in steps][:3] == ["start", "join", "join"]
    assert "skip" in [s["reason"] for s in steps] and "leave" in [s["reason"] for s in steps]
    assert all(s["same"] for s in steps), [(s["reason"], s["stored"], s["replayed"])
                                           for s in steps if not s["same"]]
    result = api_app.test_cli_runner().invoke(args=["party", "replay", pid])
    assert result.exit_code == 0 and "replayed identically" in result.output


def test_replan_lines_carry_the_logs_original_fields(api_app, api_client, party):
    lines = [x for x in log_lines(api_app) if x.get("party_id") == party["party_id"]]
    assert lines
    for line in lines:
        for key in ("user_id", "other_users", "playlist", "timestamp", "elapsed_time", "model",
                    "is_ab", "prediction_id", "model_version"):
            assert key in line
        assert line["model"] == "party" and line["playlist"] == line["queue"]
    assert len({x["prediction_id"] for x in log_lines(api_app)}) == len(log_lines(api_app))


def test_a_plan_that_cannot_be_logged_is_503_and_changes_nothing(api_app, api_client, party,
                                                                 tmp_path):
    """Every party call answers the service's refusals in the error contract: here the
    predictions log cannot be written, so the re-plan a join makes is refused as a whole."""
    pid, code = party["party_id"], party["join_code"]
    before = api_client.get(f"/parties/{pid}/queue", headers=bearer(party["host_token"]))
    api_app.config["PREDICTIONS_LOG"] = str(tmp_path)  # a folder: no line can be appended
    joiner = users(api_app, 1, start=5)[0]
    r = api_client.post(f"/parties/{pid}/guests", json={"join_code": code, "user_id": joiner})
    assert r.status_code == 503 and r.get_json()["error"] == "log_unavailable"
    assert r.headers["Retry-After"] == "5"  # the service's own, not the limit's window
    r = api_client.post("/parties", json={"host_user_id": joiner})
    assert r.status_code == 503 and r.get_json()["error"] == "log_unavailable"
    after = api_client.get(f"/parties/{pid}/queue", headers=bearer(party["host_token"]))
    assert after.get_json()["guests"] == before.get_json()["guests"]
