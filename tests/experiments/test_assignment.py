"""A/B assignment: the hash split, stickiness in the database, concurrency, and `flask ab`."""
from __future__ import annotations

import multiprocessing
import os
from collections import Counter

import pytest
from scipy.stats import chisquare
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.common.clock import utcnow
from app.db import Assignment, Experiment
from app.experiments import assignment
from app.extensions import db
from tests.support.sql import count_selects

# ----- the pure function -----


def test_bucket_is_deterministic_uniform_range_and_salted():
    values = [assignment.bucket("default", u) for u in range(10_000)]
    assert values == [assignment.bucket("default", u) for u in range(10_000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert values != [assignment.bucket("other", u) for u in range(10_000)]
    # ten equal bins hold about 1,000 users each
    assert chisquare(list(Counter(int(v * 10) for v in values).values())).pvalue > 0.001


@pytest.mark.parametrize("weights", [
    [("base", 0.5), ("advanced", 0.5)],
    [("base", 0.2), ("advanced", 0.8)],
    [("base", 3.0), ("advanced", 1.0)],  # weights are normalised
])
def test_split_over_10000_users_is_within_tolerance(weights):
    users = range(100_000, 110_000)
    counts = Counter(assignment.choose_arm(assignment.bucket("exp", u), weights) for u in users)
    total = sum(w for _, w in weights)
    expected = [len(users) * w / total for _, w in weights]
    observed = [counts[name] for name, _ in weights]
    for o, e in zip(observed, expected):
        assert abs(o - e) / len(users) < 0.02
    assert chisquare(observed, expected).pvalue > 0.001  # no sample-ratio mismatch


def test_choose_arm_edges():
    weights = [("base", 0.0), ("advanced", 1.0)]
    assert assignment.choose_arm(0.0, weights) == "advanced"
    assert assignment.choose_arm(0.999999999, [("base", 0.5), ("advanced", 0.5)]) == "advanced"
    assert assignment.choose_arm(0.0, [("base", 0.5), ("advanced", 0.5)]) == "base"
    assert assignment.choose_arm(0.999999999999, [("base", 1 / 3), ("advanced", 2 / 3)]) == "advanced"
    with pytest.raises(assignment.ExperimentError):
        assignment.choose_arm(0.5, [("base", 0.0)])


# ----- the database -----

def test_default_experiment_comes_with_the_migration(app):
    with app.app_context():
        experiment = assignment.active_experiment()
        # the migration's salt was the public name; 0008 replaced it with a secret one
        assert experiment.name == "default" and experiment.salt != "default"
        assert len(experiment.salt) == 32
        assert assignment.arm_weights(experiment) == [("base", 0.5), ("advanced", 0.5)]


def test_assignment_is_sticky_across_weight_changes(app):
    users = range(1_000, 1_400)
    with app.app_context():
        experiment = assignment.active_experiment()
        before = {u: assignment.assign(experiment, u) for u in users}
        assert 140 < Counter(before.values())["base"] < 260
        assignment.set_weights("default", {"base": 0.0, "advanced": 1.0})
        experiment = assignment.active_experiment()
        assert {u: assignment.assign(experiment, u) for u in users} == before
        assert {assignment.assign(experiment, u) for u in range(5_000, 5_100)} == {"advanced"}
        counts = assignment.arm_counts(experiment)
        assert counts["base"] == Counter(before.values())["base"]
        assert sum(counts.values()) == 500


def _assign_in_process(db_uri: str, users: list[int], barrier, results) -> None:
    """A separate process, as a gunicorn worker is: own app, own connections."""
    from app import create_app

    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": db_uri})
    with app.app_context():
        experiment = assignment.active_experiment()
        barrier.wait()
        results.put((os.getpid(), {u: assignment.assign(experiment, u) for u in users}))
        db.engine.dispose()


def test_concurrent_first_requests_store_exactly_one_assignment(app):
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    users = list(range(7_000, 7_050))
    with app.app_context():
        db.engine.dispose()  # no pooled connection crosses the fork
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_assign_in_process, args=(uri, users, barrier, results))
             for _ in range(6)]
    for proc in procs:
        proc.start()
    answers = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    with app.app_context():
        rows = db.session.execute(select(Assignment.user_id, func.count())
                                  .group_by(Assignment.user_id)).all()
        assert sorted(rows) == [(u, 1) for u in users]
        stored = dict(db.session.execute(select(Assignment.user_id, Assignment.arm)).all())
    for _pid, arms in answers:
        assert arms == stored  # every process was told the one stored arm


def test_store_assignment_reports_the_winner_of_a_race(app):
    with app.app_context():
        experiment = assignment.active_experiment()
        choice = assignment.arm_for(experiment, 42)
        other = _another_process_stores_the_other_arm(experiment, choice)
        assert not choice.stored
        assert assignment.store_assignment(choice) == other
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_only_one_experiment_can_be_active_in_the_database(app):
    with app.app_context():
        db.session.add(Experiment(name="second", salt="s", active=True, created_at=utcnow()))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_management_rules(app):
    with app.app_context():
        with pytest.raises(assignment.ExperimentError, match="not a model"):
            assignment.create_experiment("x", {"random": 1.0})
        with pytest.raises(assignment.ExperimentError, match="positive weight"):
            assignment.create_experiment("x", {"base": 0.0})
        with pytest.raises(assignment.ExperimentError, match=">= 0"):
            assignment.create_experiment("x", {"base": -1.0, "advanced": 2.0})
        with pytest.raises(assignment.ExperimentError, match="letters"):
            assignment.create_experiment("naïve name", {"base": 1.0})
        with pytest.raises(assignment.ExperimentError, match="already exists"):
            assignment.create_experiment("default", {"base": 1.0})
        assignment.create_experiment("solo", {"advanced": 1.0})
        with pytest.raises(assignment.ExperimentError, match="no arm base"):
            assignment.set_weights("solo", {"base": 0.5})
        with pytest.raises(assignment.ExperimentError, match="no experiment"):
            assignment.stop_experiment("missing")
        with pytest.raises(assignment.ExperimentError, match="ARM=WEIGHT"):
            assignment.parse_weights(["base:0.5"])
        assert assignment.parse_weights(["base=0.25", "advanced=3"]) == {"base": 0.25, "advanced": 3.0}


