"""The prediction row's JSON text made by hand is the text json.dumps wrote before."""
from __future__ import annotations

import json

import numpy as np
from sqlalchemy import text

from app.extensions import db
from app.playlists.row_json import (JSONText, _attribution_dicts, attribution_json, rounded,
                                    scores_json)


def _edges() -> np.ndarray:
    halves = ((np.arange(10_000) + 0.5) / 1e4).astype(np.float32)
    return np.concatenate([halves, np.nextafter(halves, np.float32(0)),
                           np.nextafter(halves, np.float32(1)),
                           (np.arange(10_001) / 1e4).astype(np.float32),
                           np.float32([0.0, 1.0, 5e-5, 4.9e-5, 0.99995, 0.999951])])


def test_scores_text_is_json_dumps_of_the_rounded_scores():
    rng = np.random.default_rng(7)
    edges = _edges()
    assert scores_json(edges) == json.dumps(rounded(edges))
    for members in (1, 2, 6, 10):
        for _ in range(50):
            x = rng.random((20, members), dtype=np.float32)
            x.flat[rng.integers(0, x.size, 5)] = rng.choice(edges, 5)
            assert scores_json(x) == json.dumps(rounded(x))
            assert scores_json(x[:, 0]) == json.dumps(rounded(x[:, 0]))
    assert scores_json(None) is None


def test_scores_outside_the_table_are_written_as_before():
    """A sign bit, a NaN, a liking above 1 or a non-float32 array take json.dumps' path."""
    for values in ([-0.0, 0.5], [-1e-6, 0.25], [-0.3, 0.1], [np.nan, 0.5], [1.00001, 0.2],
                   [np.inf, 0.0], [2.5, 1.0]):
        x = np.float32(values)
        assert scores_json(x) == json.dumps(rounded(x)), values
        assert scores_json(x.reshape(1, -1)) == json.dumps(rounded(x.reshape(1, -1)))
    x = np.array([0.123456789, 0.00005])
    assert scores_json(x) == json.dumps(rounded(x))


def test_attribution_text_is_json_dumps_of_its_dicts():
    rng = np.random.default_rng(3)
    words = ["group", "you liked this track", 'a "quoted" \\ reason', "Zoë’s artist\n"]
    for _ in range(200):
        n = int(rng.integers(1, 9))
        members = [int(u) for u in rng.choice(10_000, n, replace=False)]
        fors = [list(rng.choice(n, int(rng.integers(0, n + 1)), replace=False))
                for _ in range(20)]
        turns = [int(t) for t in rng.integers(-1, n, 20)]
        reasons = [None if rng.random() < 0.2 else
                   (None if rng.random() < 0.3 else int(rng.integers(0, n)),
                    words[int(rng.integers(0, len(words)))]) for _ in range(20)]
        expected = json.dumps(_attribution_dicts(members, fors, turns, reasons))
        assert attribution_json(members, fors, turns, reasons) == expected
    # member ids that are not plain ints are left to json.dumps
    args = ([True, 2], [[0, 1]], [0], [(1, "group")])
    assert attribution_json(*args) == json.dumps(_attribution_dicts(*args))
    assert "true" in attribution_json(*args)


def test_served_rows_store_the_text_json_dumps_wrote(api_app, api_client):
    """The row's JSON columns, read back as stored text, are json.dumps of their values."""
    response = api_client.post("/predict/advanced", json={
        "user_id": 101, "other_users": [102, 103, 104, 105, 106], "playlist_length": 20})
    assert response.status_code == 200
    with api_app.app_context():
        row = db.session.execute(text(
            "SELECT member_scores, member_fit, attribution, track_ids, members FROM predictions "
            "WHERE id = :id"), {"id": response.headers["X-Prediction-Id"]}).one()
    scores = json.loads(row.member_scores)
    assert len(scores) == 20 and all(len(r) == 6 for r in scores)
    for stored in row:
        assert not isinstance(stored, JSONText)
        assert stored == json.dumps(json.loads(stored))
