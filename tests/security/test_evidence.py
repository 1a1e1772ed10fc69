"""The A/B verdict counts only what trusted callers vouch for.

Each test replays a step of an attack that worked before: anonymous playlists counted as
evidence, arms computed offline from the public experiment name, the builder form adding A/B
rows without any limit, one user's many playlists and single-track playlists weighing in the
success rate.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from app.api import clients
from app.db import ApiClient, Experiment, Feedback, ListeningEvent, Prediction, Track
from app.db.experiments import Assignment
from app.experiments import assignment
from app.experiments.report import build_report
from app.extensions import db
from tests.support.apps import make_api_app
from tests.support.pages import ADMIN_PASSWORD, csrf_token, login
from tests.support.traffic import feedback_token

SEED = {"user_id": 123, "other_users": [124, 125], "playlist_length": 10}


def _key(app, name="backend") -> str:
    with app.app_context():
        return clients.create_client(name)[1]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _new_experiment(app, name="exp-evidence", **kwargs) -> int:
    with app.app_context():
        return assignment.create_experiment(name, {"base": 0.5, "advanced": 0.5},
                                            activate=True, **kwargs).id


# ----- API clients ---------------------------------------------------------------------------

def test_api_key_cli_stores_a_hash_lists_revokes_and_audits(api_app, caplog):
    runner = api_app.test_cli_runner()
    caplog.set_level(logging.INFO, logger="pozytywka.audit")
    created = runner.invoke(args=["api-key", "create", "backend"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("pzk_") and len(key) == 47
    with api_app.app_context():
        row = db.session.scalar(select(ApiClient).where(ApiClient.name == "backend"))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and key not in (
            row.key_hash, row.key_prefix)
    assert runner.invoke(args=["api-key", "create", "backend"]).exit_code != 0  # name taken
    listing = runner.invoke(args=["api-key", "list"]).output
    assert "backend" in listing and "active" in listing and key not in listing
    client = api_app.test_client()
    assert client.post("/predict", json=SEED, headers=_bearer(key)).status_code == 200
    revoked = runner.invoke(args=["api-key", "revoke", "backend"])
    assert revoked.exit_code == 0 and "revoked" in runner.invoke(args=["api-key", "list"]).output
    refused = client.post("/predict", json=SEED, headers=_bearer(key))
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_api_key"
    audit = [r.getMessage() for r in caplog.records if r.name == "pozytywka.audit"]
    assert any("API client backend created" in line for line in audit)
    assert any("API client backend revoked" in line for line in audit)
    assert not any(key in line for line in audit)


def test_without_anonymous_calls_predict_and_feedback_need_a_key(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, ALLOW_ANONYMOUS_API=False)
    client = app.test_client()
    key = _key(app)
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
                    _bearer("pzk_" + "A" * 43), _bearer("not-a-key")):
        for path in ("/predict", "/predict/base", "/predict/advanced"):
            answer = client.post(path, json=SEED, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert answer.get_json()["error"] in ("api_key_required", "invalid_api_key")
    served = client.post("/predict", json=SEED, headers=_bearer(key))
    assert served.status_code == 200
    body = {"prediction_id": served.headers["X-Prediction-Id"], "user_id": 123,
            "track_id": served.get_json()[0]["id"], "event_type": "play",
            "feedback_token": feedback_token(served, 123)}
    assert client.post("/feedback", json=body).status_code == 401
    assert client.post("/feedback", json=body, headers=_bearer(key)).status_code == 201
    assert client.get("/health").status_code == 200  # the health check stays open
    with app.app_context():
        row = db.session.get(Prediction, served.headers["X-Prediction-Id"])
        assert row.trusted and row.client_id is not None


def test_a_wrong_key_is_refused_even_where_anonymous_calls_are_allowed(api_app, api_client):
    assert api_app.config["ALLOW_ANONYMOUS_API"]
    answer = api_client.post("/predict", json=SEED, headers=_bearer("pzk_" + "B" * 43))
    assert answer.status_code == 401 and answer.get_json()["error"] == "invalid_api_key"
    with api_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Prediction)) == 0


def test_production_refuses_anonymous_calls_by_default(monkeypatch):
    monkeypatch.delenv("ALLOW_ANONYMOUS_API", raising=False)
    import importlib

    import config

    fresh = importlib.reload(config)
    try:
        assert fresh.ProductionConfig.ALLOW_ANONYMOUS_API is False
        assert fresh.DevelopmentConfig.ALLOW_ANONYMOUS_API is False
    finally:
        importlib.reload(config)


def test_each_client_has_its_own_limit_apart_from_anonymous_callers(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="2 per minute",
                       CLIENT_PREDICT_RATE_LIMIT="3 per minute")
    client = app.test_client()
    one, two = _key(app, "one"), _key(app, "two")
    addr = {"REMOTE_ADDR": "203.0.113.7"}
    first = [client.post("/predict", json=SEED, headers=_bearer(one), environ_base=addr)
             .status_code for _ in range(4)]
    assert first == [200, 200, 200, 429]
    # another client from the same address has its own budget, and so do anonymous callers
    assert client.post("/predict/base", json=SEED, headers=_bearer(two),
                       environ_base=addr).status_code == 200
    anonymous = [client.post("/predict", json=SEED, environ_base=addr).status_code
                 for _ in range(3)]
    assert anonymous == [200, 200, 429]


# ----- what counts as evidence ---------------------------------------------------------------

def test_anonymous_playlists_are_served_but_left_out_of_every_figure(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path,
                       ADMIN_PASSWORD_HASH=generate_password_hash(ADMIN_PASSWORD))
    experiment_id = _new_experiment(app)
    client = app.test_client()
    key = _key(app)
    arms = set()
    for user in range(101, 121):  # anonymous: served by arm as before
        answer = client.post("/predict", json={**SEED, "user_id": user, "other_users": []})
        assert answer.status_code == 200 and answer.headers["X-Experiment"] == "exp-evidence"
        arms.add(answer.headers["X-AB-Arm"])
    assert arms == {"base", "advanced"}
    trusted = client.post("/predict", json={**SEED, "user_id": 150, "other_users": []},
                          headers=_bearer(key))
    assert trusted.status_code == 200
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        rows = db.session.execute(select(Prediction.user_id, Prediction.trusted)
                                  .where(Prediction.experiment_id == experiment_id)).all()
        assert sorted(t for _, t in rows) == [False] * 20 + [True]
        # only the trusted call stored an assignment: the sample-ratio check never sees the rest
        assigned = db.session.scalars(select(Assignment.user_id)
                                      .where(Assignment.experiment_id == experiment_id)).all()
        assert assigned == [150]
        report = build_report(experiment)
        assert report.untrusted == 20 and report.total_served == 1
        assert sum(a.served for a in report.arms) == 1 and report.assigned_total == 1
    assert login(client).status_code == 303
    page = client.get(f"/admin/?experiment={experiment_id}").get_data(as_text=True)
    assert 'id="left-out"' in page and "<strong>20</strong> playlists from untrusted" in page


def test_the_salt_is_secret_so_arms_cannot_be_computed_from_the_name(api_app, api_client):
    _new_experiment(api_app, "exp-salted")
    with api_app.app_context():
        experiment = assignment.get_experiment("exp-salted")
        salt = experiment.salt
        assert salt != "exp-salted" and len(salt) == 32
        with pytest.raises(assignment.ExperimentError, match="not the experiment's name"):
            assignment.create_experiment("named", {"base": 1.0}, salt="named")
        with pytest.raises(assignment.ExperimentError, match="16-64"):
            assignment.create_experiment("short", {"base": 1.0}, salt="s2")
    guessed = right = 0
    for user in range(101, 261):
        answer = api_client.post("/predict",
                                 json={"user_id": user, "other_users": [],
                                       "playlist_length": 5})
        assert answer.status_code == 200
        assert salt not in str(answer.headers)
        by_name = assignment.choose_arm(assignment.bucket("exp-salted", user),
                                        [("base", 0.5), ("advanced", 0.5)])
        guessed += 1
        right += by_name == answer.headers["X-AB-Arm"]
    # the attack's offline prediction (sha256 of name and id) was right for 240 of 240 users;
    # with the secret salt it is a coin toss
    assert 0.3 < right / guessed < 0.7


def test_builder_playlists_are_outside_the_experiment_unless_included(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path,
                       ADMIN_PASSWORD_HASH=generate_password_hash(ADMIN_PASSWORD))
    experiment_id = _new_experiment(app)
    client = app.test_client()
    page = client.get("/?member=123").get_data(as_text=True)
    assert '<option selected value="advanced">' in page  # the serving model by default

    def build(model="ab"):
        page = client.get("/?member=123").get_data(as_text=True)
        return client.post("/playlists", data={"csrf_token": csrf_token(page),
                                               "member": ["123", "124"], "length": "10",
                                               "model": model})

    assert build().status_code == 303
    with app.app_context():
        row = db.session.scalar(select(Prediction).order_by(Prediction.created_at.desc()))
        assert not row.is_ab and row.arm is None and row.model == "advanced"
        assert db.session.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.experiment_id == experiment_id)) == 0
    # an admin includes the builder: its playlists are served by arm and count
    assert login(client).status_code == 303
    admin_page = client.get("/admin/experiments").get_data(as_text=True)
    form = {"csrf_token": csrf_token(admin_page), "include": "1"}
    assert client.post(f"/admin/experiments/{experiment_id}/builder", data=form
                       ).status_code == 200  # the confirmation step
    assert client.post(f"/admin/experiments/{experiment_id}/builder",
                       data={**form, "confirm": "1"}).status_code == 303
    assert build().status_code == 303
    with app.app_context():
        row = db.session.scalar(select(Prediction).order_by(Prediction.created_at.desc()))
        assert row.is_ab and row.trusted and row.experiment_id == experiment_id
        assert db.session.get(Experiment, experiment_id).include_builder


def test_the_builder_shares_the_predict_limit_per_address(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, PREDICT_RATE_LIMIT="3 per minute")
    client = app.test_client()
    addr = {"REMOTE_ADDR": "198.51.100.23"}
    page = client.get("/?member=123", environ_base=addr).get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "member": ["123"], "length": "5", "model": "ab"}
    assert client.post("/predict", json=SEED, environ_base=addr).status_code == 200
    statuses = [client.post("/playlists", data=data, environ_base=addr).status_code
                for _ in range(3)]
    assert statuses == [303, 303, 429]
    assert client.post("/predict", json=SEED, environ_base=addr).status_code == 429
    assert client.post("/playlists", data=data, environ_base={"REMOTE_ADDR": "192.0.2.1"}
                       ).status_code == 303


# ----- the statistics ------------------------------------------------------------------------

def _decided_rows(app, experiment_id: int, rows: list[tuple[int, str, int, bool]]) -> None:
    """Trusted A/B predictions (user, arm, length, success) on one day, all decided: the
    listening data reach well past them, and successes are full plays reported as feedback."""
    with app.app_context():
        newest = db.session.scalar(select(func.max(ListeningEvent.timestamp)))
        tracks = db.session.execute(select(Track.id, Track.duration_ms)
                                    .where(Track.duration_ms > 0).limit(20)).all()
        day = (newest - timedelta(days=10)).replace(hour=9)
        for i, (user, arm, length, success) in enumerate(rows):
            pid = f"p{i:05d}"
            chosen = tracks[:length]
            db.session.add(Prediction(
                id=pid, created_at=day + timedelta(minutes=i), endpoint="/predict",
                model=arm, experiment_id=experiment_id, arm=arm, is_ab=True, trusted=True,
                user_id=user, other_users=[], playlist_length=length,
                track_ids=[t.id for t in chosen], members=[user], elapsed_ms=1.0))
            db.session.flush()
            if success:
                db.session.add_all(Feedback(prediction_id=pid, user_id=user, track_id=t.id,
                                            event_type="play", ms_played=t.duration_ms,
                                            created_at=day + timedelta(minutes=i, seconds=30))
                                   for t in chosen)
        db.session.commit()


def test_one_user_counts_a_few_playlists_a_day_and_single_tracks_never(api_world, tmp_path):
    app = make_api_app(api_world, tmp_path, AB_MAX_PLAYLISTS_PER_USER_DAY=2)
    experiment_id = _new_experiment(app)
    # one base user makes six successful playlists in a day and two single-track ones; the
    # other users one failed playlist each
    rows = [(101, "base", 5, True)] * 6 + [(101, "base", 1, True)] * 2
    rows += [(u, "base", 5, False) for u in range(102, 106)]
    rows += [(u, "advanced", 5, u % 2 == 0) for u in range(150, 156)]
    _decided_rows(app, experiment_id, rows)
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        uncapped = {a.name: a for a in build_report(experiment, max_per_user_day=None).arms}
        report = build_report(experiment)
        arms = {a.name: a for a in report.arms}
    assert uncapped["base"].decided == 10 and uncapped["base"].successes == 6
    base = arms["base"]
    assert base.short == 2 and base.capped == 4
    assert base.decided == 6 and base.successes == 2  # 2 of user 101's, none of the others
    assert base.success_rate == pytest.approx(2 / 6)
    assert arms["advanced"].decided == 6 and arms["advanced"].successes == 3
    assert report.max_per_user_day == 2


def test_the_demo_serves_anonymous_calls_and_the_container_does_not():
    """The README's seed curl keeps working in the demo; the Dockerfile (production) needs keys."""
    from tests.support.paths import ROOT

    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert "export ALLOW_ANONYMOUS_API=${ALLOW_ANONYMOUS_API:-1}" in demo
    docker = (ROOT / "Dockerfile").read_text()
    assert "POZYTYWKA_CONFIG=production" in docker and "ALLOW_ANONYMOUS_API" not in docker


