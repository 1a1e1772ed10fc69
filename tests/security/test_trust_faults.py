"""Issue 12 ("Trust"), part b: each finding as a test that failed before its fix.

Future timestamps, a corrupt active model on a fresh worker, /health that checks what serving
writes, request parameters that crashed pages, overflowing experiment weights, control
characters in names and downloads, artist ids without a stated format, and very long lines.
"""
from __future__ import annotations

import json
import shutil
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from app.data.importer.write import import_export
from app.db import Artist, ListeningEvent, ModelVersion, Prediction, Track, User
from app.experiments import assignment
from app.extensions import db
from tests.support.apps import make_api_app, sqlite_url
from tests.support.paths import FAULTY_EXPORT

FIXTURE = FAULTY_EXPORT
SUMMER = "2iUmqdfGZcHIhS3b9E9EWq"
ALPHA = "0LyfQWJT6nXafLPZqxe9Of"
PASSWORD = "correct horse battery staple"
SEED = {"user_id": 101, "other_users": [102, 103], "playlist_length": 10}


def export_with(tmp_path: Path, **extra_lines: list) -> Path:
    """The faulty fixture export with extra rows appended (file stem -> rows or raw lines)."""
    out = tmp_path / "export"
    shutil.copytree(FIXTURE, out)
    for stem, rows in extra_lines.items():
        with open(out / f"{stem}.jsonl", "ab") as fh:
            for row in rows:
                fh.write(row if isinstance(row, bytes) else (json.dumps(row) + "\n").encode())
    return out


def event(ts: str, session: int = 900, event_type: str = "play") -> dict:
    return {"session_id": session, "timestamp": ts, "user_id": 101, "track_id": SUMMER,
            "event_type": event_type}


def issues_of(report, name: str) -> dict[int, str]:
    return {i.line: i.reason for i in report.files[name].issues if not i.duplicate}


# ----- Medium 3: timestamps --------------------------------------------------------------------

def test_events_in_the_future_or_before_2000_are_reported_and_skipped(app, tmp_path):
    base = sum(1 for _ in open(FIXTURE / "sessions.jsonl", "rb"))
    export = export_with(tmp_path, sessions=[
        event("2999-01-01T00:00:00"), event("9999-12-31T23:59:59"),
        event("1999-12-31T23:59:59"), event("2024-02-29T10:00:00", session=901),
        event("9999-12-31T23:30:00-01:00")])  # after UTC conversion: past year 9999
    with app.app_context():
        lines: list[str] = []
        report = import_export(export, echo=lines.append)
        found = issues_of(report, "sessions.jsonl")
        assert "in the future" in found[base + 1] and "2999-01-01" in found[base + 1]
        assert "in the future" in found[base + 2]
        assert "before 2000-01-01" in found[base + 3]
        assert base + 4 not in found  # a real event is imported
        assert found[base + 5].startswith("timestamp must be")
        assert f"sessions.jsonl:{base + 1}: timestamp 2999-01-01T00:00:00 is in the future" \
            in "\n".join(lines)
        newest = db.session.scalar(select(ListeningEvent.timestamp)
                                   .order_by(ListeningEvent.timestamp.desc()).limit(1))
        assert newest == datetime(2024, 2, 29, 10)


