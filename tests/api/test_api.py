"""The JSON API in-process: playlists, headers, records, every error answer, feedback, health."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.common.clock import utcnow
from app.db import Assignment, ModelVersion, Prediction
from app.experiments import assignment
from app.extensions import db
from tests.support.apps import make_api_app
from tests.support.traffic import feedback_token, trust

SEED_BODY = {"user_id": 123, "other_users": [124, 125, 126, 127, 128], "playlist_length": 20}
ENDPOINTS = ("/predict", "/predict/base", "/predict/advanced")


def body(**changes):
    return {**SEED_BODY, **changes}


def log_lines(app) -> list[dict]:
    path = Path(app.config["PREDICTIONS_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def prediction_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Prediction))


def assert_error(response, status: int, error: str):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    payload = response.get_json()
    assert set(payload) == {"error", "message", "details"}
    assert payload["error"] == error and payload["message"]
    return payload


def user_in_arm(app, arm: str, start: int = 101) -> int:
    """A demo user whose hash puts them in ``arm`` of the default experiment."""
    with app.app_context():
        experiment = assignment.active_experiment()
        weights = assignment.arm_weights(experiment)
        return next(u for u in range(start, 301)
                    if assignment.choose_arm(assignment.bucket(experiment.salt, u), weights) == arm)


# ----- served playlists -----

@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_playlist_shape_and_headers(api_app, api_client, endpoint):
    response = api_client.post(endpoint, json=SEED_BODY,
                               headers={"accept": "application/json"})
    assert response.status_code == 200
    tracks = response.get_json()
    assert isinstance(tracks, list) and len(tracks) == 20
    assert all(list(t) == ["id", "name", "artist"] for t in tracks)  # the original key order
    assert all(isinstance(v, str) for t in tracks for v in t.values())
    assert len({t["id"] for t in tracks}) == 20
    headers = response.headers
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Prediction-Id"])
    # the trained model's version only on playlists it built: base uses no trained model
    if headers["X-Model"] == "advanced":
        assert headers["X-Model-Version"] not in ("", "none")
    else:
        assert "X-Model-Version" not in headers
    if endpoint == "/predict":
        assert headers["X-Experiment"] == "default"
        assert headers["X-AB-Arm"] in ("base", "advanced")
        assert headers["X-Model"] == headers["X-AB-Arm"]
    else:
        assert headers["X-Model"] == endpoint.rsplit("/", 1)[1]
        assert "X-AB-Arm" not in headers


def test_each_served_playlist_is_one_row_and_one_log_line(api_app, api_client):
    ids = []
    for endpoint in ENDPOINTS:
        response = api_client.post(endpoint, json=body(strategy="fair", exclude_explicit=True))
        assert response.status_code == 200
        ids.append(response.headers["X-Prediction-Id"])
    lines = log_lines(api_app)
    assert [line["prediction_id"] for line in lines] == ids
    for line, endpoint in zip(lines, ENDPOINTS):
        assert {"user_id", "other_users", "playlist", "timestamp", "elapsed_time", "model",
                "is_ab", "prediction_id", "model_version"} <= set(line)
        assert line["user_id"] == 123 and line["other_users"] == [124, 125, 126, 127, 128]
        assert len(line["playlist"]) == 20 and all(isinstance(t, str) for t in line["playlist"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", line["timestamp"])
        assert 0 < line["elapsed_time"] < 5
        assert line["is_ab"] is (endpoint == "/predict")
    with api_app.app_context():
        rows = {p.id: p for p in db.session.scalars(select(Prediction))}
        assert set(rows) == set(ids)
        for line in lines:
            row = rows[line["prediction_id"]]
            assert row.track_ids == line["playlist"] and row.model == line["model"]
            assert row.members == [123, 124, 125, 126, 127, 128]
            assert row.exclude_explicit and not row.fallback
            assert len(row.member_fit) == 6
            assert len(row.member_scores) == 20 and all(len(s) == 6 for s in row.member_scores)
        advanced = rows[ids[2]]
        assert advanced.strategy == "fair" and advanced.endpoint == "/predict/advanced"
        assert rows[ids[0]].experiment.name == "default" and rows[ids[0]].is_ab


def test_predict_arm_is_sticky_and_follows_weights_for_new_users(api_app, api_client):
    trust(api_app, api_client)  # only trusted calls store an assignment
    user = user_in_arm(api_app, "base")
    newcomer = user_in_arm(api_app, "base", start=user + 1)
    first = api_client.post("/predict", json=body(user_id=user))
    assert first.headers["X-AB-Arm"] == "base"
    with api_app.app_context():
        assignment.set_weights("default", {"base": 0.0, "advanced": 1.0})
    again = api_client.post("/predict", json=body(user_id=user))
    assert again.headers["X-AB-Arm"] == "base" and again.headers["X-Model"] == "base"
    # the newcomer's hash said base under the old weights; unassigned, they follow the new ones
    assert api_client.post("/predict", json=body(user_id=newcomer)).headers["X-AB-Arm"] == \
        "advanced"


def test_predict_without_an_active_experiment_serves_advanced(api_app, api_client):
    with api_app.app_context():
        assignment.stop_experiment("default")
    response = api_client.post("/predict", json=SEED_BODY)
    assert response.status_code == 200
    assert response.headers["X-AB-Arm"] == "none" and response.headers["X-Model"] == "advanced"
    assert log_lines(api_app)[-1]["is_ab"] is False


def test_a_race_lost_to_another_arm_serves_the_stored_arm(api_app, api_client, monkeypatch):
    trust(api_app, api_client)  # only trusted calls store an assignment
    """A first request that computed 'base' but finds 'advanced' stored meanwhile re-serves."""
    user = user_in_arm(api_app, "base")
    with api_app.app_context():
        experiment = assignment.active_experiment()
        stale = assignment.arm_for(experiment, user)
        db.session.add(Assignment(experiment_id=experiment.id, user_id=user, arm="advanced",
                                     bucket=stale.bucket, assigned_at=utcnow()))
        db.session.commit()
    real_arm_for = assignment.arm_for
    calls = []

    def first_call_is_stale(experiment, user_id):
        calls.append(user_id)
        return stale if len(calls) == 1 else real_arm_for(experiment, user_id)

    monkeypatch.setattr(assignment, "arm_for", first_call_is_stale)
    response = api_client.post("/predict", json=body(user_id=user))
    assert response.status_code == 200 and len(calls) == 2
    assert response.headers["X-AB-Arm"] == "advanced" == response.headers["X-Model"]
    assert prediction_count(api_app) == 1 and len(log_lines(api_app)) == 1


# ----- validation: 400, 415, 422, 413, 404, 405 -----

def test_malformed_json_is_400(api_client):
    response = api_client.post("/predict", data='{"user_id": 123,',
                               content_type="application/json")
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(api_client, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    response = api_client.post("/predict", data=json.dumps(SEED_BODY), **kwargs)
    assert_error(response, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(api_client):
    response = api_client.post("/predict/base", data=json.dumps(SEED_BODY),
                               content_type="application/json; charset=utf-8")
    assert response.status_code == 200


INVALID = [
    ({"user_id": 123.0}, "user_id"),
    ({"user_id": True}, "user_id"),
    ({"user_id": "123"}, "user_id"),
    ({"user_id": None}, "user_id"),
    ({"user_id": -1}, "user_id"),
    ({"user_id": 2**40}, "user_id"),
    ({"other_users": [124.0]}, "other_users.0"),
    ({"other_users": [124, False]}, "other_users.1"),
    ({"other_users": "124"}, "other_users"),
    ({"other_users": list(range(101, 151))}, "other_users"),  # 51 users in all
    ({"playlist_length": 0}, "playlist_length"),
    ({"playlist_length": 101}, "playlist_length"),
    ({"playlist_length": 20.0}, "playlist_length"),
    ({"playlist_length": "20"}, "playlist_length"),
    ({"strategy": "loudest"}, "strategy"),
    ({"strategy": 3}, "strategy"),
    ({"exclude_explicit": "yes"}, "exclude_explicit"),
    ({"exclude_explicit": 1}, "exclude_explicit"),
]


@pytest.mark.parametrize(("change", "field"), INVALID, ids=[f"{f}={c[f.split('.')[0]]!r}"[:40]
                                                            for c, f in INVALID])
def test_invalid_fields_are_422_naming_the_field(api_app, api_client, change, field):
    response = api_client.post("/predict", json=body(**change))
    payload = assert_error(response, 422, "validation_error")
    assert field in [problem["field"] for problem in payload["details"]]
    assert all(problem["reason"] for problem in payload["details"])
    assert prediction_count(api_app) == 0


def test_missing_fields_and_non_objects_are_422(api_client):
    payload = assert_error(api_client.post("/predict", json={"user_id": 123}), 422,
                           "validation_error")
    assert [p["field"] for p in payload["details"]] == ["playlist_length"]
    payload = assert_error(api_client.post("/predict", json=[SEED_BODY]), 422, "validation_error")
    assert payload["details"][0]["field"] == "body"


def test_group_size_limit_counts_the_requesting_user(api_client):
    ok = api_client.post("/predict/base", json=body(other_users=list(range(124, 173)),
                                                    playlist_length=5))
    assert ok.status_code == 200  # 50 users in all


def test_limits_come_from_the_config(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, MAX_PLAYLIST_LENGTH=10, MAX_GROUP_SIZE=3)
    client = app.test_client()
    assert_error(client.post("/predict", json=body(playlist_length=11)), 422, "validation_error")
    assert_error(client.post("/predict", json=body(other_users=[124, 125, 126])), 422,
                 "validation_error")
    spec = client.get("/openapi.json").get_json()
    request_schema = spec["components"]["schemas"]["PredictRequest"]["properties"]
    assert request_schema["playlist_length"]["maximum"] == 10
    assert request_schema["other_users"]["maxItems"] == 2


def test_unknown_users_are_404_listing_them(api_app, api_client):
    response = api_client.post("/predict", json=body(other_users=[124, 999999, 5, 124]))
    payload = assert_error(response, 404, "unknown_users")
    assert payload["details"] == {"unknown_user_ids": [5, 999999]}
    assert "5" in payload["message"] and "999999" in payload["message"]
    assert assert_error(api_client.post("/predict/base", json=body(user_id=5)), 404,
                        "unknown_users")["details"] == {"unknown_user_ids": [5]}
    assert prediction_count(api_app) == 0 and log_lines(api_app) == []


def test_oversized_body_is_413(api_app, api_client):
    limit = api_app.config["MAX_CONTENT_LENGTH"]
    padded = json.dumps({**SEED_BODY, "padding": "x" * limit})
    payload = assert_error(api_client.post("/predict", data=padded,
                                           content_type="application/json"),
                           413, "payload_too_large")
    assert payload["details"] == {"max_bytes": limit}


@pytest.mark.parametrize("raw", ["[" * 60_000, '{"a":' * 12_000, "1" * 60_000,
                                 '{"user_id": 1e999999}'])
def test_pathological_json_is_rejected_quickly(api_client, raw):
    started = time.perf_counter()
    response = api_client.post("/predict", data=raw, content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.get_json()["error"] in ("bad_request", "validation_error")
    assert time.perf_counter() - started < 0.5


def test_wrong_method_is_405_json_with_allow(api_client):
    for path, method in [("/predict", "get"), ("/predict/base", "put"), ("/feedback", "delete"),
                         ("/health", "post"), ("/openapi.json", "post")]:
        response = getattr(api_client, method)(path)
        assert_error(response, 405, "method_not_allowed")
        assert "Allow" in response.headers


def test_unknown_path_is_404_json(api_client):
    assert_error(api_client.get("/no/such/page"), 404, "not_found")
    assert_error(api_client.get("/doc/assets/index.html"), 404, "not_found")


def test_unexpected_faults_are_json_500_and_database_outages_503(api_world, tmp_path):
    from sqlalchemy.exc import OperationalError

    app = make_api_app(api_world, tmp_path)

    def broken():
        raise RuntimeError("bug")

    def locked():
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    app.add_url_rule("/_broken", view_func=broken)
    app.add_url_rule("/_locked", view_func=locked)
    client = app.test_client()
    assert_error(client.get("/_broken"), 500, "internal_error")
    response = client.get("/_locked")
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"]


# ----- no model, fallback, and a log that cannot be written -----

@pytest.fixture
def no_model_app(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path)
    with app.app_context():
        db.session.execute(update(ModelVersion).values(active=False))
        db.session.commit()
    return app


def test_no_model_advanced_is_503_and_predict_falls_back_to_base(no_model_app):
    client = no_model_app.test_client()
    payload = assert_error(client.post("/predict/advanced", json=SEED_BODY), 503,
                           "model_unavailable")
    assert "model train" in payload["message"]
    user = user_in_arm(no_model_app, "advanced")
    response = client.post("/predict", json=body(user_id=user))
    assert response.status_code == 200 and len(response.get_json()) == 20
    assert response.headers["X-AB-Arm"] == "advanced" and response.headers["X-Model"] == "base"
    line = log_lines(no_model_app)[-1]
    assert line["fallback"] is True and line["model"] == "base" and line["arm"] == "advanced"
    with no_model_app.app_context():
        row = db.session.get(Prediction, response.headers["X-Prediction-Id"])
        assert row.fallback and row.model == "base" and row.arm == "advanced"
    assert client.post("/predict/base", json=SEED_BODY).status_code == 200
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json() == {"status": "degraded", "model_version": None,
                                 "reason": "model_unavailable"}


def test_a_failed_log_write_is_not_served(api_world, tmp_path):
    log_dir = tmp_path / "log-is-a-directory"
    log_dir.mkdir()
    app = make_api_app(api_world, tmp_path, PREDICTIONS_LOG=str(log_dir))
    response = app.test_client().post("/predict", json=SEED_BODY)
    assert_error(response, 503, "log_unavailable")
    assert prediction_count(app) == 0
    with app.app_context():  # nor is the assignment of that unserved first request kept
        assert assignment.arm_counts(assignment.active_experiment()) == {"base": 0, "advanced": 0}


# ----- feedback -----

def test_feedback(api_app, api_client):
    served = api_client.post("/predict/advanced", json=SEED_BODY)
    prediction_id = served.headers["X-Prediction-Id"]
    track = served.get_json()[3]["id"]
    good = {"prediction_id": prediction_id, "user_id": 125, "track_id": track,
            "event_type": "play", "ms_played": 61_000,
            "feedback_token": feedback_token(served, 125)}
    response = api_client.post("/feedback", json=good)
    assert response.status_code == 201
    stored = response.get_json()
    assert stored["prediction_id"] == prediction_id and stored["ms_played"] == 61_000
    assert api_client.post("/feedback", json={**good, "event_type": "like",
                                              "ms_played": 0}).status_code == 201

    assert_error(api_client.post("/feedback", json={**good, "prediction_id": "0" * 32}), 404,
                 "unknown_prediction")
    for change, field in [({"track_id": "not-in-playlist"}, "track_id"),
                          ({"user_id": 200}, "user_id"),
                          ({"event_type": "advertisement"}, "event_type"),
                          ({"ms_played": -1}, "ms_played"),
                          ({"ms_played": 1.5}, "ms_played"),
                          ({"prediction_id": "xyz"}, "prediction_id"),
                          ({"user_id": 125.0}, "user_id")]:
        payload = assert_error(api_client.post("/feedback", json={**good, **change}), 422,
                               "validation_error")
        assert field in [problem["field"] for problem in payload["details"]], change
    assert_error(api_client.post("/feedback", data="{", content_type="application/json"), 400,
                 "bad_request")
    with api_app.app_context():
        from app.db import Feedback

        rows = db.session.scalars(select(Feedback)).all()
        assert [(r.event_type, r.user_id, r.track_id) for r in rows] == \
            [("play", 125, track), ("like", 125, track)]


# ----- health -----

def test_health_ok(api_client):
    response = api_client.get("/health")
    assert response.status_code == 200
    payload = response.get_json()
    # public: status, version and a reason code only (counts and errors: /admin/health)
    assert set(payload) == {"status", "model_version", "reason"}
    assert payload["status"] == "ok" and payload["reason"] is None and payload["model_version"]


def test_health_503_when_the_database_is_unreachable(tmp_path):
    from app import create_app

    app = create_app("testing", {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}",
        "MODEL_DIR": str(tmp_path / "models"), "PREDICTIONS_LOG": str(tmp_path / "p.jsonl"),
    })
    response = app.test_client().get("/health")
    assert response.status_code == 503
    payload = response.get_json()
    assert payload["status"] == "degraded" and payload["reason"] == "database_unavailable"
    assert "OperationalError" not in response.get_data(as_text=True)  # details are admin-only
    assert_error(app.test_client().post("/predict", json=SEED_BODY), 503, "database_unavailable")


def test_health_503_when_the_artifact_fails_to_load(api_world, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(api_world.model_dir, models)
    app = make_api_app(api_world, tmp_path, MODEL_DIR=str(models))
    with app.app_context():
        version = db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
        version.path = str(models / version.version)
        db.session.commit()
        arrays = next(p for p in (models / version.version).iterdir() if p.suffix == ".npz")
        arrays.write_bytes(arrays.read_bytes()[:-100] + b"\0" * 100)  # tampered on disk
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "model_unavailable"
    served = client.post("/predict/base", json=SEED_BODY)
    assert served.status_code == 200  # the base model still serves


# ----- OpenAPI and Swagger UI -----

def test_openapi_document(api_client):
    response = api_client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.0")
    assert {"/predict", "/predict/base", "/predict/advanced", "/feedback", "/health"} <= \
        set(spec["paths"])
    for path in ("/predict", "/predict/base", "/predict/advanced"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"200", "400", "404", "413", "415", "422", "503"} <= set(responses)
        for code, answer in responses.items():
            if code != "200":
                assert answer["content"]["application/json"]["schema"] == \
                    {"$ref": "#/components/schemas/ErrorBody"}
    assert "X-AB-Arm" in spec["paths"]["/predict"]["post"]["responses"]["200"]["headers"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorBody"]["required"]) == {"error", "message"}
    request = schemas["PredictRequest"]
    assert set(request["required"]) == {"user_id", "playlist_length"}
    assert request["properties"]["playlist_length"]["maximum"] == 100
    assert request["properties"]["strategy"]["nullable"] is True
    assert "anyOf" not in json.dumps(schemas)  # converted to OpenAPI 3.0's nullable


def test_swagger_ui_is_served_from_local_files(api_client):
    page = api_client.get("/doc")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "://" not in html  # no CDN, no absolute URLs
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "doc/assets/swagger-ui-bundle.js" in sources
    for source in sources:
        asset = api_client.get("/" + source)
        assert asset.status_code == 200, source
    init = api_client.get("/static/swagger/init.js").get_data(as_text=True)
    assert '"openapi.json"' in init and "://" not in init
    assert "<script>" not in html  # no inline script: the CSP forbids it
