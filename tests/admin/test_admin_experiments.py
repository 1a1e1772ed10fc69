"""Experiments managed from the admin: create, activate, stop (CSRF, a confirmation step, an
audit line); stopped experiments are read-only; the dashboard opens on the experiment with data
and says "pending" / "not enough data yet" instead of a 0 % success rate."""
from __future__ import annotations

import logging
import re

from sqlalchemy import select

from app.db import Experiment
from app.experiments import assignment
from app.extensions import db
from tests.support.pages import csrf_token
from tests.support.traffic import client_headers


def _token(c) -> str:
    return csrf_token(c.get("/admin/experiments").get_data(as_text=True))


def _experiment(app, name):
    with app.app_context():
        return db.session.scalar(select(Experiment).where(Experiment.name == name))


def test_create_asks_for_confirmation_then_creates_and_audits(admin_app, logged_in, caplog):
    form = {"name": "spring", "weight-base": "0.2", "weight-advanced": "0.8"}
    first = logged_in.post("/admin/experiments/create", data={"csrf_token": _token(logged_in),
                                                                 **form})
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and 'id="confirm"' in html and "spring" in html
    assert _experiment(admin_app, "spring") is None, "nothing happens before the confirmation"
    with caplog.at_level(logging.INFO):
        done = logged_in.post("/admin/experiments/create",
                              data={"csrf_token": csrf_token(html), "confirm": "1", **form})
    assert done.status_code == 303
    created = _experiment(admin_app, "spring")
    assert created is not None and not created.active
    with admin_app.app_context():
        assert dict(assignment.arm_weights(db.session.get(Experiment, created.id))) == \
            {"base": 0.2, "advanced": 0.8}
    assert any("audit: admin admin created experiment spring" in r.getMessage()
               for r in caplog.records)


def test_actions_need_the_csrf_token(admin_app, logged_in):
    exp = _experiment(admin_app, "default")
    for url in ("/admin/experiments/create", f"/admin/experiments/{exp.id}/stop",
                f"/admin/experiments/{exp.id}/activate"):
        assert logged_in.post(url, data={"confirm": "1", "name": "x"}).status_code == 400
    assert _experiment(admin_app, "default").active


def test_activate_and_stop_with_confirmation_then_read_only(admin_app, logged_in, caplog):
    with admin_app.app_context():
        assignment.create_experiment("summer", {"base": 0.5, "advanced": 0.5})
        db.session.commit()
    summer = _experiment(admin_app, "summer")
    ask = logged_in.post(f"/admin/experiments/{summer.id}/activate",
                         data={"csrf_token": _token(logged_in)})
    assert 'id="confirm"' in ask.get_data(as_text=True) and not _experiment(admin_app,
                                                                             "summer").active
    with caplog.at_level(logging.INFO):
        logged_in.post(f"/admin/experiments/{summer.id}/activate",
                       data={"csrf_token": _token(logged_in), "confirm": "1"})
        assert _experiment(admin_app, "summer").active
        assert not _experiment(admin_app, "default").active
        logged_in.post(f"/admin/experiments/{summer.id}/stop",
                       data={"csrf_token": _token(logged_in), "confirm": "1"})
    assert not _experiment(admin_app, "summer").active
    assert any("audit: admin admin stopped experiment summer" in r.getMessage()
               for r in caplog.records)

    # stopped: no weight inputs, no Save or Activate button, and the server refuses changes
    page = logged_in.get("/admin/experiments").get_data(as_text=True)
    section = page[page.index('id="e-%d"' % summer.id):]
    section = section[:section.index("</section>")]
    assert "Save weights" not in section and "<input" not in section and "Activate" not in section
    logged_in.post(f"/admin/experiments/{summer.id}/weights",
                   data={"csrf_token": _token(logged_in), "weight-base": "1",
                         "weight-advanced": "0"})
    logged_in.post(f"/admin/experiments/{summer.id}/activate",
                   data={"csrf_token": _token(logged_in), "confirm": "1"})
    with admin_app.app_context():
        exp = db.session.get(Experiment, summer.id)
        assert dict(assignment.arm_weights(exp)) == {"base": 0.5, "advanced": 0.5} and not exp.active


def test_dashboard_opens_on_the_experiment_with_playlists(admin_app, logged_in):
    with admin_app.app_context():
        assignment.create_experiment("sim", {"base": 0.5, "advanced": 0.5}, activate=True)
        db.session.commit()
    c = admin_app.test_client()
    response = c.post("/predict", json={"user_id": 123, "other_users": [124],
                                        "playlist_length": 5},
                      headers=client_headers(admin_app))
    assert response.status_code == 200
    with admin_app.app_context():
        assignment.activate_experiment("default")  # as `ab simulate` leaves it: default active, empty
    html = logged_in.get("/admin/").get_data(as_text=True)
    selected = re.search(r'<option value="\d+" selected>([^<]+)</option>', html).group(1)
    assert selected.startswith("sim")
    # one fresh playlist: pending, not a 0 % success rate; too few users for any verdict
    assert "0.0 %" not in html and "0.0%" not in html
    assert "1 pending" in html and "not enough data yet" in html.lower()
    srm = re.search(r'id="srm-verdict">(.*?)</p>', html, re.S).group(1)
    assert "Not enough data yet" in srm and "ok" not in srm
    # the page says which interval it shows, and offers the other one
    assert "fixed-horizon interval" in html
    assert "always-valid (sequential) interval" in logged_in.get(
        "/admin/?interval=sequential").get_data(as_text=True)


def test_models_page_compares_headline_metrics_with_raw_values_folded(admin_app, logged_in):
    from app.db import ModelVersion

    with admin_app.app_context():
        row = db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
        row.metrics = {**(row.metrics or {}), "evaluation": {
            "per_user": {"lightfm": {"precision@10": 0.4123, "ndcg@10": 0.4321, "auc": 0.9}},
            "default_strategy": "fair", "groups": {"fair": {"hit_rate": 0.6}},
            "protocol": {"a": 1, "b": 2}}}
        db.session.commit()
    html = logged_in.get("/admin/models").get_data(as_text=True)
    table = re.search(r'<table class="compact" id="model-comparison">(.*?)</table>', html, re.S)
    assert table is not None
    assert "precision@10" in table.group(1) and "0.412" in table.group(1)
    assert "nDCG@10" in table.group(1) and "groups: hit rate" in table.group(1)
    assert "protocol" not in table.group(1)  # the raw dump stays behind <details>, closed
    assert re.search(r"<details class=\"section\">\s*<summary>All stored metrics, raw", html)


def test_login_page_header_carries_the_public_menu(client):
    html = client.get("/admin/login").get_data(as_text=True)
    nav = re.search(r'<nav class="site-nav"[^>]*>(.*?)</nav>', html, re.S).group(1)
    assert "Build a playlist" in nav and "People" in nav and "Admin" in nav
    assert "Log out" not in nav


def test_ids_past_32_bits_are_not_found_not_a_crash(logged_in):
    token = _token(logged_in)
    for action in ("activate", "stop", "weights"):
        response = logged_in.post(f"/admin/experiments/99999999999999999999/{action}",
                                  data={"csrf_token": token, "confirm": "1"})
        assert response.status_code == 404, action
