"""The listening order of a chosen playlist: members interleaved, no artist twice in a
row, neighbouring tracks close in tempo and energy.

The strategies return tracks best first, so a member's favourites can bunch together and the
tempo jumps at random. The order is built greedily, one position at a time, in compiled code
(``kernels.py``; playlists are at most a hundred tracks):

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

from itertools import accumulate, chain

import numpy as np

from app.recommender import kernels

SMOOTH_WEIGHT = 0.25
_NO_AUDIO = np.zeros((0, 0))  # the kernel's features when the tracks have none


def listening_order(for_members: list[list[int]], artist: np.ndarray, tempo: np.ndarray | None,
                    energy: np.ndarray | None, n_members: int,
                    smooth_weight: float = SMOOTH_WEIGHT) -> list[int]:
    """A permutation of ``range(len(for_members))``: the order to play the tracks in.

    The greedy steps run in ``kernels.listening_order``, on the members of each track, the
    artists as integer codes and the audio features (``kernels.scaled`` divides each by its
    spread in the playlist). A track's urgency is the
    highest pressure among its members, 0 when it is for nobody (pressures are never
    negative)."""
    n = len(for_members)
    if n <= 1:
        return list(range(n))
    # built from Python lists: a playlist is a few dozen tracks, where each numpy call costs
    # more than the conversion it makes
    flat = list(chain.from_iterable(for_members))
    ptr = np.array([0, *accumulate(map(len, for_members))], dtype=np.int64)
    members = np.array(flat, dtype=np.int64)
    width = max(n_members, 1)
    if flat and not (0 <= min(flat) and max(flat) < width):
        raise ValueError(f"member positions must be in 0..{width - 1}")
    cols = [c for c in (tempo, energy) if c is not None and len(c) == n]
    audio = np.array(cols, dtype=np.float64) if cols else _NO_AUDIO
    return kernels.listening_order(ptr, members, _codes(artist), audio, float(smooth_weight),
                                   width).tolist()


def _codes(values) -> np.ndarray:
    """Artist ids as int64 codes: equal ids, equal codes."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return np.ascontiguousarray(values, dtype=np.int64)
    return np.unique(values, return_inverse=True)[1].astype(np.int64).ravel()


def _separate_artists(order: list[int], artist) -> list[int]:
    """Move any track that follows its own artist to the nearest place between two tracks by
    other artists; left as it is when no such place exists (a catalogue of very few artists)."""
    return kernels.separate_artists(np.asarray(order, dtype=np.int64),
                                    _codes(artist)).tolist()


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
