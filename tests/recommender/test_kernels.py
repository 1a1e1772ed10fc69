"""The compiled loops (app/recommender/kernels.py) against the plain code they replaced
(tests/support/reference_kernels.py): the same playlists and orders, bit for bit, on random
inputs with many ties."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender import attribution, kernels, ordering, strategies
from app.recommender.strategies import FAIR_DELTA, TURN_FILL_DELTA, Rules, Taken, liking
from tests.support.reference_kernels import (fair_reference, folded_reference,
                                             for_members_reference,
                                             greedy_fill_reference, taste_match_reference,
                                             thresholds_reference,
                                             listening_order_reference, own_pools_reference,
                                             scaled_reference, separate_artists_reference,
                                             turn_candidates_reference,
                                             turn_pools_reference, turns_reference)


def _taken_pair(rng, song, artist, cap, k):
    a, b = Taken(cap), Taken(cap)
    for i in rng.choice(len(song), k).tolist():
        for t in (a, b):
            t.take(int(song[i]), int(artist[i]))
    return a, b


@pytest.mark.parametrize("seed", range(4))
def test_fair_kernel_equals_the_reference(seed):
    rng = np.random.default_rng(100 + seed)
    for trial in range(150):
        m, c = int(rng.integers(1, 12)), int(rng.integers(1, 500))
        z = rng.standard_normal((m, c)).astype(np.float32)
        if trial % 3 == 0:  # heavy ties: scores on a coarse grid
            z = np.round(z * 2) / 2
        lk = liking(z)
        n = 5_000
        cand = np.sort(rng.choice(n, c, replace=False))
        song = rng.integers(0, int(rng.choice([40, 4_000])), n)
        artist = rng.integers(0, int(rng.choice([5, 300])), n)
        rules = Rules(length=int(rng.integers(1, 40)), max_per_artist=int(rng.integers(1, 4)))
        start = (rng.random(m) * 3, int(rng.integers(1, 6))) if trial % 2 else None
        taken, ref_taken = _taken_pair(rng, song, artist, rules.max_per_artist,
                                       int(rng.integers(0, 6)))
        delta = float(rng.choice([FAIR_DELTA, TURN_FILL_DELTA]))
        got = strategies._fair(lk, cand, song, artist, rules, start, taken, delta)
        want = fair_reference(lk, cand, song, artist, rules, start, ref_taken, delta)
        assert got == want, (seed, trial)
        assert taken.songs == ref_taken.songs and taken.per_artist == ref_taken.per_artist


def test_fair_kernel_takes_the_logarithms_for_large_groups_as_the_reference():
    rng = np.random.default_rng(7)
    n = 600
    song, artist = rng.permutation(n), rng.integers(0, 50, n)
    for members in (200, 300):
        lk = liking(rng.standard_normal((members, n)).astype(np.float32))
        cand = np.arange(n)
        rules = Rules(length=20, max_per_artist=2)
        got = strategies._fair(lk, cand, song, artist, rules)
        assert got == fair_reference(lk, cand, song, artist, rules)


def test_fair_kernel_does_not_write_to_its_input():
    rng = np.random.default_rng(3)
    lk = rng.random((4, 300))
    before = lk.copy()
    strategies._fair(lk, np.arange(300), np.arange(300), np.arange(300) % 7, Rules(20),
                     scratch=True)
    np.testing.assert_array_equal(lk, before)


def test_greedy_fill_kernel_equals_the_reference():
    rng = np.random.default_rng(21)
    for trial in range(400):
        n = int(rng.choice([5, 60, 3_000]))
        song = rng.integers(0, max(2, n * int(rng.integers(1, 4)) // 4), n)
        artist = rng.integers(0, max(2, n // int(rng.choice([2, 30]))), n)
        order = rng.permutation(n)[:int(rng.integers(0, n + 1))]
        allowed = rng.random(n) > 0.3 if trial % 3 == 0 else None
        rules = Rules(length=int(rng.integers(1, 60)), max_per_artist=int(rng.integers(1, 4)))
        chosen = rng.choice(n, int(rng.integers(0, 4)), replace=False).tolist() \
            if trial % 2 else None
        cap = int(rng.integers(1, 5)) if trial % 5 == 0 else None
        got = strategies.greedy_fill(order, song, artist, rules, allowed, chosen, cap)
        want = greedy_fill_reference(order, song, artist, rules, allowed, chosen, cap)
        assert got == want, trial


def test_listening_order_kernel_equals_the_reference():
    rng = np.random.default_rng(12)
    for trial in range(1_500):
        n, m = int(rng.integers(0, 101)), int(rng.integers(1, 11))
        artist = rng.integers(0, max(1, n // int(rng.integers(1, 6))) + 1, n)
        fm = [rng.choice(m, int(rng.integers(0, 4))).tolist() for _ in range(n)]  # repeats too
        tempo = rng.uniform(60, 180, n) if trial % 5 else None
        energy = rng.random(n) if trial % 7 else np.full(n, 0.5)  # flat: no spread
        if trial % 11 == 0:
            tempo = np.round(rng.uniform(60, 70, n))  # ties in the steps
        if trial % 13 == 0:
            tempo = energy = None
        got = ordering.listening_order(fm, artist, tempo, energy, m)
        assert got == listening_order_reference(fm, artist, tempo, energy, m), trial


def test_listening_order_with_artist_names_equals_the_reference():
    rng = np.random.default_rng(13)
    names = np.array(["a", "b", "c", "d"])
    for trial in range(200):
        n = int(rng.integers(2, 30))
        artist = names[rng.integers(0, 4, n)]
        fm = [[int(rng.integers(0, 3))] for _ in range(n)]
        tempo = rng.uniform(60, 180, n)
        got = ordering.listening_order(fm, artist, tempo, None, 3)
        assert got == listening_order_reference(fm, artist, tempo, None, 3), trial


def test_scaled_features_equal_numpys_reductions():
    """Same means and spreads as numpy's pairwise sums, to the last bit (lengths past the
    128-value block of numpy's summation too), with NaN, infinities and flat features."""
    rng = np.random.default_rng(8)
    for trial in range(2_000):
        n = int(rng.integers(1, 400))
        cols = [rng.standard_normal(n) * 10 ** rng.uniform(-3, 6, n), rng.random(n)]
        if trial % 5 == 0:
            cols[1] = np.full(n, 0.5)
        if trial % 7 == 0:
            cols[0][rng.integers(0, n, 3)] = rng.choice([np.nan, np.inf, -np.inf], 3)
        cols = cols[:1] if trial % 3 == 0 else cols
        with np.errstate(all="ignore"):  # the infinities overflow the reference's sums
            want = scaled_reference(cols, n)
        got = kernels.scaled(np.array(cols, dtype=np.float64)).T
        assert got.tobytes() == np.ascontiguousarray(want).tobytes(), trial


