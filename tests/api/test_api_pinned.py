"""/predict/advanced pinned whole: the answer, its headers, the prediction row and the log line of
a fixed request are exactly what the recommender builds for that group in process, mapped to the
public names (track ids, user ids, four decimals). The expectation is derived here from the
recommender's own playlist and the catalogue, not from the service's types, so a change in how
the service carries the playlist to the record cannot go unnoticed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import Prediction
from app.extensions import db
from app.playlists.build import group_input, model_for
from app.playlists.histories import playlist_evidence
from app.playlists.holder import get_holder
from app.playlists.request import PlaylistRequest
from app.recommender.reasons import track_reasons

REQUESTS = [
    {"user_id": 123, "other_users": [124, 125, 126, 127, 128], "playlist_length": 20},
    {"user_id": 140, "other_users": [141, 142], "playlist_length": 12, "strategy": "fair",
     "exclude_explicit": True},
    {"user_id": 150, "other_users": [], "playlist_length": 8, "strategy": "average"},
]


def _r4(values) -> list:
    return [[round(float(x), 4) for x in row] if hasattr(row, "__len__") else
            round(float(row), 4) for row in values]


def _expected(members: list[int], length: int, strategy: str | None, explicit: bool) -> dict:
    """What the recommender builds for the request, in the public names."""
    req = PlaylistRequest.settle(members, length, choice="advanced", strategy=strategy,
                                 exclude_explicit=explicit)
    model = model_for(get_holder().current(), "advanced")
    cat, rec = model.catalogue, model.recommender
    group = model.recommend(group_input(model, members, strategy=req.strategy), req.rules,
                            req.strategy)
    idx = list(group.indices)
    names = cat.names if cat.names is not None else [""] * len(cat.item_ids)
    answer = [{"id": str(cat.item_ids[i]), "name": str(names[i]),
               "artist": str(cat.meta.artist_names[cat.meta.artist[i]])} for i in idx]
    counts = get_holder().evidence.get(cat, members)
    likes, plays, artist_plays = playlist_evidence(counts, cat, group.indices)
    kinds = ["trained" if rec.is_warm(u) else "genres" for u in members]
    said = track_reasons(group.for_members, group.turns, likes, plays, artist_plays, kinds)
    attribution = [{"for": sorted(members[j] for j in fors),
                    "turn": members[turn] if turn >= 0 else None}
                   | ({"reason": text, "reason_member": None if who is None else members[who]}
                      if text is not None else {})
                   for fors, turn, (who, text) in zip(group.for_members, group.turns, said)]
    return {"answer": answer, "version": group.version, "strategy": group.strategy,
            "track_ids": [a["id"] for a in answer], "member_scores": _r4(group.member_scores),
            "member_fit": _r4(group.member_fit), "attribution": attribution}


@pytest.mark.parametrize("body", REQUESTS, ids=["six", "fair-clean", "solo"])
def test_predict_advanced_is_the_recommenders_playlist(api_app, api_client, body):
    response = api_client.post("/predict/advanced", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    members = [body["user_id"], *body["other_users"]]
    with api_app.app_context():
        want = _expected(members, body["playlist_length"], body.get("strategy"),
                         body.get("exclude_explicit", False))
        row = db.session.scalars(select(Prediction)).one()
    assert response.get_json() == want["answer"]
    assert response.data == json.dumps(want["answer"], ensure_ascii=False).encode()
    assert response.headers["X-Model"] == "advanced"
    assert response.headers["X-Model-Version"] == want["version"]
    assert response.headers["X-Prediction-Id"] == row.id
    stored = {"model": row.model, "model_version": row.model_version, "strategy": row.strategy,
              "track_ids": row.track_ids, "members": row.members,
              "member_scores": row.member_scores, "member_fit": row.member_fit,
              "attribution": row.attribution, "endpoint": row.endpoint,
              "playlist_length": row.playlist_length, "user_id": row.user_id,
              "other_users": row.other_users, "exclude_explicit": row.exclude_explicit,
              "is_ab": row.is_ab, "arm": row.arm, "fallback": row.fallback}
    assert stored == {
        "model": "advanced", "model_version": want["version"],
        "strategy": body.get("strategy") if body.get("strategy") else want["strategy"],
        "track_ids": want["track_ids"], "members": members,
        "member_scores": want["member_scores"], "member_fit": want["member_fit"],
        "attribution": want["attribution"], "endpoint": "/predict/advanced",
        "playlist_length": body["playlist_length"], "user_id": body["user_id"],
        "other_users": body["other_users"],
        "exclude_explicit": body.get("exclude_explicit", False), "is_ab": False, "arm": None,
        "fallback": False}
    line = json.loads(Path(api_app.config["PREDICTIONS_LOG"]).read_text().splitlines()[-1])
    assert {k: line[k] for k in ("user_id", "other_users", "playlist", "model", "model_version",
                                 "prediction_id", "endpoint", "is_ab", "arm", "fallback",
                                 "experiment")} == {
        "user_id": body["user_id"], "other_users": body["other_users"],
        "playlist": want["track_ids"], "model": "advanced", "model_version": want["version"],
        "prediction_id": row.id, "endpoint": "/predict/advanced", "is_ab": False, "arm": None,
        "fallback": False, "experiment": None}