def test_training_works_with_a_2999_event_in_the_database(world_app):
    """Rows written before the importer refused them: training ignores them and says so."""
    from app.modelstore.loaders import load_interactions as load_from_database
    from app.recommender.features import WeightParams, event_weights
    from app.recommender.training import drop_future_events

    with world_app.app_context():
        user = db.session.scalar(select(ListeningEvent.user_id).limit(1))
        track = db.session.scalar(select(ListeningEvent.track_id)
                                  .where(ListeningEvent.track_id.is_not(None)).limit(1))
        for i, stamp in enumerate([datetime(2999, 1, 1), datetime(9999, 12, 31)]):
            db.session.add(ListeningEvent(dedup_key=-(10**15) - i, session_id=10**12 + i,
                                          timestamp=stamp, user_id=user, track_id=track,
                                          event_type="play"))
        db.session.commit()
        future_ids = db.session.scalars(select(ListeningEvent.id)
                                        .where(ListeningEvent.timestamp > datetime(2900, 1, 1))
                                        ).all()
        data = load_from_database()
        # decay from min(newest, now): the real events keep their weight
        assert event_weights(data.events, WeightParams()).max() > 0.5
        said: list[str] = []
        kept = drop_future_events(data, echo=said.append)
        assert len(kept.events) == len(data.events) - 2 and "ignored 2 events" in said[0]

    result = world_app.test_cli_runner().invoke(
        args=["model", "train", "--epochs", "1", "--components", "8"])
    assert result.exit_code == 0, result.output
    for row_id in future_ids:
        assert f"ignored listening_events id {row_id}:" in result.output
    assert "ignored 2 events later than now + 1 day" in result.output
    with world_app.app_context():
        row = db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
        assert row.data_counts["pairs"] > 0 and row.data_counts["ignored_future_events"] == 2


# ----- Medium 4: model fallback ----------------------------------------------------------------

def _second_version(app) -> tuple[str, str]:
    """(first, second): a newer version is trained and activated, the first stays registered."""
    from app.modelstore import registry
    from app.recommender import artifact
    from app.modelstore.loaders import load_interactions as load_from_database
    from app.recommender.training import TrainParams, train

    with app.app_context():
        first = registry.active().version
        art = artifact.save(train(load_from_database(), TrainParams(epochs=1, components=8)),
                            app.config["MODEL_DIR"])
        registry.register(art, activate=True)
        return first, art.version


def _corrupt(app, version: str) -> None:
    arrays = Path(app.config["MODEL_DIR"]) / version / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64
    arrays.write_bytes(bytes(data))


