"""`flask ab simulate`: the mechanics of a tiny simulated experiment (not its significance)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import Experiment, Feedback, ListeningEvent, ModelVersion, Prediction
from app.db.experiments import Assignment
from app.extensions import db

pytestmark = pytest.mark.slow


def _newest_event(app):
    with app.app_context():
        return db.session.scalar(select(func.max(ListeningEvent.timestamp)))


def test_simulate_runs_through_the_api_and_records_everything(api_app, small_world):
    newest_before = _newest_event(api_app)
    with api_app.app_context():
        events_before = db.session.scalar(select(func.count()).select_from(ListeningEvent))
    result = api_app.test_cli_runner().invoke(args=[
        "ab", "simulate", "--days", "2", "--groups-per-day", "6", "--seed", "3",
        "--ground-truth", str(small_world / "ground_truth.npz")])
    assert result.exit_code == 0, result.output
    assert "12 playlists" in result.output
    assert "sample ratio check" in result.output and "success rate difference" in result.output

    with api_app.app_context():
        sim = db.session.scalar(select(Experiment).where(Experiment.name.like("simulation-%")))
        assert sim is not None and not sim.active
        default = db.session.scalar(select(Experiment).where(Experiment.name == "default"))
        assert default.active, "the experiment active before the simulation is restored"

        preds = db.session.scalars(select(Prediction).where(Prediction.experiment_id == sim.id)
                                   ).all()
        assert len(preds) == 12
        assert {p.arm for p in preds} == {"base", "advanced"}
        assert all(p.is_ab and p.endpoint == "/predict" for p in preds)
        # the simulated clock: days after the newest imported event, not the wall clock
        start = newest_before.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(1)
        assert all(start <= p.created_at < start + timedelta(days=2) for p in preds)
        hosts = {p.user_id for p in preds}
        assigned = db.session.scalars(select(Assignment).where(Assignment.experiment_id == sim.id)
                                      ).all()
        assert {a.user_id for a in assigned} == hosts
        assert all(a.assigned_at < start + timedelta(days=2) for a in assigned)

        feedback = db.session.scalars(select(Feedback).where(
            Feedback.prediction_id.in_([p.id for p in preds]))).all()
        assert feedback, "the gatherings report through POST /feedback"
        by_id = {p.id: p for p in preds}
        for f in feedback:
            p = by_id[f.prediction_id]
            assert f.track_id in p.track_ids and f.user_id in (p.user_id, *p.other_users)
            assert f.created_at >= p.created_at
        assert {f.event_type for f in feedback} >= {"play", "skip"}

        later = db.session.scalars(select(ListeningEvent).where(
            ListeningEvent.timestamp > newest_before)).all()
        assert later, "members come back in later listening sessions"
        assert db.session.scalar(select(func.count()).select_from(ListeningEvent)) \
            == events_before + len(later)
        participants = {u for p in preds for u in (p.user_id, *p.other_users)}
        assert {e.user_id for e in later} <= participants
        assert all(e.track_id in {t for p in preds for t in p.track_ids} for e in later)

        from app.experiments.simulation import summary

        s = summary(sim.id)
        assert sum(a["playlists"] for a in s["arms"].values()) == 12
        assert s["comparisons"]
        # two days of data: the latest playlists' windows are still open (pending, not failed)
        assert sum(a["pending"] + a["decided"] for a in s["arms"].values()) == 12
        assert sum(a["pending"] for a in s["arms"].values()) > 0
        assert s["srm_p_value"] is None and s["assigned_users"] < s["srm_min_users"]
    assert "not enough data yet" in result.output


def test_simulate_aa_serves_one_model_in_both_arms(world_app, small_world):
    with world_app.app_context():
        db.session.execute(ModelVersion.__table__.update().values(active=False))
        db.session.commit()  # an A/A run on the base model needs no trained model
    result = world_app.test_cli_runner().invoke(args=[
        "ab", "simulate", "--days", "1", "--groups-per-day", "10", "--seed", "4", "--aa", "base",
        "--ground-truth", str(small_world / "ground_truth.npz")])
    assert result.exit_code == 0, result.output
    assert world_app.config.get("AB_AA_MODEL") in ("", None), "the switch is put back"
    with world_app.app_context():
        sim = db.session.scalar(select(Experiment).where(Experiment.name.like("simulation-aa-%")))
        preds = db.session.scalars(select(Prediction).where(Prediction.experiment_id == sim.id)
                                   ).all()
    assert {p.arm for p in preds} == {"base", "advanced"}
    assert {p.model for p in preds} == {"base"} and not any(p.fallback for p in preds)


def test_simulate_without_ground_truth_explains(api_app, monkeypatch, tmp_path):
    monkeypatch.setenv("DEMO_DIR", str(tmp_path))  # an empty folder: nothing to find
    api_app.instance_path = str(tmp_path)
    result = api_app.test_cli_runner().invoke(args=["ab", "simulate", "--days", "1"])
    assert result.exit_code != 0 and "ground_truth.npz" in result.output


def test_simulate_without_an_active_model_refuses(world_app):
    with world_app.app_context():
        db.session.execute(ModelVersion.__table__.update().values(active=False))
        db.session.commit()
        before = db.session.scalar(select(func.count()).select_from(Prediction))
    result = world_app.test_cli_runner().invoke(args=["ab", "simulate", "--days", "1"])
    assert result.exit_code != 0 and "model train" in result.output
    with world_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Prediction)) == before
