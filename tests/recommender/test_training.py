"""Features, training, artifacts and the offline evaluation on the small generated world."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from app.recommender import artifact
from app.recommender.catalogue import Catalogue
from app.recommender.dataset import LIKE, PLAY, SKIP, EventLog
from app.recommender.features import DAY, FeatureSpace, WeightParams, interaction_matrix
from app.recommender.offline.evaluation import EvalConfig, evaluate, ranking_metrics
from app.recommender.scoring import Recommender
from app.recommender.training import TrainParams


def _with_events(data, users, items, days, kinds):
    n = len(users)
    ev = EventLog(user=np.asarray(users, np.int32), item=np.asarray(items, np.int32),
                  time=np.asarray(days, np.float64) * DAY, kind=np.asarray(kinds, np.int8),
                  value=np.ones(n, np.float32))
    return data.with_events(ev)


def test_weights_likes_decay_and_skips(world_data):
    # user 0: liked track 0 today, played track 1 today, played track 2 60 days ago,
    # played and skipped track 3 today
    data = _with_events(world_data, [0, 0, 0, 0, 0], [0, 1, 2, 3, 3], [100, 100, 40, 100, 100],
                        [LIKE, PLAY, PLAY, PLAY, SKIP])
    m = interaction_matrix(data, WeightParams(play=1, like=3, skip=-1, half_life_days=60,
                                              cap=3)).tocsr()
    w = m.toarray()[0]
    assert w[0] == pytest.approx(1.0)            # a like saturates the cap
    assert w[1] == pytest.approx(1 / 3)
    assert w[2] == pytest.approx(0.5 / 3, rel=1e-5)  # one half-life older: half the weight
    assert w[3] == 0 and m.nnz == 3              # a skipped play nets to nothing: dropped
    assert (m.data > 0).all() and (m.data <= 1).all()
    m0 = interaction_matrix(data, WeightParams(skip=0.0, half_life_days=0)).toarray()[0]
    assert m0[3] == pytest.approx(m0[1])         # skips ignored: the play counts alone


def test_item_features_identity_blocks_and_new_items(world_data):
    space = FeatureSpace().fit(world_data)
    f = space.item_features(world_data.item_ids, world_data.items, world_data.item_genres,
                            world_data.genre_names)
    assert f.shape == (world_data.n_items, space.n_item_features)
    assert np.allclose(np.asarray(f.sum(axis=1)).ravel(), 1.0)
    assert (f[:, :world_data.n_items].diagonal() > 0).all()   # every known item keeps identity
    names = _item_feature_names(space)
    assert len(names) == space.n_item_features
    row = f[0].indices
    kinds = {names[c].split(":")[0] for c in row}
    assert {"item", "artist", "audio"} <= kinds
    cold = space.item_features(world_data.item_ids[:5], _meta_slice(world_data, 5),
                               world_data.item_genres[:5], world_data.genre_names,
                               identity=False)
    assert cold[:, :world_data.n_items].nnz == 0 and cold.nnz > 0
    assert len(json.dumps(space.to_json())) > 0
    assert FeatureSpace.from_json(space.to_json()).n_item_features == space.n_item_features


def _meta_slice(data, n):
    from app.recommender.scoring import _take_meta

    return _take_meta(data.items, np.arange(n))


def test_vectorised_scores_equal_lightfm_predict(trained_small, world_data):
    model = trained_small._lightfm
    user_features, item_features = trained_small._features
    rec = Recommender(trained_small, Catalogue.from_data(world_data))
    items = np.arange(world_data.n_items, dtype=np.int32)
    for u in (0, 7, 42):
        expected = model.predict(np.full(len(items), u, np.int32), items,
                                 user_features=user_features, item_features=item_features)
        got = rec.scores(rec.users[[u]])[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)



@pytest.mark.parametrize("block", [128, 300, 2048])
def test_group_scores_by_blocks_of_tracks_equal_one_product(trained_small, world_data,
                                                            monkeypatch, block):
    from app.recommender import scoring

    monkeypatch.setattr(scoring, "Z_BLOCK", block)
    rec = Recommender(trained_small, Catalogue.from_data(world_data))
    rng = np.random.default_rng(block)
    for m in (1, 2, 3, 6, 10):
        rows = rec.users[rng.choice(len(rec.users), m, replace=False)]
        got = rec.z_scores(rows)
        whole = rec.folded(rows) @ rec.items_t
        if m <= 2:  # one or two members: row by row, as before
            whole = np.vstack([row @ rec.items_t for row in rec.folded(rows)])
        assert got.shape == (m, len(world_data.item_ids))
        np.testing.assert_array_equal(got, whole)


def test_a_replaced_model_is_freed_without_the_garbage_collector(trained_small, world_data):
    """gunicorn workers freeze their start-up objects (gunicorn.conf.py), so the model loaded
    then is never looked at by the collector again: when a newer version replaces it, only
    reference counting can free it, which a reference cycle would prevent."""
    import gc
    import weakref

    from app.recommender.group import LightFMModel

    gc.disable()
    try:
        served = LightFMModel(Recommender(trained_small, Catalogue.from_data(world_data)))
        rec = served.recommender
        rec.row_from_genres([str(g) for g in trained_small.space.genres[:2]])  # fills the cache
        rec.z_scores(rec.users[:3])
        gone, catalogue = weakref.ref(rec), weakref.ref(rec.catalogue)
        del served, rec
        assert gone() is None and catalogue() is None
    finally:
        gc.enable()


def test_cold_members_rows_are_cached_and_equal_to_a_fresh_build(trained_small, world_data):
    rec = Recommender(trained_small, Catalogue.from_data(world_data))
    genres = [str(g) for g in trained_small.space.genres[:3]]
    first = rec.row_from_genres(genres)
    assert first is not None
    # the same list again is the same row, not a new build; it equals the uncached path
    assert rec.row_from_genres(list(genres)) is first
    np.testing.assert_array_equal(first, rec._row_from_genres(tuple(genres)))
    # shared between groups, so nobody may write into it
    with pytest.raises(ValueError):
        first[0] = 1.0
    other = rec.row_from_genres(genres[:1])
    assert not np.array_equal(other, first)
    assert rec.member(-1, genres).row is first  # an unknown user with those genres
    assert rec.row_from_genres(["no such genre"]) is None

def test_artifact_round_trip_and_tamper(trained_small, world_data, tmp_path):
    art = artifact.save(trained_small, tmp_path, metrics={"note": "x"})
    assert (art.path / "arrays.npz").is_file() and not list(tmp_path.glob(".tmp-*"))
    back = artifact.load(art.path, expected_checksum=art.checksum)
    for name in ("user_vectors", "item_vectors", "item_bias", "item_feature_embeddings"):
        np.testing.assert_array_equal(getattr(back.model, name), getattr(trained_small, name))
    assert back.model.space.item_ids == trained_small.space.item_ids
    assert back.meta["params"]["components"] == trained_small.params.components
    # scores survive the round trip
    a = Recommender(trained_small, Catalogue.from_data(world_data))
    b = Recommender(back.model, Catalogue.from_data(world_data))
    np.testing.assert_allclose(a.scores(a.users[:3]), b.scores(b.users[:3]), atol=1e-6)

    raw = bytearray((art.path / "arrays.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (art.path / "arrays.npz").write_bytes(bytes(raw))
    with pytest.raises(artifact.ArtifactError, match="checksum"):
        artifact.load(art.path)


def test_tampered_metadata_is_refused(trained_small, tmp_path):
    art = artifact.save(trained_small, tmp_path)
    meta = json.loads((art.path / "meta.json").read_text())
    meta["feature_space"]["item_ids"][0] = "someone-else"
    (art.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(artifact.ArtifactError, match="checksum"):
        artifact.load(art.path, expected_checksum=art.checksum)
    (art.path / "arrays.npz").unlink()
    with pytest.raises(artifact.ArtifactError, match="missing"):
        artifact.load(art.path)


def test_artifact_never_needs_pickle(trained_small, tmp_path):
    art = artifact.save(trained_small, tmp_path)
    with np.load(art.path / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_ranking_metrics_small_example():
    scores = np.array([[0.9, 0.8, 0.1, 0.2]])
    test = sp.csr_matrix(np.array([[1, 0, 0, 1]], np.float32))
    m = ranking_metrics(scores, test, k=2)
    assert m["precision"][0] == pytest.approx(0.5)
    assert m["recall"][0] == pytest.approx(0.5)
    assert m["ndcg"][0] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert m["auc"][0] == pytest.approx(0.75)  # 3 of the 4 (positive, negative) pairs right


@pytest.mark.slow
def test_trained_model_beats_popularity_on_held_out_data(world_data, small_world):
    result = evaluate(world_data, TrainParams(epochs=8, components=16),
                      EvalConfig(groups=15, max_group=5), ground_truth=small_world)
    lf, pop = result["per_user"]["lightfm"], result["per_user"]["popularity"]
    for metric in ("precision@10", "ndcg@10", "auc"):
        assert lf[metric] > pop[metric], (metric, result["per_user"])
    groups = result["groups"]
    assert set(groups) >= {"mean_rank", "average", "least_misery", "average_without_misery",
                           "fair", "base", "popularity", "oracle_mean",
                           "oracle_turns", "oracle_maxmin"}
    assert groups["oracle_mean"]["mean_affinity"] >= groups["mean_rank"]["mean_affinity"]
    json.dumps(result)  # stored with the model version: must be JSON


def _item_feature_names(space: FeatureSpace) -> list[str]:
    """The item columns as the layout promises them, block by block, written out here
    independently of ``item_features`` so that a shifted block shows up as a wrong kind."""
    names: list[str] = []
    for block in space.item_blocks:
        if block == "identity":
            names += [f"item:{i}" for i in space.item_ids]
        elif block == "artist":
            names += [f"artist:{a}" for a in space.artists]
        elif block == "genre":
            names += [f"genre:{g}" for g in space.genres]
        elif block == "audio":
            for name, edges in zip(space.audio_names, space.audio_edges):
                names += [f"audio:{name}:{b}" for b in range(len(edges) + 1)]
        elif block == "decade":
            names += [f"decade:{d}" for d in space.decades]
        elif block == "explicit":
            names.append("explicit")
    return names