def test_a_fresh_worker_serves_the_last_version_that_loads(world_app, tmp_path):
    first, second = _second_version(world_app)
    _corrupt(world_app, second)
    # a fresh process (no state loaded) on the same database and model directory
    fresh = make_api_app_on(world_app, tmp_path / "fresh")
    client = fresh.test_client()
    for _ in range(5):
        served = client.post("/predict/advanced", json=SEED)
        assert served.status_code == 200, served.get_json()
        assert served.headers["X-Model-Version"] == first
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json() == {"status": "fallback", "model_version": first,
                                 "reason": "model_fallback"}
    with fresh.app_context():
        from app.playlists.holder import model_status

        status = model_status()
        assert status["fallback"] and status["active_version"] == second
        assert "checksum" in status["error"]

    # activating a good version again ends the fallback
    from app.modelstore import registry

    with fresh.app_context():
        registry.activate(first)
    health = client.get("/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"


def make_api_app_on(app, root: Path):
    from app import create_app

    root.mkdir(parents=True, exist_ok=True)
    return create_app("testing", {
        "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "MODEL_DIR": app.config["MODEL_DIR"], "MODEL_RELOAD_SECONDS": 0,
        "PREDICTIONS_LOG": str(root / "predictions.jsonl"),
        "ADMIN_PASSWORD_HASH": generate_password_hash(PASSWORD)})


def test_model_activate_refuses_a_corrupt_version_and_keeps_the_old_one(world_app, tmp_path):
    first, second = _second_version(world_app)
    runner = world_app.test_cli_runner()
    assert runner.invoke(args=["model", "activate", first]).exit_code == 0
    _corrupt(world_app, second)
    result = runner.invoke(args=["model", "activate", second])
    assert result.exit_code == 1 and "checksum" in result.output
    assert f"version {first} stays active" in result.output

    from app.modelstore import registry

    with world_app.app_context():
        with pytest.raises(registry.ActivationError):
            registry.activate(second)
        assert registry.active().version == first

    # the admin page refuses as well
    admin = make_api_app_on(world_app, tmp_path / "admin")
    client = admin.test_client()
    assert login(client).status_code == 303
    page = client.get("/admin/models").get_data(as_text=True)
    response = client.post(f"/admin/models/{second}/activate",
                           data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert response.status_code == 200
    assert "Not activated" in response.get_data(as_text=True)
    with admin.app_context():
        assert registry.active().version == first


def csrf_token(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client):
    page = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={"csrf_token": csrf_token(page),
                                             "username": "admin", "password": PASSWORD})


# ----- Medium 5: health that lies; Low: health details for admins only -------------------------

def test_health_503_when_the_predictions_log_cannot_be_appended_to(api_world, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    app = make_api_app(api_world, tmp_path, PREDICTIONS_LOG=str(blocker / "p.jsonl"))
    client = app.test_client()
    assert client.post("/predict", json=SEED).status_code == 503
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["reason"] == "log_unwritable"


def test_health_503_when_the_database_cannot_be_written(api_world, tmp_path):
    path = api_world.copy_db(tmp_path)
    app = make_api_app(api_world, tmp_path,
                       SQLALCHEMY_DATABASE_URI=f"sqlite:///file:{path}?mode=ro&uri=true")
    client = app.test_client()
    assert client.post("/predict/base", json=SEED).status_code == 503  # serving cannot record
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json() == {"status": "degraded", "model_version":
                                 health.get_json()["model_version"],
                                 "reason": "database_read_only"}


def test_public_health_shows_no_paths_or_counts_but_the_admin_page_does(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD))
    client = app.test_client()
    public = client.get("/health")
    assert public.status_code == 200
    assert set(public.get_json()) == {"status", "model_version", "reason"}
    text = public.get_data(as_text=True)
    assert str(tmp_path) not in text and "counts" not in text and "/" not in \
        text.replace(public.get_json()["model_version"] or "", "")
    assert client.get("/admin/health").status_code == 302  # login first
    assert login(client).status_code == 303
    page = client.get("/admin/health")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert str(tmp_path / "predictions.jsonl") in html and "Writable" in html
    assert ">200<" in html  # the user count of the small world


# ----- Low: inputs that crashed pages ----------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/users/search.json?q=%C2%B2", "/users/search?q=%C2%B9%C2%B2%C2%B3", "/?q=%C2%B9%C2%B2%C2%B3",
    "/?member=%C2%B2", "/?member=%E2%91%A0", "/users/search.json?q=99999999999999999999999",
    "/?member=1&member=%C2%B2&length=%C2%B2&page=%C2%B2", "/users/99999999999999999999999",
])
def test_odd_digits_in_public_parameters_never_answer_500(api_client, url):
    response = api_client.get(url)
    assert response.status_code < 500, (url, response.status_code)


@pytest.mark.parametrize("query", ["user=%C2%B2", "date_to=9999-12-31", "date_from=9999-12-31",
                                   "user=%D9%A1%D9%A2", "date_to=0001-01-01&page=%C2%B2"])
def test_admin_prediction_filters_never_answer_500(api_world, tmp_path, query):
    app = make_api_app(api_world, tmp_path, ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD))
    client = app.test_client()
    assert login(client).status_code == 303
    response = client.get(f"/admin/predictions?{query}")
    assert response.status_code == 200, query


def test_admin_date_filter_past_the_last_day_is_explained(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, ADMIN_PASSWORD_HASH=generate_password_hash(PASSWORD))
    client = app.test_client()
    assert login(client).status_code == 303
    html = client.get("/admin/predictions?date_to=9999-12-31").get_data(as_text=True)
    assert "Dates are written YYYY-MM-DD." in html
    html = client.get("/admin/predictions?user=%C2%B2").get_data(as_text=True)
    assert "numeric user id" in html


# ----- Low: experiment weights -----------------------------------------------------------------

