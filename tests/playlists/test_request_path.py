"""The request path's shortcuts against the plain path: what they skip, and what they must not.

A returning user's A/B arm is served from what this process has seen committed; the base model
reads favourite genres only for members the trained model does not know. Neither may change a
playlist, an arm or a record.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, select

from app.db import Assignment
from app.experiments import assignment
from app.extensions import db
from tests.support.traffic import trust

SEED_BODY = {"user_id": 123, "other_users": [124, 125, 126, 127, 128], "playlist_length": 20}


@contextmanager
def statements(app):
    seen: list[str] = []

    def _record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def test_a_returning_users_arm_costs_no_query_and_stays_the_same(api_app, api_client):
    trust(api_app, api_client)  # only trusted calls store an assignment
    first = api_client.post("/predict", json=SEED_BODY)
    assert first.status_code == 200
    with statements(api_app) as seen:
        again = [api_client.post("/predict", json=SEED_BODY) for _ in range(3)]
    assert all(r.status_code == 200 for r in again)
    assert {r.headers["X-AB-Arm"] for r in again} == {first.headers["X-AB-Arm"]}
    assert not [s for s in seen if "assignments" in s], seen


def test_an_assignment_rolled_back_with_its_prediction_is_stored_by_the_next_request(
        api_app, api_client, tmp_path):
    trust(api_app, api_client)  # only trusted calls store an assignment
    good_log = api_app.config["PREDICTIONS_LOG"]
    blocker = tmp_path / "log-is-a-directory"
    blocker.mkdir()
    api_app.config["PREDICTIONS_LOG"] = str(blocker)
    assert api_client.post("/predict", json=SEED_BODY).status_code == 503
    api_app.config["PREDICTIONS_LOG"] = good_log
    served = api_client.post("/predict", json=SEED_BODY)
    assert served.status_code == 200
    with api_app.app_context():
        experiment = assignment.active_experiment()
        stored = db.session.scalar(select(Assignment.arm).where(
            Assignment.experiment_id == experiment.id, Assignment.user_id == 123))
    assert stored == served.headers["X-AB-Arm"]


def test_base_playlists_of_trained_members_read_no_user_rows(api_app, api_client):
    api_client.post("/predict/base", json=SEED_BODY)  # caches warmed
    with statements(api_app) as seen:
        response = api_client.post("/predict/base", json=SEED_BODY)
    assert response.status_code == 200
    assert not [s for s in seen if "FROM users" in s], seen
    unknown = api_client.post("/predict/base", json={**SEED_BODY, "other_users": [999_999]})
    assert unknown.status_code == 404
    assert unknown.get_json()["details"] == {"unknown_user_ids": [999_999]}


def test_a_playlist_longer_than_the_catalogue_is_422_for_both_models(api_world, tmp_path):
    from sqlalchemy import func

    from app.db import Track
    from tests.support.apps import make_api_app

    app = make_api_app(api_world, tmp_path, MAX_PLAYLIST_LENGTH=1_000_000)
    with app.app_context():
        tracks = db.session.scalar(select(func.count()).select_from(Track))
    client = app.test_client()
    for path in ("/predict/base", "/predict/advanced"):
        response = client.post(path, json={**SEED_BODY, "playlist_length": tracks + 1})
        assert response.status_code == 422, (path, response.get_data(as_text=True))
        assert response.get_json()["error"] == "cannot_build_playlist"
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_prediction_ids_are_time_ordered_uuid7_and_still_32_hex(api_app, api_client):
    """New rows append to the primary-key index: ids sort as they were made; links keep their
    32-hex form; the random tail keeps them unguessable and distinct."""
    import uuid

    from app.playlists.record import time_ordered_id

    ids = [time_ordered_id(now_ns=t * 1_000_000) for t in (1, 2, 2, 3, 10**12)]
    assert ids[:2] + ids[3:] == sorted(ids[:2] + ids[3:]) and ids[1] != ids[2]
    parsed = uuid.UUID(ids[-1])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert int(ids[-1][:12], 16) == 10**12
    assert len({time_ordered_id() for _ in range(5000)}) == 5000

    served = [api_client.post("/predict/base", json={"user_id": 123, "other_users": [124],
                                                     "playlist_length": 5})
              for _ in range(3)]
    pids = [r.headers["X-Prediction-Id"] for r in served]
    assert all(len(p) == 32 and int(p, 16) >= 0 for p in pids)
    assert all(uuid.UUID(p).version == 7 for p in pids)
    assert [p[:12] for p in pids] == sorted(p[:12] for p in pids)
    assert api_client.get(f"/playlists/{pids[0]}").status_code == 200


def _rows(app, where):
    """The stored predictions rows as the database holds them (raw values, no type decoding)."""
    from sqlalchemy import text

    with app.app_context():
        return [dict(r._mapping) for r in db.session.execute(
            text(f"SELECT * FROM predictions WHERE {where} ORDER BY id"))]


def test_the_row_written_on_the_dbapi_connection_is_the_one_sqlalchemy_writes(api_app,
                                                                                api_client):
    """The served row, copied through SQLAlchemy's own Core INSERT under another id, is stored
    byte for byte the same (JSON columns, date-time, booleans, NULLs)."""
    from app.db.experiments import Prediction

    for path, body in (("/predict", SEED_BODY),
                       ("/predict/base", {**SEED_BODY, "other_users": []})):
        served = api_client.post(path, json=body)
        assert served.status_code == 200, served.get_json()
    with api_app.app_context():
        served_rows = list(db.session.scalars(select(Prediction)))
        assert len(served_rows) == 2
        for row in served_rows:
            values = {c.key: getattr(row, c.key) for c in Prediction.__table__.columns}
            values["id"] = "copy-" + row.id
            db.session.execute(Prediction.__table__.insert(), values)
        db.session.commit()
    stored = _rows(api_app, "id NOT LIKE 'copy-%'")
    copies = {r["id"][5:]: r for r in _rows(api_app, "id LIKE 'copy-%'")}
    assert len(stored) == 2
    for row in stored:
        copy = copies[row["id"]]
        assert {**copy, "id": row["id"]} == row


def test_the_row_is_committed_and_a_locked_database_is_an_outage(api_app, api_client, tmp_path):
    """The served row is durable for another connection at once; a write lock held by another
    process makes the request a 503 (driver errors are SQLAlchemy's), not a 500."""
    import sqlite3

    assert api_client.post("/predict", json=SEED_BODY).status_code == 200
    path = api_app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM predictions").fetchone() == (1,)
    api_app.config["SQLITE_BUSY_TIMEOUT_MS"] = 0
    other.execute("BEGIN IMMEDIATE")
    try:
        with api_app.app_context():
            db.session.connection().connection.driver_connection.execute(
                "PRAGMA busy_timeout = 0")
            db.session.rollback()
        locked = api_client.post("/predict/advanced", json=SEED_BODY)
    finally:
        other.rollback()
        other.close()
    assert locked.status_code == 503, locked.get_json()
    assert locked.get_json()["error"] == "database_unavailable"
