"""GFAR (the published reference aggregator) against a plain transcription of the paper's
greedy rule, and its promise on strangers."""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender.strategies import Pick, Rules, fair_share, select


def plain_gfar(z: np.ndarray, length: int, relevant: int = 20) -> list[int]:
    """Kaya et al. 2020, written out item by item: Borda relevance over each member's top
    ``relevant`` (best ``relevant`` points), normalised per member; each step takes the item
    with the largest sum over members of p(rel) times the chance nothing chosen is relevant."""
    m, n = z.shape
    p = {}
    for u in range(m):
        order = sorted(range(n), key=lambda i: (-z[u, i], i))[:relevant]
        total = sum(range(1, relevant + 1))
        for r, i in enumerate(order):
            p[u, i] = (relevant - r) / total
    missed = [1.0] * m
    chosen: list[int] = []
    items = sorted({i for _, i in p})
    while len(chosen) < length:
        best, best_gain = None, 0.0
        for i in items:
            if i in chosen:
                continue
            gain = sum(p.get((u, i), 0.0) * missed[u] for u in range(m))
            if gain > best_gain + 1e-12:
                best, best_gain = i, gain
        if best is None:
            break
        chosen.append(best)
        for u in range(m):
            missed[u] *= 1.0 - p.get((u, best), 0.0)
    return chosen


@pytest.mark.parametrize("m,seed", [(2, 0), (4, 1), (7, 2)])
def test_gfar_matches_the_plain_rule(m, seed):
    rng = np.random.default_rng(seed)
    n = 600
    z = rng.normal(size=(m, n)).astype(np.float32)
    song, artist = np.arange(n), np.arange(n)  # no rule ever refuses a track
    chosen, _, turns = select(Pick("gfar", z, z, song, artist, Rules(length=20), None))
    want = plain_gfar(z, 20)
    assert chosen[:len(want)] == want
    assert len(chosen) == 20 and len(set(chosen)) == 20
    for i, j in zip(chosen, turns):  # the member credited has the track in their top 20
        if j >= 0:
            assert i in np.argsort(-z[j])[:20]


def test_gfar_serves_every_stranger_and_keeps_the_rules():
    rng = np.random.default_rng(5)
    m, n = 6, 3000
    z = rng.normal(0.0, 0.3, size=(m, n)).astype(np.float32)
    block = n // (m + 1)
    for j in range(m):
        z[j, j * block:(j + 1) * block] += 3.0 + (6.0 if j == 0 else 0.0)
    song = np.arange(n) // 2
    artist = np.arange(n) // 10
    rules = Rules(length=20, max_per_artist=2)
    chosen, _, turns = select(Pick("gfar", z, z, song, artist, rules, None))
    assert len(chosen) == 20 and len(set(song[chosen].tolist())) == 20
    assert np.bincount(artist[chosen]).max() <= 2
    own = [sum(j * block <= i < (j + 1) * block for i in chosen) for j in range(m)]
    assert min(own) >= fair_share(20, m), own
    allowed = np.ones(n, bool)
    allowed[:block] = False  # the loud member's own block is filtered out
    chosen, _, _ = select(Pick("gfar", z, z, song, artist, rules, allowed))
    assert allowed[chosen].all()
