"""Candidate retrieval (ANN top-K + exact re-scoring) keeps the playlist contract and its quality.

Why on a synthetic 20,000-track catalogue: retrieval only switches on for huge catalogues in
production (RETRIEVAL_MIN_TRACKS), so these tests attach it explicitly on a small one; the
scale figures (1M tracks: speed-up, recall) live in bench/bench_catalogue.py.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.support.paths import ROOT

hnswlib = pytest.importorskip("hnswlib", reason="hnswlib is not installed")

from app.recommender import retrieval  # noqa: E402
from app.recommender.continuation import SoFar  # noqa: E402
from app.recommender.strategies import STRATEGIES, Rules  # noqa: E402


def _bench_catalogue():
    spec = importlib.util.spec_from_file_location("bench_catalogue",
                                                  ROOT / "bench" / "bench_catalogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rec_with_index(tmp_path_factory):
    rec = _bench_catalogue().synthetic_recommender(20_000, seed=5)
    folder = tmp_path_factory.mktemp("ann")
    assert retrieval.attach(rec, folder=folder, min_tracks=0)
    return rec, folder


def _groups(rec, size: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    users = rec.model.space.user_ids
    return [[rec.member(users[u]) for u in rng.choice(len(users), size, replace=False)]
            for _ in range(count)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_retrieved_playlists_follow_the_rules_and_match_exact(rec_with_index, strategy):
    rec, _ = rec_with_index
    rules = Rules(length=20, max_per_artist=2)
    overlaps, quality = [], []
    for size in (1, 3, 8):
        for group in _groups(rec, size, 4, seed=size):
            approx = rec.recommend(group, rules, strategy)
            exact = rec.recommend(group, rules, strategy, exact=True)
            idx = np.asarray(approx.indices)
            assert len(idx) == 20 and len(set(rec.song[idx])) == 20
            assert np.bincount(rec.artist[idx]).max() <= 2
            assert approx.member_scores.shape == (20, size)
            overlaps.append(len(set(approx.indices) & set(exact.indices)) / 20)
            rows = np.vstack([m.row for m in group]).astype(np.float32)

            def mean_z(indices):
                i = np.asarray(indices)
                return float(rec.standardise(rows, rows @ rec.items[i].T).mean())

            quality.append(mean_z(approx.indices) / mean_z(exact.indices))
    assert np.mean(overlaps) >= 0.6, overlaps
    assert np.mean(quality) >= 0.95, quality


def test_explicit_filter_holds_with_retrieval(rec_with_index):
    rec, _ = rec_with_index
    for group in _groups(rec, 4, 3, seed=9):
        result = rec.recommend(group, Rules(length=30, exclude_explicit=True))
        assert rec.not_explicit[np.asarray(result.indices)].all()


def test_index_is_saved_verified_and_rebuilt_when_tampered(rec_with_index):
    rec, folder = rec_with_index
    (saved,) = folder.glob("ann-*.hnsw")
    side = json.loads(saved.with_suffix(".json").read_text())
    assert side["fingerprint"] == retrieval.items_fingerprint(rec.items)
    assert retrieval.CandidateIndex.load(folder, rec.items) is not None
    other = rec.items.copy()
    other[0, 0] += 1.0  # another model version or catalogue: never served from this index
    assert retrieval.CandidateIndex.load(folder, other) is None
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    assert retrieval.CandidateIndex.load(folder, rec.items) is None  # refused, not trusted
    rebuilt = retrieval.CandidateIndex.load_or_build(folder, rec.items)
    assert rebuilt.build_seconds > 0
    assert retrieval.CandidateIndex.load(folder, rec.items) is not None


def test_small_catalogues_stay_exact():
    rec = _bench_catalogue().synthetic_recommender(2_000, seed=1)
    assert not retrieval.attach(rec, min_tracks=200_000)
    assert rec.retrieval is None


def test_service_attaches_retrieval_past_the_configured_size(api_world, tmp_path):
    """Serving switches retrieval on by catalogue size and still honours the playlist contract."""
    from tests.support.apps import make_api_app
    from app.playlists.holder import get_holder
    from app.playlists.request import PlaylistRequest
    from app.playlists.service import build_playlist

    app = make_api_app(api_world, tmp_path, RETRIEVAL_MIN_TRACKS=1)
    with app.app_context():
        playlist = build_playlist(PlaylistRequest.settle([123, 124, 125], 20))
        assert get_holder().state.recommender.retrieval is not None
        assert len({track.track_id for track in playlist.tracks}) == 20
    assert list((api_world.model_dir).rglob("ann-*.hnsw")), "the index is saved for other workers"


@pytest.fixture(scope="module")
def cold_rec_with_index(world_data, tmp_path_factory):
    """A trained model that never saw 15 % of the tracks, serving all of them with retrieval
    attached, so the cold-start blend and cold members are in play."""
    from app.recommender.catalogue import Catalogue
    from app.recommender.offline.lastfm import subset_items
    from app.recommender.scoring import Recommender
    from app.recommender.training import TrainParams, train

    new = np.random.default_rng(5).random(world_data.n_items) < 0.15
    model = train(subset_items(world_data, ~new), TrainParams(epochs=3, components=16, seed=1))
    rec = Recommender(model, Catalogue.from_data(world_data))
    assert rec.cold_blend is not None
    assert retrieval.attach(rec, folder=tmp_path_factory.mktemp("cold-ann"), min_tracks=0)
    return world_data, rec


def _mixed_group(data, rec):
    """Two trained members (one with skips and a content profile), one known only by genres,
    one by nothing: every kind of member the service builds."""
    ev = data.events
    counts = data.history_counts()
    heavy = [int(u) for u in np.argsort(-counts)[:2]]
    first = rec.member(int(data.user_ids[heavy[0]]))
    first.skip_items = np.unique(rec.catalogue.ids.to_internal(
        data.item_ids[ev.item[ev.user == heavy[0]][:5]]))
    first.content = rec.cold_blend.profile(np.unique(ev.item[ev.user == heavy[0]]))
    second = rec.member(int(data.user_ids[heavy[1]]))
    genre_member = rec.member(-1, [str(rec.model.space.genres[0])])
    popular = rec.member(-2)
    assert [m.kind for m in (first, second, genre_member, popular)] == \
        ["trained", "trained", "genres", "popular"]
    return [first, second, genre_member, popular]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_retrieval_and_exact_score_members_alike(cold_rec_with_index, strategy):
    """One scoring tail: for the tracks retrieval chose, the members' liking and favourites are
    what the whole-catalogue path gives those tracks, cold members and new tracks included."""
    from app.recommender.strategies import liking

    data, rec = cold_rec_with_index
    group = _mixed_group(data, rec)
    approx = rec.recommend(group, Rules(length=20), strategy)
    idx = np.asarray(approx.indices)
    rows = np.vstack([m.row for m in group]).astype(np.float32)
    z = rec.member_z(group, rec.z_scores(rows))
    assert np.allclose(approx.member_scores, liking(z[:, idx]).T, atol=1e-5)
    exact = rec.recommend(group, Rules(length=20), strategy, exact=True)
    shared = [i for i, t in enumerate(exact.indices) if t in set(approx.indices)]
    assert shared, "retrieval and exact share no track"
    for i in shared:
        j = approx.indices.index(exact.indices[i])
        assert np.allclose(approx.member_scores[j], exact.member_scores[i], atol=1e-5)


class _EveryTrack:
    """An index whose 'nearest' tracks are the whole catalogue: retrieval's candidates then
    hold the exact top, and the playlist must be the exact one."""

    def __init__(self, n: int):
        self.n = n

    def query(self, rows, k, ef=None):
        return np.tile(np.arange(self.n), (len(rows), 1))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("scan", [False, True], ids=["float32 group scan", "int8 group scan"])
def test_retrieval_with_the_exact_top_among_candidates_gives_the_exact_playlist(
        cold_rec_with_index, strategy, scan):
    from app.recommender.group_scan import GroupScan

    data, rec = cold_rec_with_index
    group = _mixed_group(data, rec)
    every = retrieval.CandidateRetrieval(_EveryTrack(len(rec.items)),
                                         group_scan=GroupScan(rec.items_t) if scan else None)
    via_candidates = every.recommend(rec, group, Rules(length=20), strategy)
    exact = rec.recommend(group, Rules(length=20), strategy, exact=True)
    assert via_candidates.indices == exact.indices
    assert via_candidates.turns == exact.turns
    assert via_candidates.for_members == exact.for_members
    assert np.allclose(via_candidates.member_scores, exact.member_scores, atol=1e-5)


def test_attach_gives_the_int8_group_scan(rec_with_index):
    rec, _ = rec_with_index
    scan = rec.retrieval.group_scan
    assert scan is not None and scan.n == len(rec.items)
    group = _groups(rec, 6, 1, seed=4)[0]
    rows = np.vstack([m.row for m in group]).astype(np.float32)
    direction = rec.folded(rows).mean(axis=0)
    exact = np.argpartition(-(direction @ rec.items_t), 1000)[:1000]
    assert len(np.intersect1d(scan.top(direction, 1000), exact)) >= 970


class _ExactIndex:
    """A perfect 'nearest neighbour' index: every query's exact top-k by inner product."""

    def __init__(self, rec):
        self.rec = rec

    def query(self, rows, k, ef=None):
        raw = np.asarray(rows, np.float32) @ self.rec.items_t
        return np.argpartition(-raw, k, axis=1)[:, :k].astype(np.int64)


