"""Measures of the product's promise, "the whole group enjoys the playlist", on a true taste.

Everything here takes ``true``: members x catalogue affinities in 0-1 (the demo's hidden taste,
``GroundTruth.affinity``), and a playlist as catalogue indices. A group's mean affinity hides
the member who got nothing they love, so each playlist is judged per member as well:

- *favourites*: a member's personal top ``FAVOURITE_SHARE`` of the catalogue by true taste;
- *fair share*: ``max(1, floor(L / (2 m)))`` favourites in a playlist of L for m members (half
  the playlist split evenly leaves the other half to tracks the group shares);
- *m-proportional* and *m-envy-free* members as in Serbos et al., "Fairness in
  package-to-group recommendations" (WWW 2017), with m = the fair share: proportional when at
  least m playlist tracks are in the member's top ``PROPORTIONAL_SHARE`` of the catalogue;
  envy-free when at least m playlist tracks are ones the member likes at least as much as
  most other members do.

The oracles build playlists from the true taste itself under the same playlist rules and bound
what a strategy can reach on each measure: the top by group mean (best mean), members taking
turns (every member represented) and greedy max-min (best least happy member).
"""
from __future__ import annotations

import numpy as np

from app.recommender.strategies import Rules, Taken, best, fair_share, greedy_fill

FAVOURITE_SHARE = 0.02
PROPORTIONAL_SHARE = 0.05
ORACLES = ("oracle_mean", "oracle_turns", "oracle_maxmin")
MEASURES = ("mean_affinity", "least_happy", "fair_share_met", "members_with_favourite",
            "proportional", "envy_free")


def top_share(true: np.ndarray, share: float) -> np.ndarray:
    """members x catalogue: True where a track is in the member's top ``share`` by ``true``."""
    n = true.shape[1]
    k = min(n, max(1, int(round(share * n))))
    kth = np.partition(true, n - k, axis=1)[:, n - k]
    return true >= kth[:, None]


def measure(true: np.ndarray, chosen, favourites: np.ndarray | None = None,
            proportional: np.ndarray | None = None) -> dict[str, float]:
    """The promise measures of one playlist (the masks may be passed in when reused)."""
    idx = np.asarray(chosen, dtype=np.int64)
    m = true.shape[0]
    share = fair_share(len(idx), m)
    fav = (top_share(true, FAVOURITE_SHARE) if favourites is None else favourites)[:, idx]
    prop = (top_share(true, PROPORTIONAL_SHARE) if proportional is None
            else proportional)[:, idx]
    got = true[:, idx]
    per_member = got.mean(axis=1)
    fav_count = fav.sum(axis=1)
    if m > 1:
        # per track, how many of the others each member likes it at least as much as
        beaten = (got[:, None, :] >= got[None, :, :]).sum(axis=1) - 1
        envy_free_tracks = (beaten >= (m - 1) / 2).sum(axis=1)
    else:
        envy_free_tracks = np.full(1, len(idx))
    return {
        "mean_affinity": float(per_member.mean()),
        "least_happy": float(per_member.min()),
        "fair_share_met": float(np.all(fav_count >= share)),
        "members_with_favourite": float((fav_count >= 1).mean()),
        "proportional": float((prop.sum(axis=1) >= share).mean()),
        "envy_free": float((envy_free_tracks >= share).mean()),
    }


def oracle(name: str, true: np.ndarray, song: np.ndarray, artist: np.ndarray, rules: Rules,
           favourites: np.ndarray | None = None) -> list[int]:
    """A playlist built from the true taste (see the module docstring)."""
    if name == "oracle_mean":
        order = np.argsort(-true.mean(axis=0), kind="stable")
        return greedy_fill(order, song, artist, rules, None)
    if name == "oracle_turns":
        fav = top_share(true, FAVOURITE_SHARE) if favourites is None else favourites
        return _oracle_turns(true, fav, song, artist, rules)
    if name == "oracle_maxmin":
        return _oracle_maxmin(true, song, artist, rules)
    raise ValueError(f"unknown oracle {name!r}")


def _oracle_turns(true, fav, song, artist, rules) -> list[int]:
    """Until every member holds a fair share of favourites, the member with the fewest so far
    picks, among their own favourites, the one the group likes best (ties: the member served
    worst so far); then the group mean fills the playlist."""
    m = true.shape[0]
    share = fair_share(rules.length, m)
    mean = true.mean(axis=0)
    taken = Taken(rules.max_per_artist)
    chosen: list[int] = []
    count = np.zeros(m)
    total = np.zeros(m)
    own = [np.flatnonzero(f)[np.argsort(-mean[f], kind="stable")] for f in fav]
    pos = [0] * m
    while len(chosen) < rules.length:
        needy = [j for j in np.lexsort((total, count)) if count[j] < share
                 and pos[j] < len(own[j])]
        if not needy:
            break
        j = needy[0]
        i = int(own[j][pos[j]])
        pos[j] += 1
        if i in chosen or not taken.allows(int(song[i]), int(artist[i])):
            continue
        chosen.append(i)
        taken.take(int(song[i]), int(artist[i]))
        count += fav[:, i]
        total += true[:, i]
    return greedy_fill(np.argsort(-mean, kind="stable"), song, artist, rules, None, chosen)


def _oracle_maxmin(true, song, artist, rules) -> list[int]:
    """Each next track raises the least happy member's total most (ties: the group mean)."""
    m, n = true.shape
    k = min(n, 20 * rules.length)
    pool = np.unique(np.concatenate([best(row, k) for row in true]
                                    + [best(true.mean(axis=0), k)]))
    sub = true[:, pool]
    total = np.zeros(m)
    taken = Taken(rules.max_per_artist)
    chosen: list[int] = []
    alive = np.ones(len(pool), dtype=bool)
    while len(chosen) < rules.length and alive.any():
        value = (total[:, None] + sub).min(axis=0) + 1e-6 * sub.mean(axis=0)
        value[~alive] = -np.inf
        j = int(value.argmax())
        alive[j] = False
        i = int(pool[j])
        if not taken.allows(int(song[i]), int(artist[i])):
            continue
        chosen.append(i)
        taken.take(int(song[i]), int(artist[i]))
        total += sub[:, j]
    if len(chosen) < rules.length:
        chosen = greedy_fill(np.argsort(-true.mean(axis=0), kind="stable"), song, artist, rules,
                             None, chosen)
    return chosen


def masks(true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A group's favourites and proportionality masks (``measure`` takes them, so that many
    playlists of one group share one selection per member)."""
    return top_share(true, FAVOURITE_SHARE), top_share(true, PROPORTIONAL_SHARE)


def summarise(values: dict[str, list[float]]) -> dict[str, float]:
    """Mean of each figure over groups; for the promise measures also ``*_ci95``, the
    half-width of a normal 95 % interval."""
    out: dict[str, float] = {}
    for key, vals in values.items():
        v = np.asarray(vals, dtype=np.float64)
        out[key] = round(float(v.mean()), 5)
        if key in MEASURES and len(v) > 1:
            out[f"{key}_ci95"] = round(float(1.96 * v.std(ddof=1) / np.sqrt(len(v))), 5)
    return out