def test_ab_builder_command_includes_and_excludes_with_an_audit_line(api_app, caplog):
    caplog.set_level(logging.INFO, logger="pozytywka.audit")
    runner = api_app.test_cli_runner()
    included = runner.invoke(args=["ab", "builder", "default", "include"])
    assert included.exit_code == 0 and "builder included" in included.output
    with api_app.app_context():
        assert assignment.get_experiment("default").include_builder
    assert "builder outside" in runner.invoke(args=["ab", "builder", "default", "exclude"]).output
    assert runner.invoke(args=["ab", "builder", "missing", "include"]).exit_code != 0
    audit = [r.getMessage() for r in caplog.records if r.name == "pozytywka.audit"]
    assert any("builder playlists included in experiment default" in line for line in audit)


def test_migration_leaves_old_playlists_untrusted_and_keeps_arms_and_feedback(tmp_path):
    """Rows from before keys existed are not evidence; adding the columns must not rebuild the
    tables (on SQLite a rebuild cascades into experiment arms and feedback)."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app

    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    with app.app_context():
        upgrade(revision="0007")
        db.session.execute(text(
            "INSERT INTO predictions (id, created_at, endpoint, model, is_ab, fallback, user_id, "
            "other_users, playlist_length, exclude_explicit, track_ids, members, elapsed_ms, "
            "experiment_id, arm) VALUES ('p1', '2024-01-01', '/predict', 'base', 1, 0, 1, '[]', "
            "1, 0, '[\"t\"]', '[1]', 1.0, 1, 'base')"))
        db.session.execute(text(
            "INSERT INTO feedback (prediction_id, user_id, track_id, event_type, ms_played, "
            "created_at) VALUES ('p1', 1, 't', 'play', 1, '2024-01-01')"))
        db.session.commit()
        upgrade()
        assert db.session.execute(text("SELECT trusted, client_id FROM predictions")).all() \
            == [(0, None)]
        assert db.session.scalar(text("SELECT count(*) FROM feedback")) == 1
        assert db.session.scalar(text("SELECT count(*) FROM experiment_arms")) == 2
        salt = db.session.scalar(text("SELECT salt FROM experiments WHERE name = 'default'"))
        assert salt != "default" and len(salt) == 32
        db.engine.dispose()