def test_separate_artists_kernel_equals_the_reference():
    rng = np.random.default_rng(5)
    for trial in range(1_000):
        n = int(rng.integers(0, 60))
        artist = rng.integers(0, int(rng.integers(1, 6)), n)
        order = rng.permutation(n).tolist()
        assert (ordering._separate_artists(order, artist)
                == separate_artists_reference(order, artist)), trial


def test_a_member_outside_the_group_is_an_error_not_a_stray_write():
    with pytest.raises(ValueError):
        ordering.listening_order([[0], [5]], np.array([1, 2]), None, None, 2)


def test_kernels_are_compiled_once_for_fixed_types():
    """Every kernel has exactly its declared signature: a request never compiles another."""
    for kernel in (kernels.fair, kernels.greedy_fill, kernels.listening_order,
                   kernels.separate_artists, kernels.turn_pools, kernels.own_pools,
                   kernels.turn_favourites, kernels.turn_picks, kernels.kth_largest_rows,
                   kernels.turn_candidates,
                   kernels.for_members, kernels.taste_from_cov, kernels.fold,
                   kernels.attribute, kernels.playlist_measures):
        assert len(kernel.signatures) == 1
    with pytest.raises(TypeError):
        kernels.greedy_fill(np.arange(3, dtype=np.int32), *[np.arange(3)] * 4, 1, 2)


