"""The two attacks that moved the A/B verdict, replayed against a real gunicorn server.

An honest simulated experiment runs first (its backend calls with an API key); then one
anonymous outsider, against the same database served by gunicorn as the demo serves it
(anonymous calls allowed):

1. asks ``/predict`` with ``playlist_length: 1`` for base-arm users (the arm read from the
   answer's ``X-AB-Arm``: stronger than the offline hash the original attack used, which the
   secret salt now defeats) and reports every track played in full, then asks once for every
   advanced-arm user and reports nothing;
2. posts the builder form with ``model=ab`` for advanced-arm users, 300 times.

Before, the verdict went from about +50 to -29 and -14 points with the sample-ratio check
quiet. Now the dashboard's verdict and sample-ratio check are exactly the honest ones, and the
dashboard counts the attacker's playlists as left out.
"""
from __future__ import annotations

import random
import re
import sqlite3
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from app.db import Experiment
from app.experiments.report import build_report
from app.experiments.simulation import SimConfig, simulate, summary
from app.extensions import db
from tests.support.apps import make_api_app, sqlite_url
from tests.support.servers import start_gunicorn

pytestmark = pytest.mark.slow

USERS = range(101, 289)  # the small world's users


@pytest.fixture(scope="module")
def honest(api_world, small_world, tmp_path_factory):
    """An honest experiment on a private copy of the world, left active as a running one."""
    from app.data.generator.ground_truth import GroundTruth

    root = tmp_path_factory.mktemp("ab_attacks")
    app = make_api_app(api_world, root)
    with app.app_context():
        cfg = SimConfig(days=6, groups_per_day=30, seed=11, keep_active=True)
        result = simulate(app.test_client(), cfg,
                          GroundTruth.load(small_world / "ground_truth.npz"))
        figures = summary(result.experiment_id)
        db.session.remove()
        db.engine.dispose()
    return root, result, figures


def _attack_predict_and_feedback(url: str) -> dict[str, int]:
    session = requests.Session()
    counts = {"predictions": 0, "feedback": 0, "base": 0, "advanced": 0}
    arms: dict[int, str] = {}
    for user in USERS:
        for _ in range(2):
            answer = session.post(url + "/predict", timeout=30, json={
                "user_id": user, "other_users": [], "playlist_length": 1})
            assert answer.status_code == 200, answer.text  # served as before
            counts["predictions"] += 1
            arm = arms[user] = answer.headers["X-AB-Arm"]
            counts[arm] += 1
            if arm != "base":
                break  # advanced users: one playlist each, never played
            reported = session.post(url + "/feedback", timeout=30, json={
                "prediction_id": answer.headers["X-Prediction-Id"], "user_id": user,
                "track_id": answer.json()[0]["id"], "event_type": "play",
                "ms_played": 86_400_000, "feedback_token": answer.headers["X-Feedback-Token"]})
            assert reported.status_code == 201, reported.text
            counts["feedback"] += 1
    counts["advanced_users"] = [u for u, a in arms.items() if a == "advanced"]
    return counts


def _attack_builder(url: str, users: list[int], times: int = 300) -> list[int]:
    session = requests.Session()
    page = session.get(url + "/", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    statuses = []
    for i in range(times):
        answer = session.post(url + "/playlists", timeout=30, allow_redirects=False, data={
            "csrf_token": token, "member": [str(users[i % len(users)])], "length": "1",
            "model": "ab"})
        statuses.append(answer.status_code)
    return statuses


def _move_into_the_experiment(db_path, start, wall_clock_after) -> int:
    """The attack ran on the wall clock; the experiment's rows live on the simulated clock.
    Move the attacker's rows (and feedback) to its first day, as the simulation moves its own,
    so that they are decided like the honest ones and would count if anything let them."""
    with sqlite3.connect(db_path, timeout=30) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM predictions WHERE created_at >= ? ORDER BY created_at",
            (wall_clock_after,))]
        for i, pid in enumerate(ids):
            when = start + timedelta(hours=10, seconds=20 * i)
            conn.execute("UPDATE predictions SET created_at = ? WHERE id = ?",
                         (when.isoformat(sep=" "), pid))
            conn.execute("UPDATE feedback SET created_at = ? WHERE prediction_id = ?",
                         ((when + timedelta(minutes=1)).isoformat(sep=" "), pid))
    return len(ids)


def test_the_attacks_leave_the_verdict_and_the_sample_ratio_check_alone(honest, api_world):
    from datetime import datetime

    root, result, before = honest
    (comparison,) = before["comparisons"]
    assert comparison["ci"] is not None and before["srm_flagged"] is False, before
    wall_clock = datetime.utcnow() - timedelta(minutes=1)

    db_path = root / "api.db"
    server = start_gunicorn(root / "server", database_url=sqlite_url(db_path),
                            model_dir=api_world.model_dir, env={
                                "ALLOW_ANONYMOUS_API": "1", "SESSION_COOKIE_SECURE": "0",
                                # both attacks in full: the evidence rules are under test
                                # here; the limits have their own tests
                                "PREDICT_RATE_LIMIT": "2000 per minute"})
    try:
        first = _attack_predict_and_feedback(server.url)
        second = _attack_builder(server.url, first["advanced_users"])
    finally:
        server.stop()
    assert first["base"] > 150 and first["advanced"] > 50 and first["feedback"] == first["base"]
    assert second.count(303) == 300
    moved = _move_into_the_experiment(db_path, result.start, wall_clock)
    assert moved == first["predictions"] + 300

    app = make_api_app(api_world, root / "after",
                       SQLALCHEMY_DATABASE_URI=sqlite_url(db_path))
    with app.app_context():
        after = summary(result.experiment_id)
        experiment = db.session.get(Experiment, result.experiment_id)
        report = build_report(experiment)
        assert experiment.active
        db.session.remove()
        db.engine.dispose()

    (attacked,) = after["comparisons"]
    low, high = comparison["ci"]
    print(f"honest: {comparison}, srm p {before['srm_p_value']}; attacked: {attacked}, "
          f"srm p {after['srm_p_value']}; attack 1 {first['predictions']} playlists "
          f"({first['base']} base, {first['feedback']} feedback), attack 2 {len(second)}")
    assert low <= attacked["difference"] <= high
    assert attacked["difference"] == pytest.approx(comparison["difference"], abs=1e-12)
    assert attacked["p_value"] == pytest.approx(comparison["p_value"])
    assert after["srm_flagged"] is False
    assert after["srm_p_value"] == pytest.approx(before["srm_p_value"])
    assert after["assigned_users"] == before["assigned_users"]
    # the dashboard says what it left out: every attack-1 playlist; attack 2's builder
    # playlists never entered the experiment at all
    assert report.untrusted == first["predictions"]
    for arm, figures in before["arms"].items():
        assert after["arms"][arm]["playlists"] == figures["playlists"]
