"""The fast paths of the scoring hot path against their plain definitions."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender import ordering, strategies
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


# ----- issue 14: the optimised turns and listening order against the commit's plain code -----
# The functions below are the plain implementations as they were before issue 14 (commit
# e67d43c), kept only here: the faster ones must return exactly the same playlists, turns and
# orders (bench/check_identical.py compares whole builds on 10,000 groups).

def _ref_fair(lk: np.ndarray, cand: np.ndarray, song: np.ndarray, artist: np.ndarray,
              rules: Rules, start: tuple[np.ndarray, int] | None = None,
              taken: strategies.Taken | None = None, delta: float = strategies.FAIR_DELTA) -> list[int]:
    m, c = lk.shape
    taken = taken if taken is not None else strategies.Taken(rules.max_per_artist)
    if m == 1:  # one member: the log changes nothing, best liking first
        return strategies.greedy_fill(cand[np.argsort(-lk[0], kind="stable")], song, artist,
                                      rules, None)
    done = start[1] if start is not None else 0
    in_logs = m * np.log10((1.0 + delta) * (rules.length + done + 1)) > 300
    lk = lk.astype(np.float64)
    gain = lk.T + delta  # per candidate: what taking it adds to every member's A
    fit = np.full(m, delta)  # A at step 0
    if start is not None:  # continue a playlist: A = (s + 1)·δ + what members got so far
        fit = fit * (done + 1) + start[0]
    work = np.empty((m, c))
    value = np.empty(c)
    chosen: list[int] = []
    c_song, c_artist, c_index = song[cand].tolist(), artist[cand].tolist(), cand.tolist()
    for _ in range(rules.length):
        np.add(lk, fit[:, None], out=work)  # a taken or refused candidate has -inf in row 0
        if in_logs:
            np.maximum(work, 0.0, out=work)
            with np.errstate(divide="ignore"):
                np.log(work, out=work)
            np.add.reduce(work, axis=0, out=value)
        else:
            np.multiply.reduce(work, axis=0, out=value)
        while True:  # best candidate; rarely more than one try (song or artist taken)
            j = int(value.argmax())
            if value[j] == -np.inf:
                return chosen
            lk[0, j] = value[j] = -np.inf
            s, a = c_song[j], c_artist[j]
            if taken.allows(s, a):
                break
        taken.take(s, a)
        chosen.append(c_index[j])
        fit += gain[j]
    return chosen


def _ref_own_pools(z: np.ndarray, allowed: np.ndarray | None, k: int) -> np.ndarray:
    m, n = z.shape
    stride = max(1, n // 512)
    sample = z[:, ::stride]
    s = sample.shape[1]
    r = s - max(1, min(s, (6 * k * s) // n))
    above = np.subtract(z, np.partition(sample, r, axis=1)[:, r:r + 1]).max(axis=0) >= 0
    if allowed is not None:
        above &= allowed
    return np.flatnonzero(above)


def _ref_turns(z: np.ndarray, allowed: np.ndarray | None, cand: np.ndarray, song: np.ndarray,
               artist: np.ndarray, rules: Rules, owed: np.ndarray | None = None
               ) -> tuple[list[int], list[int]]:
    m, n = z.shape
    if m == 1:  # one member: every turn is theirs, best liking first, as in ``_fair``
        chosen = _ref_fair(strategies.liking(np.take(z, cand, axis=1)), cand, song, artist,
                           rules)
        return chosen, [0] * len(chosen)
    k = min(n, max(rules.length, int(np.ceil(strategies.TURN_SHARE * n))))
    mark = np.zeros(n, dtype=np.int8)
    mark[_ref_own_pools(z, allowed, k)] = 1
    mark[cand] = 2
    wide = np.flatnonzero(mark)
    ranked = np.take(z, wide, axis=1)
    if allowed is not None:
        ranked = np.where(allowed[wide], ranked, strategies._EXCLUDED)
    c = ranked.shape[1]
    fav = ranked >= np.partition(ranked, c - k, axis=1)[:, c - k:c - k + 1]
    # keep the group's candidates and every member's favourites, not the rest of the pools
    keep = (mark[wide] == 2) | fav.any(axis=0)
    cand, zc, fav = wide[keep], ranked[:, keep], fav[:, keep]
    lk = strategies.liking(zc, strategies.TURN_FILL_SLOPE).astype(np.float64)
    share = strategies.fair_share(rules.length, m) * (np.ones(m) if owed is None else owed)
    share = share.tolist()
    # A member's preference among their favourites does not change as the playlist grows
    # (the group's liking is fixed), so each member's picks are ranked once, up front.
    f_cols = np.flatnonzero(fav.any(axis=0))
    f_fav, f_lk = fav[:, f_cols], lk[:, f_cols]
    value = np.where(f_fav, f_lk.mean(axis=0) + strategies.TURN_OWN_WEIGHT * f_lk, -np.inf)
    per_member = f_fav.sum(axis=1).tolist()
    ranked_picks = np.argsort(-value, axis=1, kind="stable")[:, :max(per_member)]
    picks = [ranked_picks[j, :per_member[j]].tolist() for j in range(m)]
    c_song = song[cand[f_cols]].tolist()
    c_artist = artist[cand[f_cols]].tolist()
    count, total = [0] * m, np.zeros(m)
    used: set[int] = set()
    taken = strategies.Taken(rules.max_per_artist)
    chosen: list[int] = []
    turns: list[int] = []
    while len(chosen) < rules.length:
        needy = [j for j in range(m) if count[j] < share[j] and picks[j]]
        if not needy:
            break
        j = min(needy, key=lambda q: (count[q], total[q]))
        c = picks[j].pop(0)
        if c in used:
            continue
        used.add(c)
        if not taken.allows(c_song[c], c_artist[c]):
            continue
        taken.take(c_song[c], c_artist[c])
        chosen.append(int(f_cols[c]))
        turns.append(j)
        count[j] += 1
        total += f_lk[:, c]
    out = [int(cand[c]) for c in chosen]
    if len(out) < rules.length:
        rest = np.ones(len(cand), dtype=bool)
        rest[chosen] = False
        out += _ref_fair(lk[:, rest].astype(np.float32), cand[rest], song, artist,
                     strategies.Rules(rules.length - len(out), rules.max_per_artist,
                           rules.exclude_explicit),
                     start=(total, len(out)), taken=taken,
                     delta=strategies.TURN_FILL_DELTA)
    return out, turns + [strategies.NO_TURN] * (len(out) - len(turns))


def _ref_listening_order(for_members: list[list[int]], artist: np.ndarray,
                         tempo: np.ndarray | None, energy: np.ndarray | None, n_members: int,
                         smooth_weight: float = ordering.SMOOTH_WEIGHT) -> list[int]:
    n = len(for_members)
    if n <= 1:
        return list(range(n))
    artist = np.asarray(artist)
    serves = np.zeros((n, max(n_members, 1)), dtype=bool)
    for t, ms in enumerate(for_members):
        serves[t, ms] = True
    audio = _ref_scaled([tempo, energy], n)
    # pairwise steps and artist clashes once: each position is then a few vector operations
    step = (smooth_weight * np.abs(audio[:, None, :] - audio[None, :, :]).sum(axis=2)
            if audio is not None else np.zeros((n, n)))
    same_artist = artist[:, None] == artist[None, :]
    left = serves.sum(axis=0).astype(np.float64)  # tracks still to play, per member
    last = np.full(serves.shape[1], -1.0)          # position of each member's last track
    taken = np.zeros(n, dtype=bool)
    order: list[int] = []
    for pos in range(n):
        pressure = (pos - last) * left * (1.0 / (n - pos))
        score = (serves * pressure).max(axis=1)
        if order:
            prev = order[-1]
            score -= step[prev]
            blocked = taken | same_artist[prev]
            score[blocked if not blocked.all() else taken] = -np.inf
        pick = int(np.argmax(score))  # first of the best: ties go to the strategy's order
        order.append(pick)
        taken[pick] = True
        served = serves[pick]
        last[served] = pos
        left[served] -= 1
    return ordering._separate_artists(order, artist)  # unchanged by issue 14: shared


def _ref_scaled(columns: list[np.ndarray | None], n: int) -> np.ndarray | None:
    out = []
    for col in columns:
        if col is None or len(col) != n:
            continue
        col = np.nan_to_num(np.asarray(col, dtype=np.float64))
        sd = col.std()
        out.append(col / sd if sd > 0 else np.zeros(n))
    return np.column_stack(out) if out else None


def _random_case(rng, trial):
    m = int(rng.integers(2, 11))
    n = int(rng.choice([300, 2_000, 20_000]))
    z = rng.standard_normal((m, n)).astype(np.float32)
    if trial % 4 == 0:  # heavy ties: scores on a coarse grid
        z = np.round(z * 2) / 2
    song = rng.integers(0, n * 3 // 4, n)
    artist = rng.integers(0, max(n // int(rng.choice([8, 60])), 3), n)
    allowed = rng.random(n) > 0.2 if trial % 3 == 0 else None
    rules = Rules(length=int(rng.integers(5, 31)), max_per_artist=int(rng.integers(1, 4)))
    owed = rng.choice([1.0, 2.0], m) if trial % 2 else None
    return z, song, artist, allowed, rules, owed


def test_turns_equal_the_plain_implementation():
    rng = np.random.default_rng(14)
    for trial in range(300):
        z, song, artist, allowed, rules, owed = _random_case(rng, trial)
        cand = strategies.candidates(z, allowed, max(10 * rules.length, 200), with_max=False)
        got = strategies._turns(z, allowed, cand, song, artist, rules, owed)
        assert got == _ref_turns(z, allowed, cand, song, artist, rules, owed), trial


def test_fair_fill_equals_the_plain_implementation():
    rng = np.random.default_rng(41)
    for trial in range(200):
        m, c = int(rng.integers(2, 11)), int(rng.integers(20, 400))
        lk = liking(rng.standard_normal((m, c)).astype(np.float32))
        cand = np.sort(rng.choice(5_000, c, replace=False))
        song, artist = rng.integers(0, 4_000, 5_000), rng.integers(0, 300, 5_000)
        rules = Rules(length=int(rng.integers(3, 25)), max_per_artist=int(rng.integers(1, 4)))
        start = (rng.random(m) * 3, int(rng.integers(1, 6))) if trial % 2 else None
        taken = strategies.Taken(rules.max_per_artist)
        ref_taken = strategies.Taken(rules.max_per_artist)
        for i in rng.choice(5_000, 4).tolist():
            taken.take(int(song[i]), int(artist[i]))
            ref_taken.take(int(song[i]), int(artist[i]))
        delta = float(rng.choice([FAIR_DELTA, strategies.TURN_FILL_DELTA]))
        got = strategies._fair(lk.astype(np.float64), cand, song, artist, rules, start, taken,
                               delta, scratch=True)
        assert got == _ref_fair(lk, cand, song, artist, rules, start, ref_taken, delta), trial
        assert taken.songs == ref_taken.songs and taken.per_artist == ref_taken.per_artist


def test_listening_order_equals_the_plain_implementation():
    rng = np.random.default_rng(11)
    for trial in range(500):
        n, m = int(rng.integers(2, 40)), int(rng.integers(1, 11))
        artist = rng.integers(0, max(2, n // int(rng.integers(1, 4))), n)
        fm = [sorted(set(rng.choice(m, int(rng.integers(0, 4))).tolist())) for _ in range(n)]
        tempo = rng.uniform(60, 180, n) if trial % 5 else None
        energy = rng.random(n) if trial % 7 else np.full(n, 0.5)  # flat: no spread
        if trial % 11 == 0:
            tempo = np.round(rng.uniform(60, 70, n))  # ties in the steps
        got = ordering.listening_order(fm, artist, tempo, energy, m)
        assert got == _ref_listening_order(fm, artist, tempo, energy, m), trial


def test_turn_pools_list_the_candidates_and_own_pools_of_the_plain_path():
    rng = np.random.default_rng(5)
    listed = 0
    for trial in range(200):
        z, song, artist, allowed, rules, owed = _random_case(rng, trial)
        size, n = max(10 * rules.length, 200), z.shape[1]
        k = strategies.favourite_count(n, rules.length)
        got = strategies._turn_pools(z, allowed, size, k)
        if got is None:  # a pool the sample misjudged, or a catalogue too small: plain path
            continue
        listed += 1
        cand = strategies.candidates(z, allowed, size, with_max=False)
        own = _ref_own_pools(z, allowed, k)
        wide = np.union1d(own, cand)
        np.testing.assert_array_equal(got[0], cand)
        np.testing.assert_array_equal(got[1], wide)
        np.testing.assert_array_equal(got[2], np.isin(wide, cand))
        assert got[0].dtype == cand.dtype and got[1].dtype == wide.dtype
        chosen = strategies._turns(z, allowed, cand, song, artist, rules, owed, pools=got)
        assert chosen == _ref_turns(z, allowed, cand, song, artist, rules, owed), trial
    assert listed > 50  # the 20,000-track cases; smaller catalogues take the plain path
