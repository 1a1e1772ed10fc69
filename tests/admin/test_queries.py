"""The admin list's filters (app/admin/queries.py) against the same filters applied in Python to
the rows of a generated world, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.admin import queries
from app.db import Prediction
from app.extensions import db
from tests.support.apps import make_app
from tests.support.outcome_oracle import START, populate_random_world


def _matches(p: Prediction, f: queries.PredictionFilters) -> bool:
    day = p.created_at.date()
    return ((not f.arm or p.arm == f.arm) and (not f.model or p.model == f.model)
            and (not f.endpoint or p.endpoint == f.endpoint)
            and (f.member is None or f.member == p.user_id or f.member in p.other_users)
            and (f.first_day is None or day >= f.first_day)
            and (f.last_day is None or day <= f.last_day))


def _check(app) -> None:
    populate_random_world(app, 4, predictions=80)
    first, last = START.date() + timedelta(days=1), START.date() + timedelta(days=2)
    cases = [queries.PredictionFilters(),
             queries.PredictionFilters(arm="advanced"),
             queries.PredictionFilters(model="base", endpoint="/predict"),
             queries.PredictionFilters(endpoint="/predict/base"),
             queries.PredictionFilters(first_day=first),
             queries.PredictionFilters(last_day=last),
             queries.PredictionFilters(arm="base", first_day=first, last_day=last)]
    cases += [queries.PredictionFilters(member=uid) for uid in range(1, 16)]
    with app.app_context():
        rows = db.session.scalars(select(Prediction)).all()
        member_only = 0
        for f in cases:
            expected = sorted((p for p in rows if _matches(p, f)),
                              key=lambda p: (-p.created_at.timestamp(), p.id))
            assert queries.count(f) == len(expected), f
            got = queries.page(f, 1, 1000)
            assert [p.id for p in got] == [p.id for p in expected], f
            size = 7
            pages = [queries.page(f, n, size) for n in range(1, len(expected) // size + 2)]
            assert [p.id for chunk in pages for p in chunk] == [p.id for p in expected], f
            if f.member is not None:
                member_only += sum(1 for p in expected if p.user_id != f.member)
        assert member_only > 0  # the JSON list of the other members was searched
        assert queries.filter_options() == {"arm": ["advanced", "base"], "model": ["base"],
                                            "endpoint": ["/predict"]}


def test_filters_match_python_on_sqlite(app):
    _check(app)


@pytest.mark.postgres
def test_filters_match_python_on_postgresql(postgres_database, tmp_path):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=postgres_database)
    try:
        _check(app)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
