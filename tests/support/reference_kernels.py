"""The plain Python/numpy implementations of the loops that ``app/recommender/kernels.py``
compiles, as they were before numba: the tests compare the kernels with them on random inputs
(same playlists and orders, bit for bit)."""
from __future__ import annotations

import math
from operator import itemgetter

import numpy as np

from app.recommender import ordering, strategies

_BLOCKED = -math.inf  # never a real score: urgency and steps are finite


def listening_order_reference(for_members: list[list[int]], artist: np.ndarray,
                              tempo: np.ndarray | None, energy: np.ndarray | None, n_members: int,
                              smooth_weight: float = ordering.SMOOTH_WEIGHT) -> list[int]:
    """A permutation of ``range(len(for_members))``: the order to play the tracks in.

    The greedy steps run on Python lists: a playlist has a few dozen tracks, where a numpy
    call costs more than the arithmetic it saves. A track's urgency is the highest pressure
    among its members, 0 when it is for nobody (pressures are never negative)."""
    n = len(for_members)
    if n <= 1:
        return list(range(n))
    artists = np.asarray(artist).tolist()
    # tracks with the same members share their urgency: computed once per set and position
    sets: dict[tuple[int, ...], int] = {}
    of_track = [sets.setdefault(tuple(sorted(set(ms))), len(sets)) for ms in for_members]
    member_sets = list(sets)
    # a set's urgency read from the pressures: 0 for nobody, else the highest of its members'
    urgency_of = [(lambda p: 0.0) if not ms else itemgetter(ms[0]) if len(ms) == 1
                  else (lambda p, get=itemgetter(*ms): max(get(p))) for ms in member_sets]
    width = max(n_members, 1)
    audio = scaled_reference([tempo, energy], n)
    # pairwise steps once: each position then reads one row
    step = ((smooth_weight * np.abs(audio[:, None, :] - audio[None, :, :]).sum(axis=2)).tolist()
            if audio is not None else None)
    left = [0.0] * width  # tracks still to play, per member
    for t in of_track:
        for j in member_sets[t]:
            left[j] += 1.0
    last = [-1.0] * width  # position of each member's last track
    remaining = list(range(n))
    order: list[int] = []
    for pos in range(n):
        scale = 1.0 / (n - pos)
        pressure = [(pos - at) * still * scale for at, still in zip(last, left)]
        urgency = [get(pressure) for get in urgency_of]
        if order:
            prev = order[-1]
            mine, row = artists[prev], step[prev] if step is not None else None
            # a track by the previous track's artist only when nothing else is left
            scores = ([urgency[of_track[t]] - row[t] if artists[t] != mine else _BLOCKED
                       for t in remaining] if row is not None else
                      [urgency[of_track[t]] if artists[t] != mine else _BLOCKED
                       for t in remaining])
            best = max(scores)
            if best == _BLOCKED:  # every track left is by that artist
                scores = ([urgency[of_track[t]] - row[t] for t in remaining]
                          if row is not None else [urgency[of_track[t]] for t in remaining])
                best = max(scores)
        else:
            scores = [urgency[of_track[t]] for t in remaining]
            best = max(scores)
        pick = remaining[scores.index(best)]  # the first of the best: the strategy's order
        order.append(pick)
        remaining.remove(pick)
        for j in member_sets[of_track[pick]]:
            last[j] = pos
            left[j] -= 1.0
    return separate_artists_reference(order, artists)


def separate_artists_reference(order: list[int], artist) -> list[int]:
    """Move any track that follows its own artist to the nearest place between two tracks by
    other artists; left as it is when no such place exists (a catalogue of very few artists)."""
    order = list(order)
    for _ in range(len(order)):
        a = [artist[t] for t in order]
        clash = next((i for i in range(1, len(order)) if a[i] == a[i - 1]), None)
        if clash is None:
            break
        track = order.pop(clash)
        mine = artist[track]
        rest = [artist[t] for t in order]
        spots = [k for k in range(len(order) + 1)
                 if (k == 0 or rest[k - 1] != mine) and (k == len(order) or rest[k] != mine)]
        if not spots:
            order.insert(clash, track)
            break
        order.insert(min(spots, key=lambda k: (abs(k - clash), k)), track)
    return order


