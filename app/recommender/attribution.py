"""Who each playlist track is *for*: the member whose turn chose it, and every member for whom
it is a favourite ("everyone at the party is represented", shown as member chips).

A favourite is a track in the member's personal top ``FAVOURITE_SHARE`` of the catalogue by the
model's standardised score z. An exact quantile per member needs a partition of the whole
catalogue row per member on every request; instead the quantile is read from a fixed strided
sample of the catalogue's columns (``sample_stride``: at most ``SAMPLE_SIZE`` tracks, the same
ones on every request, so answers are deterministic). With 2,048 sampled tracks the share of
the catalogue above the threshold has a binomial standard error of about 0.3 percentage points
around 2 %, and the cost is one partition of ``members x 2,048`` numbers (a plain strided view
of z, no gather, when no filter applies); bench/RESULTS.md has the measured cost.
"""
from __future__ import annotations

import math

import numpy as np

from app.recommender import kernels

FAVOURITE_SHARE = 0.02
SAMPLE_SIZE = 2048


def sample_stride(n_tracks: int, size: int = SAMPLE_SIZE) -> int:
    """Every ``ceil(n / size)``-th track: an even, deterministic sample of the catalogue."""
    return max(1, -(-n_tracks // size))


def sample_columns(n_tracks: int, size: int = SAMPLE_SIZE) -> np.ndarray:
    return np.arange(0, n_tracks, sample_stride(n_tracks, size), dtype=np.int64)


def thresholds(z_sample: np.ndarray, share: float = FAVOURITE_SHARE) -> np.ndarray:
    """Per member (row), the z above which a track is in the member's top ``share``: the
    ``k``-th best sampled score, ``k = ceil(share · sample)`` (at least 1)."""
    m, s = z_sample.shape
    if s == 0:
        return np.full(m, np.inf, np.float32)
    k = favourite_rank(s, share)
    if z_sample.dtype != np.float32:
        return np.partition(z_sample, s - k, axis=1)[:, s - k]
    return kernels.kth_largest_rows(z_sample, k)  # the same value, without sorting the rest


def favourites(z_chosen: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """members x playlist: True where the track is in that member's top share."""
    return z_chosen >= limits[:, None]


def for_members(turns: list[int], favourite: np.ndarray | None) -> list[list[int]]:
    """Per track, the sorted member positions it is for: its turn member (when any) and every
    member it is a favourite of (``favourite``: members x playlist, or None)."""
    n = len(turns)
    turn = np.fromiter((-1 if t is None else t for t in turns), np.int64, n)
    fav = (np.zeros((0, n), bool) if favourite is None
           else np.ascontiguousarray(favourite, dtype=bool))
    if fav.shape[1] > n:
        raise ValueError("favourite has more tracks than turns")
    if fav.shape[1] < n:  # tracks past its columns are nobody's favourite
        fav = np.hstack([fav, np.zeros((len(fav), n - fav.shape[1]), bool)])
    return as_lists(*kernels.for_members(turn, fav))


def attribute(z_chosen: np.ndarray, z_sample: np.ndarray, turns: list[int],
              share: float = FAVOURITE_SHARE) -> list[list[int]]:
    """``for_members(turns, favourites(z_chosen, thresholds(z_sample, share)))`` for a
    playlist's scores (members x playlist) and ``turns`` (ints, -1 for none): in one kernel
    where the scores are float32, as every build's are."""
    m, s = z_sample.shape
    if (s == 0 or z_sample.dtype != np.float32 or z_chosen.dtype != np.float32
            or z_chosen.shape != (m, len(turns))):
        return for_members(turns, favourites(z_chosen, thresholds(z_sample, share)))
    ptr, who = kernels.attribute(z_chosen, z_sample, favourite_rank(s, share),
                                 np.array(turns, dtype=np.int64))
    return as_lists(ptr, who)


def favourite_rank(s: int, share: float = FAVOURITE_SHARE) -> int:
    """Which best of ``s`` sampled scores is a member's favourite threshold (``thresholds``)."""
    return min(s, max(1, math.ceil(share * s)))


def as_lists(ptr: np.ndarray, who: np.ndarray) -> list[list[int]]:
    """The kernels' ``who[ptr[t]:ptr[t + 1]]`` per track as ``for_members`` returns them."""
    who, ptr = who.tolist(), ptr.tolist()
    return [who[ptr[t]:ptr[t + 1]] for t in range(len(ptr) - 1)]
