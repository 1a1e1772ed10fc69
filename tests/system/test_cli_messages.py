"""What a person reads on the command line and in API errors (issue 15): no "nan", no cut-off
help, no "49 items" for a group of 50, /doc/ works, targets explained, X-Model-Version only
where the trained model built the playlist."""
from __future__ import annotations

from app.recommender.metrics_summary import format_targets, headline
from tests.support.paths import ROOT


def test_ab_help_shows_the_whole_create_summary(app):
    out = app.test_cli_runner().invoke(args=["ab", "--help"]).output
    line = next(x for x in out.splitlines() if x.strip().startswith("create"))
    assert "e.g." not in line and "--arm MODEL=WEIGHT" in line
    commands = out.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 7 and not any(x.rstrip().endswith("...") for x in commands)


def test_model_list_shows_a_dash_before_evaluation(app):
    from app.extensions import db
    from app.db import ModelVersion
    from datetime import datetime

    with app.app_context():
        db.session.add(ModelVersion(version="20240101-000000-abcdef", created_at=datetime(2024, 1, 1),
                                    path="x", checksum="0" * 64, active=False,
                                    params={}, metrics={"training_seconds": 1.0},
                                    data_counts={"events": 10, "pairs": 5}))
        db.session.commit()
    out = app.test_cli_runner().invoke(args=["model", "list"]).output
    row = next(x for x in out.splitlines() if "20240101-000000-abcdef" in x)
    assert "nan" not in row and row.rstrip().endswith("–")


def test_targets_say_what_they_mean_with_groups_and_interval():
    result = {"protocol": {"groups": 100}, "targets": {
        "lightfm_beats_popularity_and_base": False,
        "least_happy": {"met": False, "description": "least happy member no worse",
                        "value": -0.002, "interval": [-0.006, 0.002], "threshold": 0.0,
                        "n": 100}}}
    lines = format_targets(result)
    assert "100 groups" in lines[0]
    assert "NOT met" in lines[1] and "above popularity and the base model" in lines[1]
    assert "interval -0.006 to 0.002" in lines[2] and "n = 100" in lines[2]
    assert all(": False" not in x for x in lines)


def test_headline_metrics_for_the_models_page():
    metrics = {"evaluation": {"per_user": {"lightfm": {"precision@10": 0.4, "ndcg@10": 0.41,
                                                       "auc": 0.9}},
                              "default_strategy": "fair",
                              "groups": {"fair": {"hit_rate": 0.6, "least_happy": 0.3,
                                                  "least_happy_ci95": 0.01},
                                         "average": {"hit_rate": 1}}}}
    assert headline(metrics) == {"precision@10": 0.4, "nDCG@10": 0.41,
                                 "groups: hit rate": 0.6, "groups: least happy": 0.3}
    assert headline(None) == {"precision@10": None, "nDCG@10": None}


def test_group_size_error_counts_members_like_the_docs(api_app, api_client):
    limit = api_app.config["MAX_GROUP_SIZE"]
    body = {"user_id": 101, "other_users": list(range(102, 102 + limit)), "playlist_length": 5}
    response = api_client.post("/predict/base", json=body)
    assert response.status_code == 422
    reason = response.get_json()["details"][0]["reason"]
    assert f"at most {limit} members" in reason and str(limit - 1) + " items" not in reason
    assert f"this one has {limit + 1}" in reason


def test_doc_with_a_trailing_slash(api_client):
    response = api_client.get("/doc/")
    assert response.status_code == 308 and response.headers["Location"].endswith("/doc")
    assert api_client.get("/doc/", follow_redirects=True).status_code == 200


def test_import_summarises_skipped_rows_by_reason(app, tmp_path):
    from app.data.generator.writers import generate_export

    generate_export(tmp_path / "x", users=60, tracks=400, sessions=800, seed=2, faults=True)
    result = app.test_cli_runner().invoke(args=["data", "import", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "sessions.jsonl: problem rows by reason" in out
    assert "is not a known track" in out and "'" not in out.split("problem rows by reason")[1]
    # the counts by reason add up to every problem row, also those not echoed line by line
    from app.extensions import db
    from app.data.importer.write import import_export

    with app.app_context():
        report = import_export(tmp_path / "x", report_limit=3)
        db.session.remove()
    rep = report.files["sessions.jsonl"]
    assert rep.unshown > 0
    assert sum(rep.reasons.values()) == rep.skipped + rep.duplicates


def test_demo_script_says_the_faults_are_deliberate():
    text = (ROOT / "scripts" / "prepare.sh").read_text()
    assert "deliberate faults" in text


def test_readme_commands_exist_and_flask_is_explained(app):
    """Every `flask --app wsgi GROUP COMMAND` in the README is a real command, and bare `flask`
    is introduced by the activation line before its first use."""
    import re as _re

    text = (ROOT / "README.md").read_text()
    activate = text.index("source .venv/bin/activate")
    first_bare = _re.search(r"(?<![/\w])flask --app", text).start()
    assert activate < first_bare
    commands = set(_re.findall(r"flask --app wsgi ([a-z-]+) ([a-z-]+)", text))
    for row in _re.findall(r"^\| (`.*?) \|", text, _re.M):  # the command table
        commands |= {m for m in _re.findall(r"`([a-z]+) ([a-z-]+)", row)
                     if m[0] in ("data", "model", "ab", "admin", "db")}
    assert len(commands) >= 15
    runner = app.test_cli_runner()
    for group, command in sorted(commands):
        result = runner.invoke(args=[group, command, "--help"])
        assert result.exit_code == 0, f"README: flask --app wsgi {group} {command}: {result.output}"
