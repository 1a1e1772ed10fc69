"""One table of strategies: every name people can choose is one registered object, every
consumer reads the table, and a name outside it is refused everywhere instead of silently
running another strategy."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender import strategies
from app.recommender.strategies import REGISTRY, STRATEGIES, Pick, Rules, Strategy, select

SEED = {"user_id": 123, "other_users": [124, 125], "playlist_length": 5}


def _world(seed: int = 0, members: int = 3, tracks: int = 400):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(members, tracks)).astype(np.float32)
    return z, np.arange(tracks), rng.integers(0, 80, tracks)


def test_the_names_are_the_table_and_every_entry_chooses_for_itself():
    assert STRATEGIES == tuple(REGISTRY) and strategies.DEFAULT_STRATEGY in REGISTRY
    z, song, artist = _world()
    outcomes = {}
    for name, spec in REGISTRY.items():
        assert isinstance(spec, Strategy) and spec.name == name and len(spec.help) > 10
        chosen, _, turns = select(Pick(name, z, z, song, artist, Rules(length=12), None,
                                  np.ones(3)))
        assert len(set(chosen)) == 12
        assert spec.takes_turns or all(t == strategies.NO_TURN for t in turns) or name == "gfar"
        outcomes[name] = tuple(chosen)
    # no entry falls through to another's rule: the ranked ones differ from each other
    assert len({outcomes[n] for n in ("average", "least_misery", "mean_rank", "fair")}) == 4


def test_a_new_entry_runs_its_own_rule_and_an_unknown_name_is_refused(monkeypatch):
    z, song, artist = _world(1)
    calls = []

    def reversed_catalogue(pick):
        calls.append(pick.size)
        return list(range(pick.z.shape[1] - 1, pick.z.shape[1] - 1 - pick.rules.length, -1)), []

    monkeypatch.setitem(REGISTRY, "backwards", Strategy("backwards", "last tracks first",
                                                        reversed_catalogue))
    chosen, _, _ = select(Pick("backwards", z, z, song, artist, Rules(length=4), None))
    assert chosen == [399, 398, 397, 396] and calls
    monkeypatch.delitem(REGISTRY, "backwards")
    with pytest.raises(ValueError, match="unknown strategy 'backwards'"):
        select(Pick("backwards", z, z, song, artist, Rules(length=4), None))
    with pytest.raises(ValueError, match="unknown strategy"):
        strategies.check_strategy(None, configured="no_such_default")


def test_api_form_docs_and_pages_read_the_table(api_client):
    schema = api_client.get("/openapi.json").get_json()
    text = str(schema)
    for name, spec in REGISTRY.items():
        assert name in text and spec.help[:40] in text
    bad = api_client.post("/predict/advanced", json={**SEED, "strategy": "backwards"})
    assert bad.status_code == 422 and "strategy" in bad.get_data(as_text=True)
    page = api_client.get("/strategies").get_data(as_text=True)
    builder = api_client.get("/").get_data(as_text=True)
    for name in REGISTRY:
        assert f'id="{name}"' in page
        assert f'value="{name}"' in builder


def test_the_configured_default_is_the_one_everything_uses(api_app, api_client):
    api_app.config["DEFAULT_STRATEGY"] = "fair"
    served = api_client.post("/predict/advanced", json=SEED)
    assert served.status_code == 200
    assert "fair (recommended)" in api_client.get("/").get_data(as_text=True)
    api_app.config["DEFAULT_STRATEGY"] = "no_such_strategy"
    refused = api_client.post("/predict/advanced", json=SEED)
    assert refused.status_code == 422