def test_weights_whose_sum_overflows_are_refused(api_app):
    runner = api_app.test_cli_runner()
    result = runner.invoke(args=["ab", "create", "huge", "--arm", "base=1e308",
                                 "--arm", "advanced=1e308"])
    assert result.exit_code != 0 and "too large" in result.output
    result = runner.invoke(args=["ab", "set-weights", "default", "base=1e308",
                                 "advanced=1e308"])
    assert result.exit_code != 0 and "too large" in result.output
    with api_app.app_context():
        assert dict(assignment.arm_weights(assignment.get_experiment("default"))) == \
            {"base": 0.5, "advanced": 0.5}
        with pytest.raises(assignment.ExperimentError):
            assignment.set_weights("default", {"base": 1.7e308, "advanced": 1.7e308})


def test_stored_huge_weights_still_split_by_their_ratio():
    buckets = [i / 1000 for i in range(1000)]
    arms = [assignment.choose_arm(b, [("base", 1e308), ("advanced", 1e308)]) for b in buckets]
    assert arms.count("base") == 500 and arms.count("advanced") == 500


# ----- Low: control characters and line separators ---------------------------------------------

def test_clean_text():
    from app.common.text import clean_text

    assert clean_text("plain Łódź ♪") == "plain Łódź ♪"
    assert clean_text("a\u2028b\u0085c\vd\x00e\x1bf\tg\r\nh") == "a b c def g  h"
    assert "\n".join(["x", clean_text("y\u2029z")]).splitlines() == ["x", "y z"]


def test_control_characters_are_stripped_at_import(app, tmp_path):
    export = export_with(
        tmp_path,
        artists=[{"id": "A1", "name": "Evil\u2028#EXTINF:1,injected\x00", "genres": ["no\vise"]}],
        users=[{"user_id": 150, "name": "Nul\x00l", "city": "Line\u0085Break", "street": "s",
                "favourite_genres": None, "premium_user": False}])
    with app.app_context():
        import_export(export)
        artist = db.session.get(Artist, "A1")
        assert artist.name == "Evil #EXTINF:1,injected"
        assert [g.name for g in artist.genres] == ["no ise"]
        user = db.session.get(User, 150)
        assert (user.name, user.city) == ("Null", "Line Break")


def test_downloads_carry_no_line_separators_or_nul(api_app, api_client):
    served = api_client.post("/predict/base", json={"user_id": 123, "playlist_length": 5})
    prediction_id = served.headers["X-Prediction-Id"]
    with api_app.app_context():  # names stored before the importer cleaned them
        prediction = db.session.get(Prediction, prediction_id)
        track = db.session.get(Track, prediction.track_ids[0])
        track.name = "Song\u2028#EXTINF:1,Injected\u0085spotify:track:evil\x00"
        track.artist.name = "Band\x0bName"
        db.session.commit()
    m3u = api_client.get(f"/playlists/{prediction_id}.m3u").get_data(as_text=True)
    lines = m3u.splitlines()
    assert sum(line.startswith("#EXTINF") for line in lines) == 5
    assert not any(line.startswith("spotify:track:evil") for line in lines)
    # header, 5 entries of two lines; the rest are "# " comments naming the members
    assert len([line for line in lines if not line.startswith("# ")]) == 2 + 2 * 5
    for fmt in ("csv", "json"):
        body = api_client.get(f"/playlists/{prediction_id}.{fmt}").get_data(as_text=True)
        assert "\x00" not in body and "\u2028" not in body and "\u0085" not in body
        assert "\x0b" not in body and "Band Name" in body


# ----- Low: artist ids; long lines -------------------------------------------------------------