@pytest.fixture(scope="module")
def large_rec():
    """Large enough that a member's favourites (the top ``TURN_SHARE`` of the catalogue) are
    more tracks than the playlist is long, as on a catalogue that needs retrieval."""
    from app.recommender.strategies import favourite_count

    rec = _bench_catalogue().synthetic_recommender(100_000, seed=2)
    assert favourite_count(len(rec.items), 20) > 20
    return rec


@pytest.mark.parametrize("strategy", ["turns", "turns_plus", "turns_known"])
def test_turns_from_candidates_keep_the_exact_playlists_group_score(large_rec, strategy):
    """Members take turns picking, among their favourites, what the group likes best besides
    them. Candidates holding each member's own very top gave turns that ignored the group
    (the strategy counts favourites on the columns it sees); even with a perfect index,
    the retrieved playlist must be as good for the group as the exact one."""
    from app.recommender.group_scan import GroupScan

    rec = large_rec
    rt = retrieval.CandidateRetrieval(_ExactIndex(rec), group_scan=GroupScan(rec.items_t))
    rules = Rules(length=20)
    rng = np.random.default_rng(4)
    users = rec.model.space.user_ids
    quality = []
    for _ in range(8):
        group = [rec.member(users[u]) for u in rng.choice(len(users), 8, replace=False)]
        rows = np.vstack([m.row for m in group]).astype(np.float32)

        def mean_z(indices):
            return float(rec.standardise(rows, rows @ rec.items_t[:, np.asarray(indices)])
                         .mean())

        approx = rt.recommend(rec, group, rules, strategy)
        exact = rec.recommend(group, rules, strategy, exact=True)
        quality.append(mean_z(approx.indices) / mean_z(exact.indices))
    assert np.mean(quality) >= 0.99, quality


