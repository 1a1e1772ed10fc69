"""The fast paths of the scoring hot path against their plain definitions."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender import strategies
from app.recommender.catalogue import Catalogue
from app.recommender.scoring import Recommender
from app.recommender.strategies import FAIR_DELTA, Rules, best, liking


@pytest.mark.parametrize("n,k", [(50, 10), (999, 1), (20_000, 200), (20_000, 7),
                                 (100_000, 200), (3_000, 2_999), (300, 300)])
def test_best_is_exactly_the_top_k(n, k):
    rng = np.random.default_rng(n + k)
    for score in (rng.standard_normal(n).astype(np.float32),
                  np.sort(rng.standard_normal(n)).astype(np.float32),  # sample sees a trend
                  -np.sort(rng.standard_normal(n)).astype(np.float32)):
        got = best(score, k)
        assert len(got) == min(k, n) and len(set(got.tolist())) == len(got)
        expected = np.argsort(-score, kind="stable")[:k]
        assert set(got.tolist()) == set(expected.tolist())


def test_best_with_many_ties_and_excluded_tracks():
    score = np.full(10_000, -1e9, np.float32)
    score[::97] = 1.0  # 104 allowed tracks, all tied
    got = best(score, 200)
    assert len(got) == 200 and set(np.flatnonzero(score == 1.0)) <= set(got.tolist())


def test_liking_is_the_logistic_of_the_centred_score():
    z = np.linspace(-40, 40, 801, dtype=np.float32)
    expected = 1.0 / (1.0 + np.exp(-strategies.LIKING_SLOPE * (z.astype(np.float64)
                                                              - strategies.LIKING_CENTER)))
    np.testing.assert_allclose(liking(z), expected, atol=1e-6)
    assert liking(z).dtype == np.float32


def _fair_by_definition(lk, cand, song, artist, rules):
    """The objective as the docstring states it: each step maximises
    Σ_members log(δ + (fit so far + ℓ) / (step + 1)), first best on ties."""
    m, c = lk.shape
    total = np.zeros(m)
    taken = np.zeros(c, bool)
    songs, per_artist, chosen = set(), {}, []
    lk = lk.astype(np.float64)
    for step in range(rules.length):
        value = np.log(FAIR_DELTA + (lk + total[:, None]) / (step + 1)).sum(axis=0)
        value[taken] = -np.inf
        for j in np.argsort(-value, kind="stable"):
            if not np.isfinite(value[j]):
                return chosen
            taken[j] = True
            s, a = int(song[cand[j]]), int(artist[cand[j]])
            if s not in songs and per_artist.get(a, 0) < rules.max_per_artist:
                break
        songs.add(s)
        per_artist[a] = per_artist.get(a, 0) + 1
        chosen.append(int(cand[j]))
        total += lk[:, j]
    return chosen


@pytest.mark.parametrize("members", [2, 5, 10, 300])  # 300 members take the logarithm path
def test_fair_picks_what_its_objective_defines(members):
    rng = np.random.default_rng(members)
    n = 400
    song = rng.permutation(n)
    song[0:n:8] = song[1:n:8]  # some re-releases: the same song under two ids
    artist = rng.integers(0, 40, n)
    cand = np.sort(rng.choice(n, 250, replace=False))
    rules = Rules(length=20, max_per_artist=2)
    agree = 0
    for trial in range(10):
        # two camps of unequal size with opposed tastes, so that fairness decides the picks
        camp = (rng.random(members) < 0.3).astype(int)
        taste = rng.standard_normal(n) * np.array([[1.0], [-1.0]])
        z = (taste[camp] + 0.7 * rng.standard_normal((members, n))).astype(np.float32)
        lk = liking(z[:, cand])
        got = strategies._fair(lk, cand, song, artist, rules)
        want = _fair_by_definition(lk, cand, song, artist, rules)
        assert len(got) == rules.length and len({int(song[i]) for i in got}) == rules.length
        assert max(np.bincount(artist[got])) <= rules.max_per_artist
        agree += got == want
    assert agree >= 9  # a float near-tie may swap two adjacent picks, no more


def test_z_scores_equal_standardised_raw_scores(trained_small, world_data):
    rec = Recommender(trained_small, Catalogue.from_data(world_data))
    for users in ([0], [3, 9], [1, 2, 4, 8, 16]):  # one, two (per-row products) and a group
        rows = rec.member_rows[users]
        raw = rec.scores(rows).astype(np.float64)
        expected = (raw - raw.mean(axis=1, keepdims=True)) / raw.std(axis=1, keepdims=True)
        np.testing.assert_allclose(rec.z_scores(rows), expected, atol=2e-4)