def greedy_fill_reference(order: np.ndarray, song: np.ndarray, artist: np.ndarray,
                          rules: strategies.Rules,
                          allowed: np.ndarray | None, chosen: list[int] | None = None,
                          max_per_artist: int | None = None) -> list[int]:
    """Walk candidates best first; take a track unless its song is already in, its artist is at
    the cap, or it is filtered out. Loops over candidates (hundreds), never over the catalogue."""
    chosen = list(chosen or [])
    taken = strategies.Taken(rules.max_per_artist if max_per_artist is None else max_per_artist)
    for i in chosen:
        taken.take(int(song[i]), int(artist[i]))
    if allowed is not None:
        order = order[allowed[order]]
    for i, s, a in zip(order.tolist(), song[order].tolist(), artist[order].tolist()):
        if len(chosen) >= rules.length:
            break
        if not taken.allows(s, a):
            continue
        chosen.append(i)
        taken.take(s, a)
    return chosen


def fair_reference(lk: np.ndarray, cand: np.ndarray, song: np.ndarray, artist: np.ndarray,
                   rules: strategies.Rules, start: tuple[np.ndarray, int] | None = None,
                   taken: strategies.Taken | None = None, delta: float = strategies.FAIR_DELTA, *,
                   scratch: bool = False) -> list[int]:
    """Proportional fairness, built greedily: each next track maximises the sum over members
    of ``log(FAIR_DELTA + running fit)``. The log makes a gain for the member served worst so
    far count most (that member steers the next pick, as Spotify Blend aims at "everyone is
    represented"), while everyone's liking still counts. Measured against a greedy
    "mean + λ·min" rule and local-search variants, it gave the best least-happy-member
    affinity at the same mean (README: strategy evaluation).

    At step s, with ``A = (s + 1)·FAIR_DELTA + total`` per member, that sum is
    ``Σ log(A + ℓ) − m·log(s + 1)``; the last term is the same for every candidate, so the
    pick maximises ``Π (A + ℓ)``: one addition and one product per step instead of a
    logarithm per member and candidate. Groups too large for the product to
    stay finite in float64 take the sum of logarithms. ``scratch``: ``lk`` is a float64 array
    the caller no longer needs, so it is worked on in place instead of copied."""
    m, c = lk.shape
    taken = taken if taken is not None else strategies.Taken(rules.max_per_artist)
    if m == 1:  # one member: the log changes nothing, best liking first, after ``taken``
        out: list[int] = []
        for i in cand[np.argsort(-lk[0], kind="stable")].tolist():
            s, a = int(song[i]), int(artist[i])
            if len(out) < rules.length and taken.allows(s, a):
                taken.take(s, a)
                out.append(i)
        return out
    done = start[1] if start is not None else 0
    in_logs = m * math.log10((1.0 + delta) * (rules.length + done + 1)) > 300
    lk = lk if scratch and lk.dtype == np.float64 else lk.astype(np.float64)
    fit = np.full(m, delta)  # A at step 0
    if start is not None:  # continue a playlist: A = (s + 1)·δ + what members got so far
        fit = fit * (done + 1) + start[0]
    work = np.empty((m, c))
    value = np.empty(c)
    gain = lk.T + delta  # per candidate: what taking it adds to every member's A
    chosen: list[int] = []
    c_index = cand.tolist()  # song and artist are read for the few candidates tried only
    column = fit[:, None]  # a view: ``fit`` is updated in place
    live = c  # candidates neither taken nor refused: the others have -inf in row 0 of lk
    for _ in range(rules.length):
        np.add(lk, column, out=work)
        if in_logs:
            np.maximum(work, 0.0, out=work)
            with np.errstate(divide="ignore"):
                np.log(work, out=work)
            np.add.reduce(work, axis=0, out=value)
        else:
            np.multiply.reduce(work, axis=0, out=value)
        while True:  # best candidate; rarely more than one try (song or artist taken)
            if not live:  # every value is -inf
                return chosen
            j = int(value.argmax())
            lk[0, j] = -np.inf
            live -= 1
            i = c_index[j]
            s, a = int(song[i]), int(artist[i])
            if taken.allows(s, a):
                break
            value[j] = -np.inf  # refused: the next best of this step
        taken.take(s, a)
        chosen.append(i)
        fit += gain[j]
    return chosen


def scaled_reference(columns: list[np.ndarray | None], n: int) -> np.ndarray | None:
    """tracks x features, each feature divided by its spread in the playlist (0 when flat).
    ``col.std()``'s own steps (mean, squared deviations, their mean, root), on all features
    at once: a row-wise reduction adds each row exactly as the 1-D one does."""
    cols = [c for c in columns if c is not None and len(c) == n]
    if not cols:
        return None
    x = np.array(cols, dtype=np.float64)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x)
    d = x - (np.add.reduce(x, axis=1) / n)[:, None]
    d *= d
    sd = np.sqrt(np.add.reduce(d, axis=1) / n)
    flat = ~(sd > 0)
    if flat.any():  # no spread: that feature says nothing (and must not divide by zero)
        x[flat] = 0.0
        sd[flat] = 1.0
    x /= sd[:, None]
    return x.T
