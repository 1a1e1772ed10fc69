"""Many phones at once through gunicorn (2 workers, one SQLite file): every answer is one the
API documents, the queue never repeats a track, and the party still replays from its events."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.db import User
from app.extensions import db
from tests.support.apps import make_api_app, sqlite_url
from tests.support.servers import start_gunicorn

pytestmark = pytest.mark.slow


def test_concurrent_guests_skip_like_and_poll(api_world, tmp_path):
    db_path = api_world.copy_db(tmp_path / "srv")
    server = start_gunicorn(tmp_path / "srv", database_url=sqlite_url(db_path),
                            model_dir=api_world.model_dir, workers=2)
    base = server.url
    try:
        app = make_api_app(api_world, tmp_path / "ids")
        with app.app_context():
            ids = db.session.scalars(db.select(User.user_id).order_by(User.user_id)
                                     .limit(13)).all()
        created = requests.post(base + "/parties", json={"host_user_id": ids[0]},
                                timeout=30).json()
        pid, code = created["party_id"], created["join_code"]

        def join(u):
            r = requests.post(f"{base}/parties/{pid}/guests",
                              json={"join_code": code, "user_id": u}, timeout=60)
            assert r.status_code == 201, r.text
            return r.json()

        with ThreadPoolExecutor(6) as pool:
            guests = list(pool.map(join, ids[1:]))
        queue = requests.get(f"{base}/parties/{pid}/queue", timeout=30, headers={
            "Authorization": f"Bearer {created['host_token']}"}).json()
        playing = queue["now_playing"]["id"]
        upcoming = [t["id"] for t in queue["upcoming"]]

        def act(k):
            g = guests[k % len(guests)]
            auth = {"Authorization": f"Bearer {g['guest_token']}"}
            event = "skip" if k % 3 else "like"
            track = playing if k % 2 else upcoming[k % len(upcoming)]
            statuses = [requests.post(f"{base}/parties/{pid}/events", headers=auth, timeout=60,
                                      json={"guest_id": g["guest_id"], "track_id": track,
                                            "event": event}).status_code]
            statuses.append(requests.get(f"{base}/parties/{pid}/queue", headers=auth,
                                         timeout=60).status_code)
            return statuses

        with ThreadPoolExecutor(8) as pool:
            statuses = [s for pair in pool.map(act, range(36)) for s in pair]
        # 422: a skipped upcoming track is out of the queue before another guest's like of it
        assert set(statuses) <= {200, 409, 422}, statuses
        assert statuses.count(200) >= len(statuses) * 0.8
        final = requests.get(f"{base}/parties/{pid}/queue", timeout=30, headers={
            "Authorization": f"Bearer {created['host_token']}"}).json()
        ids_all = [t["id"] for t in final["played"]] + [final["now_playing"]["id"]] + \
            [t["id"] for t in final["upcoming"]]
        assert len(ids_all) == len(set(ids_all))
        lines = server.log_lines()
        assert len({x["prediction_id"] for x in lines}) == len(lines)
        check = make_api_app(api_world, tmp_path / "check",
                             SQLALCHEMY_DATABASE_URI=sqlite_url(db_path))
        with check.app_context():
            from app.party import service

            steps = service.replay(pid)
        assert steps and all(s["same"] for s in steps)
    finally:
        server.stop()
