"""The listening order of a chosen playlist: members interleaved, no artist twice in a
row, neighbouring tracks close in tempo and energy.

The strategies return tracks best first, so a member's favourites can bunch together and the
tempo jumps at random. The order is built greedily, one position at a time (playlists are at
most a hundred tracks, so plain Python over positions and remaining tracks is cheap):

- *who waits*: each member has a pressure ``(wait + 1) · remaining / positions_left``: the
  tracks since their last one, against the gap their remaining tracks allow on average. A
  track's urgency is the highest pressure among the members it is for (attribution.py);
- *smoothness*: the step from the previous track in tempo and energy, each divided by its
  spread within the playlist, weighted by ``SMOOTH_WEIGHT`` (urgency steers, smoothness breaks
  near-ties; the weight was chosen on measurements, README: listening order);
- *artist*: a track by the previous track's artist is taken only when nothing else is left;
  a final pass moves such a track to the nearest place between two other artists.

Ties go to the earlier track of the strategy's order, so the result is deterministic.
"""
from __future__ import annotations

import math
from operator import itemgetter

import numpy as np

SMOOTH_WEIGHT = 0.25
_BLOCKED = -math.inf  # never a real score: urgency and steps are finite


def listening_order(for_members: list[list[int]], artist: np.ndarray, tempo: np.ndarray | None,
                    energy: np.ndarray | None, n_members: int,
                    smooth_weight: float = SMOOTH_WEIGHT) -> list[int]:
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
    audio = _scaled([tempo, energy], n)
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
    return _separate_artists(order, artists)


def _scaled(columns: list[np.ndarray | None], n: int) -> np.ndarray | None:
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


def _separate_artists(order: list[int], artist) -> list[int]:
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


def neighbour_steps(order: list[int], values: np.ndarray) -> float:
    """Mean absolute difference between neighbouring tracks (tempo, energy) in ``order``."""
    v = np.asarray(values, dtype=np.float64)[np.asarray(order)]
    return float(np.abs(np.diff(v)).mean()) if len(v) > 1 else 0.0


def longest_wait(order: list[int], for_members: list[list[int]], n_members: int) -> int:
    """The longest run of consecutive tracks none of which is for a member, over the members
    that have at least one track (the runs before the first and after the last count)."""
    worst = 0
    for j in range(n_members):
        at = [p for p, t in enumerate(order) if j in for_members[t]]
        if not at:
            continue
        gaps = [at[0], len(order) - 1 - at[-1]] + [b - a - 1 for a, b in zip(at, at[1:])]
        worst = max(worst, max(gaps))
    return worst


def artist_repeats(order: list[int], artist: np.ndarray) -> int:
    """How many neighbours share an artist."""
    a = np.asarray(artist)[np.asarray(order)]
    return int((a[1:] == a[:-1]).sum())
