"""Last.fm loader, the real-data protocol and EVALUATION.md generation.

The loader's edge cases run on a tiny HetRec-format folder written here; the protocol runs on
a 150-user, friendship-connected subsample of the real set (skipped when it is absent).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from app.recommender.content import ContentIndex, blend_cold
from app.recommender.dataset import COUNT
from app.recommender.evaluation import ranking_metrics
from app.recommender.lastfm import LastfmError, friend_cliques, load_lastfm, subset_items
from app.recommender.strategies import DEFAULT_STRATEGY
from tests.conftest import SHARED

LASTFM = SHARED / "data" / "lastfm-hetrec2011"
needs_lastfm = pytest.mark.skipif(
    not (LASTFM / "user_artists.dat").is_file(),
    reason=f"Last.fm HetRec 2011 data not found at {LASTFM} (expected next to the project in "
           f"../shared/data/lastfm-hetrec2011)")


def _write(path, header, rows, encoding="utf-8", newline="\r\n"):
    text = newline.join(["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]) + newline
    path.write_bytes(text.encode(encoding))


@pytest.fixture
def tiny_hetrec(tmp_path):
    """Five users, six artists; 1-2-3 are mutual friends, 3-4 too, 4->5 only one way."""
    _write(tmp_path / "artists.dat", ["id", "name", "url", "pictureURL"],
           [(a, f'Art "{a}"', "u", "p") for a in range(1, 7)], newline="\n")
    _write(tmp_path / "tags.dat", ["tagID", "tagValue"],
           [(1, "rock"), (2, "métal"), (3, "Rock"), (4, "once")], encoding="latin-1")
    _write(tmp_path / "user_artists.dat", ["userID", "artistID", "weight"],
           [(1, 1, 100), (1, 2, 5), (2, 1, 7), (2, 3, 1), (3, 2, 50), (3, 4, 3), (4, 5, 9),
            (5, 6, 2), (5, 1, 0)])
    _write(tmp_path / "user_taggedartists.dat",
           ["userID", "artistID", "tagID", "day", "month", "year"],
           [(1, 1, 1, 1, 1, 2009), (2, 1, 1, 1, 1, 2009), (1, 2, 1, 1, 1, 2009),
            (3, 3, 2, 1, 1, 2009), (3, 4, 2, 1, 1, 2009), (1, 1, 3, 1, 1, 2009),
            (2, 2, 3, 1, 1, 2009), (4, 5, 4, 1, 1, 2009)])
    pairs = [(1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2), (3, 4), (4, 3), (4, 5)]
    _write(tmp_path / "user_friends.dat", ["userID", "friendID"], pairs)
    return tmp_path


def test_loader_maps_hetrec_into_interaction_data(tiny_hetrec):
    data = load_lastfm(tiny_hetrec, min_tag_artists=2)
    assert list(data.user_ids) == [1, 2, 3, 4, 5]
    # artist 6 is listened to by user 5; the zero-count pair is dropped
    assert list(data.item_ids) == ["1", "2", "3", "4", "5", "6"]
    assert len(data.events) == 8 and (data.events.kind == COUNT).all()
    assert sorted(data.events.value.tolist()) == [1, 2, 3, 5, 7, 9, 50, 100]
    assert (data.events.time == 0).all()
    assert data.items.artist_names[0] == 'Art "1"'  # stray quotes survive
    # tags on >= 2 artists: rock (1, 2), métal (3, 4) and Rock (1, 2); "once" is dropped
    assert sorted(data.genre_names) == sorted(["rock", "métal", "Rock"])
    g = data.item_genres.toarray()
    rock = list(data.genre_names).index("rock")
    assert g[:, rock].tolist() == [1, 1, 0, 0, 0, 0]
    assert data.user_genres.shape == (5, 3) and data.user_genres.nnz == 0
    # groups: only mutual friendships; {1,2,3} is the one clique of three, no clique of four
    groups = sorted(tuple(sorted(data.user_ids[g].tolist())) for g in data.groups)
    assert groups == [(1, 2), (1, 2, 3), (1, 3), (2, 3), (3, 4)]


def test_loader_reports_a_missing_file(tiny_hetrec):
    (tiny_hetrec / "tags.dat").unlink()
    with pytest.raises(LastfmError, match="tags.dat is missing"):
        load_lastfm(tiny_hetrec)


def test_friend_cliques_are_complete_subgraphs():
    adj = {1: {2, 3, 4}, 2: {1, 3, 4}, 3: {1, 2, 4}, 4: {1, 2, 3, 5}, 5: {4}}
    assert friend_cliques(adj, 4) == [(1, 2, 3, 4)]
    assert len(friend_cliques(adj, 3)) == 4
    assert len(friend_cliques(adj, 2)) == 7


def test_subset_items_removes_items_and_their_events(tiny_hetrec):
    data = load_lastfm(tiny_hetrec, min_tag_artists=2)
    keep = np.array([True, False, True, True, True, True])
    sub = subset_items(data, keep)
    assert list(sub.item_ids) == ["1", "3", "4", "5", "6"]
    assert len(sub.events) == 6
    assert set(sub.item_ids[sub.events.item]) == {"1", "3", "4", "5", "6"}
    assert sub.item_genres.shape[0] == 5


def test_ranking_metrics_exclude_leaves_training_items_out_of_auc():
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    test = sp.csr_matrix(np.array([[0, 0, 0, 1.0]]))
    exclude = sp.csr_matrix(np.array([[1.0, 0, 0, 0]]))
    m = ranking_metrics(scores, test, k=2, exclude=exclude)
    # candidates 1, 2, 3: the positive (3) is second -> precision 1/2, AUC = 1 of 2 negatives
    assert m["precision"][0] == pytest.approx(0.5)
    assert m["auc"][0] == pytest.approx(0.5)
    plain = ranking_metrics(scores, test, k=2)
    assert plain["precision"][0] == 0.0 and plain["auc"][0] == pytest.approx(1 / 3)


def test_content_blend_touches_only_cold_columns():
    genres = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 0], [0, 1.0]]))
    index = ContentIndex.build(genres, use_idf=True)
    profiles = index.profiles(sp.csr_matrix(np.array([[1, 0, 0, 0.0], [0, 0, 0, 0]])))
    sim = index.similarity(profiles)
    assert sim[0].tolist() == pytest.approx([1, 0, 1, 0])
    z_model = np.zeros((2, 4), np.float32)
    z = blend_cold(z_model, index.standardised(profiles), np.array([False, False, True, True]),
                   weight=0.5)
    assert z[0, :2].tolist() == [0, 0]            # known items keep the model's score
    assert z[0, 2] > 0 > z[0, 3]                   # the cold item of the right genre wins
    assert z[1].tolist() == [0, 0, 0, 0]           # an empty profile says nothing


@pytest.fixture(scope="module")
def lastfm_small():
    if not (LASTFM / "user_artists.dat").is_file():
        pytest.skip(f"Last.fm HetRec 2011 data not found at {LASTFM}")
    return load_lastfm(LASTFM, max_users=150, seed=0)


@needs_lastfm
def test_subsample_keeps_friends_together(lastfm_small):
    data = lastfm_small
    assert data.n_users == 150
    sizes = {len(g) for g in data.groups}
    assert sizes == {2, 3, 4}
    pairs = {(int(a), int(b)) for a, b in np.loadtxt(
        LASTFM / "user_friends.dat", skiprows=1, dtype=np.int64)}
    for group in data.groups[:200]:
        ids = data.user_ids[group].tolist()
        assert all((a, b) in pairs for a in ids for b in ids if a != b)


@needs_lastfm
def test_splits_never_leak_test_pairs(lastfm_small):
    from app.recommender.real_eval import QUICK, _binary, make_splits, positive_pairs

    data = lastfm_small
    s = make_splits(data, QUICK)
    warm_train = _binary(positive_pairs(data, s.warm_train))
    assert warm_train.multiply(s.warm_test).nnz == 0
    assert warm_train.nnz + s.warm_test.nnz == _binary(positive_pairs(data)).nnz
    # cold items: no training event at all; their test pairs are exactly their pairs
    assert not s.cold_items[data.events.item[~s.cold_items[data.events.item]]].any()
    assert s.cold_test[:, ~s.cold_items].nnz == 0 and s.cold_test.nnz > 0
    # validation lives inside both training sets
    val_events = s.val_train
    assert not (val_events & ~s.warm_train).any()
    assert not s.cold_items[data.events.item[val_events]].any()
    assert not s.val_cold_items[data.events.item[val_events]].any()
    val_all = _binary(positive_pairs(data, val_events))
    assert val_all.multiply(s.val_test).nnz == 0
    assert s.val_test.multiply(s.warm_test).nnz == 0
    assert not (s.val_cold_items & s.cold_items).any()


@needs_lastfm
def test_report_command_writes_evaluation_md(tmp_path):
    from tests.conftest import make_app

    app = make_app(tmp_path)
    out = tmp_path / "EVALUATION.md"
    result = app.test_cli_runner().invoke(args=[
        "model", "report", "--dataset", f"lastfm:{LASTFM}", "--max-users", "150", "--quick",
        "--out", str(out), "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for heading in ("## Targets", "## Protocol", "## Warm split", "## Cold start",
                    "### Groups of 2", "### Groups of 3", "### Groups of 4", "## Validation runs"):
        assert heading in text
    for row in ("implicit ALS", "LightFM, pure collaborative filtering",
                "LightFM hybrid (identity + tags)", "content reference: tag cosine (plain)",
                "our cold-start path", f"{DEFAULT_STRATEGY} (default)", "mean_rank"):
        assert row in text
    assert "flask --app wsgi model report --dataset lastfm:" in text
    import json

    data = json.loads((tmp_path / "eval.json").read_text())
    warm = data["warm"]
    assert warm["lightfm_hybrid"]["precision@10"] > warm["popularity"]["precision@10"] \
        > warm["random"]["precision@10"]
    assert data["cold"]["our_cold_path"]["precision@10"] > \
        data["cold"]["lightfm_hybrid_features"]["precision@10"]


def test_report_command_rejects_a_bad_dataset(tmp_path):
    from tests.conftest import make_app

    app = make_app(tmp_path)
    result = app.test_cli_runner().invoke(args=["model", "report", "--dataset", "nope:x",
                                                "--out", str(tmp_path / "E.md")])
    assert result.exit_code != 0 and "unknown dataset" in result.output
    result = app.test_cli_runner().invoke(args=["model", "report", "--dataset",
                                                f"lastfm:{tmp_path / 'missing'}"])
    assert result.exit_code != 0 and "does not exist" in result.output