# ----- the command line -----

def test_ab_cli(app):
    runner = app.test_cli_runner()

    def run(*args, ok=True):
        result = runner.invoke(args=["ab", *args])
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    assert "default" in run("list") and "ACTIVE" in run("list")
    out = run("create", "exp2", "--arm", "base=0.2", "--arm", "advanced=0.8", "--salt",
              "a-secret-of-16-chars-or-more")
    assert "base=0.2 (20%)" in out and "inactive" in out
    run("activate", "exp2")
    with app.app_context():
        assert assignment.active_experiment().name == "exp2"
        assert assignment.get_experiment("default").stopped_at is not None
    assert "base=0.3 (30%), advanced=0.7 (70%)" in run("set-weights", "exp2", "base=0.3",
                                                        "advanced=0.7")
    assert "stopped" in run("stop", "exp2")
    with app.app_context():
        assert assignment.active_experiment() is None
    run("create", "exp3", "--arm", "advanced=1", "--activate")
    with app.app_context():
        assert assignment.active_experiment().name == "exp3"
    assert "not a model" in run("create", "bad", "--arm", "lightfm=1", ok=False)
    assert "no experiment" in run("stop", "nope", ok=False)
    assert "ARM=WEIGHT" in run("set-weights", "exp3", "advanced", ok=False)
    run("activate", "default")
    with app.app_context():
        assert assignment.active_experiment().name == "default"
        assert db.session.scalar(select(func.count()).select_from(Experiment)
                                 .where(Experiment.active.is_(True))) == 1



def test_a_user_without_an_arm_is_read_again_only_after_the_experiment_cache_time(app):
    """A user who is never stored (anonymous calls store nothing) costs one query per
    EXPERIMENT_CACHE_SECONDS, not one per request; an arm another process stores in that time
    is read once it has passed."""
    import time

    app.config["EXPERIMENT_CACHE_SECONDS"] = 0.5
    with app.app_context():
        experiment = assignment.serving_experiment()  # as /predict holds it: no session
        first = assignment.arm_for(experiment, 4242)
        assert not first.stored
        other = "advanced" if first.arm == "base" else "base"
        db.session.add(Assignment(experiment_id=experiment.id, user_id=4242, arm=other,
                                  bucket=first.bucket, assigned_at=utcnow()))
        db.session.commit()  # as another worker would
        selects, stop = count_selects(db.engine)
        try:
            again = assignment.arm_for(experiment, 4242)
        finally:
            stop()
        assert selects == [] and not again.stored and again.arm == first.arm
        time.sleep(0.6)
        later = assignment.arm_for(experiment, 4242)
        assert later.stored and later.arm == other


def test_losing_a_race_makes_the_next_lookup_read_the_winner(app):
    """A request that finds another process's arm stored first is served that arm on its retry
    (playlists.service), so the user sees one arm, even while this process believes the user
    had none."""
    app.config["EXPERIMENT_CACHE_SECONDS"] = 3600
    with app.app_context():
        experiment = assignment.active_experiment()
        choice = assignment.arm_for(experiment, 4343)
        other = _another_process_stores_the_other_arm(experiment, choice)
        assert assignment.store_assignment(choice) == other
        db.session.rollback()
        retry = assignment.arm_for(experiment, 4343)
        assert retry.stored and retry.arm == other


def _another_process_stores_the_other_arm(experiment, choice) -> str:
    """The race's winner: the arm ``choice`` did not get, committed for the same user first."""
    other = "advanced" if choice.arm == "base" else "base"
    db.session.add(Assignment(experiment_id=experiment.id, user_id=choice.user_id, arm=other,
                              bucket=choice.bucket, assigned_at=utcnow()))
    db.session.commit()
    return other


def test_a_user_without_an_arm_costs_no_query_of_their_own_while_nobody_is_assigned(app):
    """Past EXPERIMENT_CACHE_SECONDS, a user found without an arm is not read again while the
    experiment's assignments stay as they were (one count per process and interval instead of
    a query per user); an arm another process stores for them is read once the count moves."""
    import time

    app.config["EXPERIMENT_CACHE_SECONDS"] = 0.3
    with app.app_context():
        experiment = assignment.serving_experiment()
        users = [5151, 5152, 5153]
        first = {u: assignment.arm_for(experiment, u) for u in users}
        assert not any(c.stored for c in first.values())
        time.sleep(0.4)
        experiment = assignment.serving_experiment()
        selects, stop = count_selects(db.engine)
        try:
            again = {u: assignment.arm_for(experiment, u) for u in users}
        finally:
            stop()
        assert all(not c.stored and c.arm == first[c.user_id].arm for c in again.values())
        assert len(selects) == 1 and "count" in selects[0].lower(), selects
        other = _another_process_stores_the_other_arm(experiment, first[5152])
        time.sleep(0.4)
        experiment = assignment.serving_experiment()
        later = assignment.arm_for(experiment, 5152)
        assert later.stored and later.arm == other