def test_artist_ids_of_any_printable_form_keep_their_tracks_and_events(app, tmp_path):
    short_track = "3yNdYx4Jk1L0p2Q9rS8tUv"
    export = export_with(
        tmp_path,
        artists=[{"id": "A1", "name": "Short Id", "genres": ["pop"]},
                 {"id": "artist:42/ü", "name": "Odd Id", "genres": []},
                 {"id": "x" * 65, "name": "Too long", "genres": []},
                 {"id": "", "name": "Empty", "genres": []},
                 {"id": "tab\there", "name": "Control", "genres": []}],
        tracks=[{"id": short_track, "name": "T", "popularity": 1, "duration_ms": 1000,
                 "explicit": 0, "id_artist": "A1", "release_date": "2020",
                 "danceability": 0.1, "energy": 0.1, "key": 1, "loudness": -5.0,
                 "speechiness": 0.1, "acousticness": 0.1, "instrumentalness": 0.1,
                 "liveness": 0.1, "valence": 0.1, "tempo": 100.0},
                {"id": "A2", "name": "Track ids keep the Spotify check"}],
        sessions=[{"session_id": 77, "timestamp": "2023-06-01T10:00:00", "user_id": 101,
                   "track_id": short_track, "event_type": "play"}])
    with app.app_context():
        report = import_export(export)
        artists = issues_of(report, "artists.jsonl")
        assert sum("printable id of 1..64" in r for r in artists.values()) == 3
        assert db.session.get(Artist, "A1") and db.session.get(Artist, "artist:42/ü")
        assert db.session.get(Track, short_track).artist_id == "A1"
        assert any("22-character base-62" in r for r in issues_of(report,
                                                                   "tracks.jsonl").values())
        assert db.session.scalar(select(ListeningEvent.id)
                                 .where(ListeningEvent.track_id == short_track)) is not None


def test_a_huge_line_is_reported_skipped_and_never_held_whole(app, tmp_path):
    huge = b'{"session_id": 5, "timestamp": "2023-06-01T10:00:00", "user_id": 101, "x": "' + \
        b"a" * (40 << 20) + b'"}\n'
    export = export_with(tmp_path, sessions=[huge, event("2023-06-02T10:00:00", session=902)])
    base = sum(1 for _ in open(FIXTURE / "sessions.jsonl", "rb"))
    with app.app_context():
        tracemalloc.start()
        try:
            report = import_export(export)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    found = issues_of(report, "sessions.jsonl")
    assert found[base + 1].startswith("line too long (41,943,")
    assert base + 2 not in found  # the next line still imports
    assert report.files["sessions.jsonl"].imported == 8
    assert peak < 8 << 20, f"peak {peak / 1e6:.0f} MB of Python allocations"


def test_gunicorn_workers_all_serve_the_fallback(api_world, tmp_path):
    """The issue's repro: 30 calls across fresh workers after the active artifact broke."""
    import requests

    from app import create_app
    from tests.support.servers import start_gunicorn

    db_path = api_world.copy_db(tmp_path)
    model_dir = tmp_path / "models"
    shutil.copytree(api_world.model_dir, model_dir)
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": sqlite_url(db_path),
                                 "MODEL_DIR": str(model_dir)})
    with app.app_context():
        db.session.execute(update(ModelVersion).values(path=str(model_dir) + "/" +
                                                       ModelVersion.version))
        db.session.commit()
        first, second = _second_version(app)
        db.session.remove()
        db.engine.dispose()
    _corrupt(app, second)
    server = start_gunicorn(tmp_path / "srv", database_url=sqlite_url(db_path),
                            model_dir=model_dir, workers=2)
    try:
        versions, statuses = set(), []
        for i in range(30):
            with requests.Session() as fresh:  # new connections spread over the workers
                r = fresh.post(server.url + "/predict/advanced", timeout=30,
                               json={"user_id": 101 + i % 5, "playlist_length": 10})
            statuses.append(r.status_code)
            versions.add(r.headers.get("X-Model-Version"))
        assert statuses == [200] * 30 and versions == {first}
        health = requests.get(server.url + "/health", timeout=10)
        assert health.status_code == 200 and health.json()["reason"] == "model_fallback"
        assert f"model version {second} cannot be loaded" in server.output()
    finally:
        server.stop()