def test_turns_known_finds_the_agreed_favourites_among_candidates(large_rec):
    """A member's agreed favourites (known tracks in their model top) come first on their
    turns; retrieval must offer them even when nobody else's candidates hold them."""
    from dataclasses import replace

    from app.recommender.group_scan import GroupScan

    rec = large_rec
    rt = retrieval.CandidateRetrieval(_ExactIndex(rec), group_scan=GroupScan(rec.items_t))
    rules = Rules(length=20)
    rng = np.random.default_rng(6)
    users = rec.model.space.user_ids
    for _ in range(3):
        group = [rec.member(users[u]) for u in rng.choice(len(users), 6, replace=False)]
        rows = np.vstack([m.row for m in group]).astype(np.float32)
        top = _ExactIndex(rec).query(rows, 50)
        raw = rows @ rec.items_t
        group = [replace(m, known=np.concatenate([
            top[j][np.argsort(-raw[j, top[j]])][[15, 30, 45]],
            rng.choice(len(rec.items), 20, replace=False)]).astype(np.int64))
            for j, m in enumerate(group)]
        exact = rec.recommend(group, rules, "turns_known", exact=True)
        approx = rt.recommend(rec, group, rules, "turns_known")
        known = set(np.concatenate([m.known for m in group]).tolist())
        picked = set(exact.indices) & known
        assert picked, "the exact playlist takes agreed favourites"
        assert picked <= set(approx.indices)


@pytest.mark.parametrize("strategy", ["turns_plus", "fair", "mean_rank"])
def test_retrieval_continues_a_playlist_as_the_exact_path_does(rec_with_index, strategy):
    """The tracks so far need not be among the candidates: they are kept, never repeated, and
    scored as on the whole catalogue; skips so far are honoured on both paths alike."""
    rec, _ = rec_with_index
    rules = Rules(length=10, max_per_artist=2)
    for group in _groups(rec, 4, 3, seed=11):
        first = rec.recommend(group, rules, strategy, exact=True)
        # a few tracks far down everyone's list, which retrieval does not bring as candidates
        far = np.argsort(rec.z_scores(rec.rows(group)).mean(axis=0))[:3].tolist()
        played = first.indices[:5] + far
        so_far = SoFar(played=played, turns=first.turns[:5], skipped={0: [played[1]]})
        approx = rec.plan(group, rules, strategy, so_far)
        exact = rec.plan(group, rules, strategy, so_far, exact=True)
        for result in (approx, exact):
            assert result.indices[:8] == played and len(result.indices) == 18
            assert not set(result.indices[8:]) & set(played)
            assert len(set(rec.song[np.asarray(result.indices)].tolist())) == 18
        np.testing.assert_allclose(approx.member_scores[:8], exact.member_scores[:8],
                                   rtol=0, atol=1e-5)
