"""The history evidence against a plain per-event reference."""
from __future__ import annotations

import numpy as np

from app.recommender.dataset import LIKE, PLAY, SKIP
from app.recommender.evidence import known_by_user, known_tracks
from app.recommender.features import WeightParams

DAY = 86400.0


def plain(events, params: WeightParams, now: float) -> dict[int, dict[int, float]]:
    """Event by event: kind weight (like 3, play 1, skip -1) halved every half-life."""
    kinds = {PLAY: params.play, SKIP: params.skip, LIKE: params.like}
    out: dict[int, dict[int, float]] = {}
    for u, i, k, t in events:
        w = kinds[k] * 0.5 ** ((now - t) / DAY / params.half_life_days)
        out.setdefault(u, {})[i] = out.get(u, {}).get(i, 0.0) + w
    return {u: {i: w for i, w in d.items() if w > 1e-9} for u, d in out.items()}


def test_known_tracks_match_the_plain_sum():
    rng = np.random.default_rng(2)
    n = 400
    ev = list(zip(rng.integers(0, 5, n).tolist(), rng.integers(0, 30, n).tolist(),
                  rng.choice([PLAY, PLAY, PLAY, SKIP, LIKE], n).tolist(),
                  (1e9 + rng.random(n) * 200 * DAY).tolist()))
    params = WeightParams()
    now = max(e[3] for e in ev)
    u, i, k, t = (np.array(c) for c in zip(*ev))
    got = known_by_user(u, i, k, t, params, now)
    want = plain(ev, params, now)
    assert set(got) == set(want)
    for user, kn in got.items():
        assert dict(zip(kn.items.tolist(), kn.weight.tolist())) == \
            __import__("pytest").approx(want[user])
        one = known_tracks(i[u == user], k[u == user], t[u == user], params, now)
        assert one.items.tolist() == kn.items.tolist()
        assert np.allclose(one.weight, kn.weight)


def test_a_skip_cancels_its_play_and_recent_counts_more():
    params = WeightParams(half_life_days=10.0)
    now = 100 * DAY
    kn = known_tracks(np.array([1, 1, 2, 3, 4, 4]),
                      np.array([PLAY, SKIP, PLAY, PLAY, PLAY, PLAY]),
                      np.array([now, now, now, now - 10 * DAY, now - 50 * DAY, now]),
                      params, now)
    assert kn.items.tolist() == [2, 3, 4]      # track 1 was played and skipped: not known
    assert kn.weight.tolist() == [1.0, 0.5, 1.0 + 2 ** -5]
    assert kn.top(2).tolist() == [4, 2]