def _group_scores(rng, m, n, trial):
    """members x tracks standardised-like scores; every third trial on a coarse grid (ties
    across every cut), some with a few tracks sharing one score across the members."""
    z = rng.standard_normal((m, n)).astype(np.float32)
    if trial % 3 == 0:
        z = np.round(z * 4) / 4
    elif trial % 3 == 1:  # clones: tracks with the same scores for everyone
        src = rng.choice(n, n // 10)
        z[:, rng.choice(n, n // 10)] = z[:, src]
    return np.ascontiguousarray(z)


def _group_trial(rng, trial: int):
    """A random group's size, catalogue size, scores (``_group_scores``) and, on odd trials,
    a filter."""
    m, n = int(rng.integers(2, 12)), int(rng.choice([3_000, 20_000]))
    z = _group_scores(rng, m, n, trial)
    allowed = rng.random(n) < 0.9 if trial % 2 else None
    return m, n, z, allowed


@pytest.mark.parametrize("seed", range(3))
def test_turn_pools_kernel_equals_the_reference(seed):
    rng = np.random.default_rng(300 + seed)
    for trial in range(40):
        m, n, z, allowed = _group_trial(rng, trial)
        size, k = int(rng.choice([200, 300])), int(rng.choice([20, 40]))
        got = strategies._turn_pools(z, allowed, size, k)
        want = turn_pools_reference(z, allowed, size, k)
        assert (got is None) == (want is None), (seed, trial)
        if got is not None:
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and np.array_equal(g, w), (seed, trial)
        np.testing.assert_array_equal(strategies._own_pools(z, allowed, k),
                                      own_pools_reference(z, allowed, k))


def test_pools_kernels_leave_a_nan_score_to_the_plain_path():
    """A NaN anywhere in the group's scores (allowed or not) makes the pools' kernels decline,
    so that numpy's own selections, which sort NaN last, decide."""
    rng = np.random.default_rng(360)
    for trial in range(20):
        m, n = int(rng.integers(2, 8)), 20_000
        z = rng.standard_normal((m, n)).astype(np.float32)
        assert strategies._turn_candidates(z, None, 200, 20) is not None  # the kernel answers
        z[int(rng.integers(0, m)), int(rng.integers(0, n))] = np.nan
        allowed = rng.random(n) < 0.5 if trial % 2 else None
        assert strategies._turn_pools(z, allowed, 200, 20) is None, trial
        assert strategies._turn_candidates(z, allowed, 200, 20) is None, trial


@pytest.mark.parametrize("seed", range(3))
def test_turn_candidates_kernel_equals_the_reference(seed):
    """The pools and the members' favourites in one kernel: the kept columns, their scores,
    favourites and agreed favourites as the numpy steps give them; it declines (None) only
    where the pools' kernel does (a fallback, or a tie across a cut left to numpy)."""
    rng = np.random.default_rng(350 + seed)
    answered = 0
    for trial in range(40):
        m, n, z, allowed = _group_trial(rng, trial)
        size, k = int(rng.choice([200, 300])), int(rng.choice([20, 40]))
        known = None
        if trial % 3 == 1:  # ``turns_known``: some members' heaviest known tracks
            known = [None if q % 3 == 2 else rng.choice(n, int(rng.integers(0, 150)))
                     for q in range(m)]
        got = strategies._turn_candidates(z, allowed, size, k, known)
        want = turn_candidates_reference(z, allowed, size, k, known)
        if got is None:
            pools = strategies._turn_pools(z, allowed, size, k)
            assert want is None or pools is not None, (seed, trial)  # None or a tie only
            continue
        answered += 1
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape and np.array_equal(g, w), (
                seed, trial)
    assert answered >= 5


@pytest.mark.parametrize("seed", range(3))
def test_turns_kernel_equals_the_reference(seed):
    rng = np.random.default_rng(400 + seed)
    for trial in range(40):
        m, n, z, allowed = _group_trial(rng, trial)
        song = rng.integers(0, int(rng.choice([n // 2, n])), n)
        artist = rng.integers(0, int(rng.choice([30, n // 8])), n)
        rules = Rules(length=int(rng.choice([5, 20, 40])),
                      max_per_artist=int(rng.integers(1, 4)))
        size = max(10 * rules.length, 200)
        k = strategies.favourite_count(n, rules.length)
        owed = rng.choice([1.0, 2.0], m) if trial % 4 else None
        extra = int(rng.integers(0, 3))
        known = None
        if trial % 5 == 0:  # ``turns_known``: some members' heaviest known tracks
            known = [None if q % 3 == 2 else rng.choice(n, int(rng.integers(0, 150)))
                     for q in range(m)]
        limit = int(rng.integers(0, 4))
        pools = strategies._turn_pools(z, allowed, size, k) if trial % 7 else None
        cand = (pools[0] if pools is not None
                else strategies.candidates(z, allowed, size, with_max=False))
        got = strategies._turns(z, allowed, cand, song, artist, rules, owed, pools, extra,
                                known, limit)
        want = turns_reference(z, allowed, cand, song, artist, rules, owed, pools, extra,
                               known, limit)
        assert got == want, (seed, trial)


def test_thresholds_kernel_equals_numpys_partition():
    rng = np.random.default_rng(500)
    for trial in range(300):
        m, s = int(rng.integers(1, 12)), int(rng.integers(1, 3_000))
        z = rng.standard_normal((m, 2 * s)).astype(np.float32)
        if trial % 3 == 0:
            z = np.round(z * 2) / 2
        if trial % 10 == 0:  # a NaN sorts as the largest score
            z[0, rng.integers(0, 2 * s, 3)] = np.nan
        share = float(rng.choice([0.02, 0.3, 1.0]))
        sample = z[:, ::2]  # a strided view, as ``recommend`` passes it
        np.testing.assert_array_equal(attribution.thresholds(sample, share),
                                      thresholds_reference(sample, share))


def test_kth_largest_with_its_floor_equals_numpys_partition():
    """Rows around the length where the k-th largest first takes its floor (eight entries per
    group), on coarse grids (ties at the floor and at the answer) and with NaN."""
    rng = np.random.default_rng(550)
    for trial in range(400):
        k = int(rng.integers(1, 49))
        s = max(k, 8 * k + int(rng.integers(-3, 40)))
        x = rng.standard_normal((int(rng.integers(1, 4)), s)).astype(np.float32)
        if trial % 2 == 0:
            x = np.round(x * float(rng.choice([1, 4]))) / 4
        if trial % 3 == 0:  # ascending rows: each group's maximum is its last entry
            x = np.sort(x, axis=1)
        if trial % 11 == 0:
            x[-1, rng.integers(0, s)] = np.nan
        want = np.partition(x, s - k, axis=1)[:, s - k]
        np.testing.assert_array_equal(kernels.kth_largest_rows(x, k), want)


def test_for_members_kernel_equals_the_reference():
    rng = np.random.default_rng(600)
    for trial in range(300):
        m, n = int(rng.integers(1, 12)), int(rng.integers(0, 40))
        turns = rng.integers(-1, m, n).tolist()
        fav = rng.random((m, n)) < float(rng.choice([0.0, 0.2, 0.7])) if trial % 4 else None
        assert attribution.for_members(turns, fav) == for_members_reference(turns, fav)


def test_attribution_kernel_equals_the_references():
    """Thresholds, favourites and the members each track is for, in one kernel, against the
    references of the thresholds and of ``for_members`` (ties at the threshold, NaN)."""
    rng = np.random.default_rng(650)
    for trial in range(300):
        m, s, n = int(rng.integers(1, 12)), int(rng.integers(1, 600)), int(rng.integers(0, 40))
        z = rng.standard_normal((m, 3 * s)).astype(np.float32)
        if trial % 3 == 0:  # a coarse grid: chosen tracks exactly at a threshold
            z = np.round(z * 2) / 2
        if trial % 10 == 0:
            z[0, rng.integers(0, 3 * s, 3)] = np.nan
        sample = z[:, ::3]  # a strided view, as ``plan`` passes it
        chosen = z[:, rng.integers(0, 3 * s, n)]  # a gather: column-major, as ``finish``'s
        if trial % 2:  # row-major, as a continued playlist's (the tracks so far in front)
            chosen = np.ascontiguousarray(chosen)
        turns = rng.integers(-1, m, n).tolist()
        share = float(rng.choice([0.02, 0.3, 1.0]))
        want = for_members_reference(
            turns, attribution.favourites(chosen, thresholds_reference(sample, share)))
        assert attribution.attribute(chosen, sample, turns, share) == want, trial


def test_playlist_measures_kernel_equals_numpys_steps():
    """Member scores, member fit and the members each track is for in one kernel, bit for bit
    against ``liking``, ``column_mean`` and the attribution's references: scores gathered
    column-major (numpy sums a member's liking track after track) and row-major (pairwise),
    playlists past the 128 tracks where the pairwise sum splits, ties at the thresholds, NaN
    samples."""
    from app.recommender.scoring import playlist_measures
    from app.recommender.strategies import column_mean

    rng = np.random.default_rng(660)
    for trial in range(300):
        m, s = int(rng.integers(1, 12)), int(rng.integers(1, 600))
        n = int(rng.choice([int(rng.integers(1, 40)), int(rng.integers(120, 300))]))
        z = (rng.standard_normal((m, 3 * s)) * float(rng.choice([1, 3]))).astype(np.float32)
        if trial % 3 == 0:
            z = np.round(z * 2) / 2
        chosen = z[:, rng.integers(0, 3 * s, n)]  # a gather: column-major, as ``finish``'s
        if trial % 2:  # row-major, as a continued playlist's (the tracks so far in front)
            chosen = np.ascontiguousarray(chosen)
        if trial % 10 == 0:
            z[0, rng.integers(0, 3 * s, 3)] = np.nan
        sample = z[:, ::3]
        turns = rng.integers(-1, m, n).tolist()
        liking_, fit, who = playlist_measures(chosen, sample, turns)
        want = liking(chosen).T
        assert liking_.shape == want.shape and liking_.dtype == want.dtype, trial
        np.testing.assert_array_equal(liking_.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(fit.view(np.uint32), column_mean(want).view(np.uint32))
        assert who == for_members_reference(
            turns, attribution.favourites(chosen, thresholds_reference(sample))), trial


def test_taste_match_kernel_equals_numpys_steps():
    rng = np.random.default_rng(700)
    for trial in range(300):
        m, k = int(rng.integers(2, 12)), int(rng.integers(2, 40))
        r = rng.standard_normal((m, k))
        if trial % 5 == 0:  # members with the same row: correlations of exactly 1
            r[1] = r[0]
        if trial % 7 == 0:  # a member with no spread at all
            r[0] = 0.0
        cov_item = np.cov(rng.standard_normal((k, 3 * k)))
        rc = r @ cov_item
        got = kernels.taste_from_cov(np.ascontiguousarray(rc @ r.T))
        want = taste_match_reference(rc, r)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), trial


def test_folded_rows_equal_numpys_steps():
    rng = np.random.default_rng(800)
    for trial in range(300):
        m, k = int(rng.integers(1, 12)), int(rng.choice([3, 8, 34, 130, 300]))
        r = rng.standard_normal((m, k)).astype(np.float32).astype(np.float64)
        if trial % 7 == 0:  # a row with no spread: the floor of the variance
            r[0] = 0.0
        cov_item = np.cov(rng.standard_normal((k, 2 * k)))
        mean_item = rng.standard_normal(k)
        rc = r @ cov_item
        got = kernels.fold(r, rc, r @ mean_item)
        want = folded_reference(r, rc, mean_item)
        assert got.dtype == want.dtype and np.array_equal(got, want), trial
