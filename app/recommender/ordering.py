"""The listening order of a chosen playlist (issue 11): members interleaved, no artist twice in a
row, neighbouring tracks close in tempo and energy.

The strategies return tracks best first, so a member's favourites can bunch together and the
tempo jumps at random. The order is built greedily, one position at a time (playlists are at
most a hundred tracks, so a Python loop over positions with numpy over the remaining tracks is
cheap):

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

import numpy as np

SMOOTH_WEIGHT = 0.25


def listening_order(for_members: list[list[int]], artist: np.ndarray, tempo: np.ndarray | None,
                    energy: np.ndarray | None, n_members: int,
                    smooth_weight: float = SMOOTH_WEIGHT) -> list[int]:
    """A permutation of ``range(len(for_members))``: the order to play the tracks in."""
    n = len(for_members)
    if n <= 1:
        return list(range(n))
    artist = np.asarray(artist)
    serves = np.zeros((n, max(n_members, 1)), dtype=bool)
    for t, ms in enumerate(for_members):
        serves[t, ms] = True
    audio = _scaled([tempo, energy], n)
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
    return _separate_artists(order, artist)


def _scaled(columns: list[np.ndarray | None], n: int) -> np.ndarray | None:
    """tracks x features, each feature divided by its spread in the playlist (0 when flat)."""
    out = []
    for col in columns:
        if col is None or len(col) != n:
            continue
        col = np.nan_to_num(np.asarray(col, dtype=np.float64))
        sd = col.std()
        out.append(col / sd if sd > 0 else np.zeros(n))
    return np.column_stack(out) if out else None


def _separate_artists(order: list[int], artist: np.ndarray) -> list[int]:
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
