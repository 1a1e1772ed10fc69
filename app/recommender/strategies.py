"""Group aggregation strategies and the playlist rules, on a members x tracks score matrix.

Input is ``z``: each member's scores standardised over the whole catalogue (mean 0, std 1 per
member), so that a member whose scores happen to spread widely does not outvote the others.
``Φ(z)`` (the normal CDF) is the 0-1 "expected liking" shown to people; it tracks the member's
percentile of the track in the catalogue (README: normalisation check).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

STRATEGIES = ("mean_rank", "average", "least_misery", "average_without_misery", "fair")
DEFAULT_STRATEGY = "average_without_misery"

# average_without_misery: a member "dislikes" a track below this percentile of their catalogue.
MISERY_PERCENTILE = 0.75
# fair: weight of the group mean next to the worst-served member's own score.
FAIR_GROUP_WEIGHT = 1.0
_EXCLUDED = -1e9


@dataclass(frozen=True)
class Rules:
    length: int
    max_per_artist: int = 3
    exclude_explicit: bool = False


class NotEnoughSongs(ValueError):
    pass


def percentiles(scores: np.ndarray) -> np.ndarray:
    """Exact per-member percentile (0 worst, 1 best) of every track: one argsort per member."""
    m, n = scores.shape
    order = np.argsort(scores, axis=1, kind="stable")
    pct = np.empty((m, n), dtype=np.float32)
    ranks = np.broadcast_to(np.arange(n, dtype=np.float32) / max(n - 1, 1), (m, n))
    np.put_along_axis(pct, order, ranks, axis=1)
    return pct


def aggregate(strategy: str, z: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
    """One score per track for the strategies that rank once (all but ``fair``)."""
    if strategy == "mean_rank":
        return percentiles(raw if raw is not None else z).mean(axis=0)
    if strategy == "average":
        return z.mean(axis=0)
    if strategy == "least_misery":
        # ties on the minimum (common in small groups) go to the better group average
        return z.min(axis=0) + 1e-3 * z.mean(axis=0)
    if strategy == "average_without_misery":
        threshold = float(_Z_OF_MISERY)
        mean = z.mean(axis=0)
        ok = z.min(axis=0) >= threshold
        # tracks someone dislikes stay available, but only after every acceptable one
        return np.where(ok, mean, mean - 1e3)
    raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


def _z_of(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


_Z_OF_MISERY = _z_of(MISERY_PERCENTILE)


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (argpartition, then sort only those)."""
    n = len(score)
    if k >= n:
        return np.argsort(-score, kind="stable")
    part = np.argpartition(-score, k)[:k]
    return part[np.argsort(-score[part], kind="stable")]


def greedy_fill(order: np.ndarray, song: np.ndarray, artist: np.ndarray, rules: Rules,
                allowed: np.ndarray | None, chosen: list[int] | None = None,
                max_per_artist: int | None = None) -> list[int]:
    """Walk candidates best first; take a track unless its song is already in, its artist is at
    the cap, or it is filtered out. Loops over candidates (tens), never over the catalogue."""
    chosen = list(chosen or [])
    cap = rules.max_per_artist if max_per_artist is None else max_per_artist
    songs = {int(song[i]) for i in chosen}
    per_artist: dict[int, int] = {}
    for i in chosen:
        per_artist[int(artist[i])] = per_artist.get(int(artist[i]), 0) + 1
    for i in order.tolist():
        if len(chosen) >= rules.length:
            break
        if allowed is not None and not allowed[i]:
            continue
        s, a = int(song[i]), int(artist[i])
        if s in songs or per_artist.get(a, 0) >= cap:
            continue
        chosen.append(i)
        songs.add(s)
        per_artist[a] = per_artist.get(a, 0) + 1
    return chosen


def select(strategy: str, z: np.ndarray, raw: np.ndarray, song: np.ndarray, artist: np.ndarray,
           rules: Rules, allowed: np.ndarray | None) -> tuple[list[int], list[str]]:
    """The playlist's track indices under ``strategy`` and the playlist rules, plus notes."""
    notes: list[str] = []
    n = z.shape[1]
    if strategy == "fair":
        chosen = _fair(z, song, artist, rules, allowed)
    else:
        score = aggregate(strategy, z, raw)
        if allowed is not None:
            score = np.where(allowed, score, _EXCLUDED)
        pool = max(4 * rules.length + 40, 100)
        chosen = greedy_fill(_top(score, pool), song, artist, rules, allowed)
        if len(chosen) < rules.length and pool < n:
            chosen = greedy_fill(_top(score, n), song, artist, rules, allowed)
    if len(chosen) < rules.length:
        # very small or filtered catalogues: the artist cap gives way before the length does
        base = aggregate("average", z)
        order = _top(np.where(allowed, base, _EXCLUDED) if allowed is not None else base, n)
        chosen = greedy_fill(order, song, artist, rules, allowed, chosen, max_per_artist=n)
        notes.append("artist cap relaxed: not enough distinct artists")
    if len(chosen) < rules.length:
        raise NotEnoughSongs(f"the catalogue holds only {len(chosen)} distinct songs that pass "
                             f"the filters; asked for {rules.length}")
    return chosen, notes


def _fair(z: np.ndarray, song: np.ndarray, artist: np.ndarray, rules: Rules,
          allowed: np.ndarray | None) -> list[int]:
    """Each next track goes to the member served worst so far (by summed liking Φ(z)): the
    best track for them, with the group's average as a counterweight so that the others are not
    sacrificed. Candidates: every member's own top tracks plus the group's top by average."""
    m, n = z.shape
    mean = z.mean(axis=0)
    per_member = max(2 * rules.length + 10, 40)
    pools = [_top(np.where(allowed, z[j], _EXCLUDED) if allowed is not None else z[j],
                  per_member) for j in range(m)]
    pools.append(_top(np.where(allowed, mean, _EXCLUDED) if allowed is not None else mean,
                      4 * rules.length + 40))
    cand = np.unique(np.concatenate(pools))
    if allowed is not None:
        cand = cand[allowed[cand]]
    zc = z[:, cand]
    like = ndtr(zc)
    objective = zc + FAIR_GROUP_WEIGHT * zc.mean(axis=0)  # member j's own + group mean
    served = np.zeros(m)
    used = np.zeros(len(cand), dtype=bool)
    songs: set[int] = set()
    per_artist: dict[int, int] = {}
    chosen: list[int] = []
    song_c, artist_c = song[cand], artist[cand]
    # candidates blocked by the rules are marked used as we go
    while len(chosen) < rules.length:
        j = int(np.argmin(served))
        obj = np.where(used, -np.inf, objective[j])
        picked = -1
        for c in np.argsort(-obj, kind="stable").tolist():
            if used[c] or not np.isfinite(obj[c]):
                break
            s, a = int(song_c[c]), int(artist_c[c])
            if s in songs or per_artist.get(a, 0) >= rules.max_per_artist:
                used[c] = True
                continue
            picked = c
            break
        if picked < 0:
            break
        used[picked] = True
        songs.add(int(song_c[picked]))
        per_artist[int(artist_c[picked])] = per_artist.get(int(artist_c[picked]), 0) + 1
        chosen.append(int(cand[picked]))
        served += like[:, picked]
    if len(chosen) < rules.length:
        order = _top(np.where(allowed, mean, _EXCLUDED) if allowed is not None else mean, n)
        chosen = greedy_fill(order, song, artist, rules, allowed, chosen)
    return chosen
