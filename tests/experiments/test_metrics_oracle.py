"""The success metric in the database against the same metric worked out in plain Python from
the rows of generated worlds (tests/support/outcome_oracle.py), on SQLite and on PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.experiments.metrics import experiment_outcomes, outcomes, prediction_outcome
from app.extensions import db
from tests.support.apps import make_app
from tests.support.outcome_oracle import (START, evidence_ids, expected_outcomes,
                                          populate_random_world)


def _figures(o) -> tuple[int, ...]:
    return (o.total_ms, o.best_ms, o.started, o.liked, o.skipped, o.window_sessions)


def _check_world(app, seed: int) -> None:
    exp_id = populate_random_world(app, seed)
    with app.app_context():
        expected = expected_outcomes()
        every = outcomes()
        assert set(every) == set(expected)
        assert {pid: _figures(o) for pid, o in every.items()} == \
            {pid: (e.total_ms, e.best_ms, e.started, e.liked, e.skipped, e.window_sessions)
             for pid, e in expected.items()}
        # the world must exercise both verdicts and both window states, or it proves little
        assert {o.success for o in every.values()} == {True, False}
        assert {o.window_complete for o in every.values()} == {True, False}
        assert any(o.skipped for o in every.values()) and any(o.liked for o in every.values())

        since, until = START + timedelta(days=1), START + timedelta(days=3)
        for bounds in [(None, None), (since, None), (None, until), (since, until)]:
            chosen = experiment_outcomes(exp_id, *bounds)
            assert set(chosen) == evidence_ids(exp_id, *bounds)
            assert all(_figures(chosen[pid]) == _figures(every[pid]) for pid in chosen)

        for pid, e in expected.items():
            outcome, members = prediction_outcome(pid)
            assert _figures(outcome) == _figures(every[pid])
            assert {m.user_id: (m.heard_ms, m.started, m.liked, m.skipped) for m in members} \
                == e.members


@pytest.mark.parametrize("seed", [1, 2])
def test_outcomes_match_plain_python_on_sqlite(app, seed):
    _check_world(app, seed)


@pytest.mark.postgres
def test_outcomes_match_plain_python_on_postgresql(postgres_database, tmp_path):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database)
    try:
        _check_world(app, 3)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
