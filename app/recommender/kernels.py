"""Compiled loops of the strategies and the listening order (numba).

The greedy loops step over a few dozen positions and a few hundred candidates: in Python each
step costs more in interpreter overhead and small numpy calls than in arithmetic. These kernels
run the same steps on arrays, in the same order of floating-point operations (no fast-math),
so they return the same playlists bit for bit as the plain code they replace (kept in
``tests/support/reference_kernels.py``, which the tests compare against on random inputs).

Every kernel the wrappers call has an explicit signature, so it is compiled (or loaded from
numba's on-disk cache) when this module is imported, before the workers start, and a call with
other types is an error instead of a compilation on the request path. Helpers called only
from kernels are compiled into their callers. The wrappers in ``strategies.py`` and
``ordering.py`` convert their inputs to these types. The cache lives in ``NUMBA_CACHE_DIR``;
unless the environment sets it, in ``numba-cache`` under the instance folder (``INSTANCE_DIR``),
set here because numba reads it once, when it is first imported.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(
    Path(os.environ.get("INSTANCE_DIR", Path(__file__).resolve().parents[2] / "instance"))
    / "numba-cache"))

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

_I = "int64[::1]"


# Helpers called only from other kernels carry no signature: they are compiled as part of their
# callers, and a caller loaded from the cache needs no more of them (each eagerly compiled
# function costs about 0.1 s to load at start-up).
@njit(cache=True, nogil=True)
def _artist_count(a, n_new, new_artist, pre_artist, pre_count, new_song, pre_song, s):
    """Tracks by artist ``a`` already taken; -1 when song ``s`` is already taken."""
    for k in range(len(pre_song)):
        if pre_song[k] == s:
            return -1
    for k in range(n_new):
        if new_song[k] == s:
            return -1
    count = 0
    for k in range(len(pre_artist)):
        if pre_artist[k] == a:
            count += pre_count[k]
    for k in range(n_new):
        if new_artist[k] == a:
            count += 1
    return count


@njit(f"int64[::1]({_I}, {_I}, {_I}, {_I}, {_I}, int64, int64)", cache=True, nogil=True)
def greedy_fill(song, artist, pre_song, pre_artist, pre_count, cap, length):
    """Positions of the candidates (their ``song`` and ``artist``, best first) taken under the
    rules: no song twice (``pre_song`` already in), at most ``cap`` tracks per artist
    (``pre_count`` of ``pre_artist`` already in), at most ``length`` tracks."""
    out = np.empty(min(len(song), max(length, 0)), np.int64)
    new_song = np.empty(len(out), np.int64)
    new_artist = np.empty(len(out), np.int64)
    n = 0
    for p in range(len(song)):
        if n >= length:
            break
        s, a = song[p], artist[p]
        got = _artist_count(a, n, new_artist, pre_artist, pre_count, new_song, pre_song, s)
        if got < 0 or got >= cap:
            continue
        out[n] = p
        new_song[n] = s
        new_artist[n] = a
        n += 1
    return out[:n]


@njit(f"int64[::1](float64[:, ::1], float64[::1], float64, {_I}, {_I}, {_I}, {_I}, {_I},"
      f" int64, int64, boolean)", cache=True, nogil=True)
def fair(lk, fit, delta, c_song, c_artist, pre_song, pre_artist, pre_count, cap, length,
         in_logs):
    """Proportional fairness (``strategies._fair``): candidate positions, in the order taken.
    ``fit`` (per member, updated in place) is ``A`` at the first step. Each step's value is
    the product over members of ``lk + fit`` (or the sum of their logarithms), multiplied or
    added member by member as numpy's reduction over the first axis does; the first best
    candidate not yet tried is tried, and a refused one is never tried again."""
    m, c = lk.shape
    dead = np.zeros(c, np.bool_)
    value = np.empty(c)
    out = np.empty(min(c, max(length, 0)), np.int64)
    new_song = np.empty(len(out), np.int64)
    new_artist = np.empty(len(out), np.int64)
    live = c
    n = 0
    for _ in range(length):
        for j in range(c):
            if dead[j]:
                value[j] = -np.inf
            elif in_logs:
                v = np.log(max(lk[0, j] + fit[0], 0.0))
                for q in range(1, m):
                    v = v + np.log(max(lk[q, j] + fit[q], 0.0))
                value[j] = v
            else:
                v = lk[0, j] + fit[0]
                for q in range(1, m):
                    v = v * (lk[q, j] + fit[q])
                value[j] = v
        while True:
            if live == 0:
                return out[:n]
            best = -1
            for j in range(c):
                if best < 0 or value[j] > value[best]:
                    best = j
            dead[best] = True
            value[best] = -np.inf
            live -= 1
            s, a = c_song[best], c_artist[best]
            got = _artist_count(a, n, new_artist, pre_artist, pre_count, new_song, pre_song, s)
            if got >= 0 and got < cap:
                break
        out[n] = best
        new_song[n] = s
        new_artist[n] = a
        n += 1
        for q in range(m):
            fit[q] = fit[q] + (lk[q, best] + delta)
    return out[:n]


@njit(f"int64[::1]({_I}, {_I})", cache=True, nogil=True)
def separate_artists(order, artist):
    """Move any track that follows its own artist to the nearest place between two tracks by
    other artists (ties: the earlier place); left as it is when there is no such place."""
    order = order.copy()
    n = len(order)
    for _ in range(n):
        clash = -1
        for i in range(1, n):
            if artist[order[i]] == artist[order[i - 1]]:
                clash = i
                break
        if clash < 0:
            break
        track = order[clash]
        mine = artist[track]
        rest = np.empty(n - 1, np.int64)
        rest[:clash] = order[:clash]
        rest[clash:] = order[clash + 1:]
        spot, dist = -1, 0
        for k in range(n):
            if (k == 0 or artist[rest[k - 1]] != mine) and (k == n - 1 or artist[rest[k]] != mine):
                d = abs(k - clash)
                if spot < 0 or d < dist:
                    spot, dist = k, d
        if spot < 0:
            break
        order[:spot] = rest[:spot]
        order[spot] = track
        order[spot + 1:] = rest[spot:]
    return order


@njit(cache=True, nogil=True)
def _seen(members, start, k):
    """Whether ``members[k]`` occurs in ``members[start:k]``."""
    for i in range(start, k):
        if members[i] == members[k]:
            return True
    return False


@njit("float64(float64[::1], int64, int64)", cache=True, nogil=True)
def _pairwise_sum(a, lo, n):
    """``a[lo:lo + n]`` summed as numpy's reductions sum a contiguous row (pairwise: eight
    running sums over blocks of up to 128, halves above), so that the result is the same
    float64 as ``np.add.reduce``'s."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        while i < n - (n % 8):
            r0 += a[lo + i]
            r1 += a[lo + i + 1]
            r2 += a[lo + i + 2]
            r3 += a[lo + i + 3]
            r4 += a[lo + i + 4]
            r5 += a[lo + i + 5]
            r6 += a[lo + i + 6]
            r7 += a[lo + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


@njit(cache=True, nogil=True)
def scaled(x):
    """The listening order's features x tracks (a copy): non-finite values as
    ``np.nan_to_num`` sets them, each feature minus its mean and divided by its standard
    deviation (0 when it has no spread), with numpy's summation order."""
    k, n = x.shape
    x = x.copy()
    big = np.finfo(np.float64).max
    for f in range(k):
        for t in range(n):
            v = x[f, t]
            if np.isnan(v):
                x[f, t] = 0.0
            elif np.isinf(v):
                x[f, t] = big if v > 0 else -big
    d = np.empty(n)
    for f in range(k):
        mean = _pairwise_sum(x[f], 0, n) / n
        for t in range(n):
            d[t] = x[f, t] - mean
            d[t] *= d[t]
        sd = np.sqrt(_pairwise_sum(d, 0, n) / n)
        if not sd > 0:  # no spread: that feature says nothing
            x[f, :] = 0.0
            sd = 1.0
        for t in range(n):
            x[f, t] /= sd
    return x


@njit(f"int64[::1]({_I}, {_I}, {_I}, float64[:, ::1], float64, int64)", cache=True,
      nogil=True)
def listening_order(ptr, members, artist, audio, smooth_weight, width):
    """The greedy listening order (``ordering.listening_order``): track ``t`` is for
    ``members[ptr[t]:ptr[t + 1]]`` (in any order, repeats allowed); ``audio`` holds features x
    tracks (no rows: no smoothness), and the step between two tracks is ``smooth_weight``
    times the sum of their scaled features' absolute differences."""
    n = len(ptr) - 1
    nf = audio.shape[0]
    smooth = nf > 0
    x = scaled(audio)
    step = np.empty((n, n) if smooth else (0, 0))
    for i in range(n if smooth else 0):
        for t in range(n):
            acc = 0.0
            for f in range(nf):
                acc += abs(x[f, i] - x[f, t])
            step[i, t] = smooth_weight * acc
    left = np.zeros(width)
    for t in range(n):
        for k in range(ptr[t], ptr[t + 1]):
            if not _seen(members, ptr[t], k):  # a member named twice counts once
                left[members[k]] += 1.0
    last = np.full(width, -1.0)
    pressure = np.empty(width)
    urgency = np.empty(n)
    taken = np.zeros(n, np.bool_)
    order = np.empty(n, np.int64)
    for pos in range(n):
        scale = 1.0 / (n - pos)
        for j in range(width):
            pressure[j] = (pos - last[j]) * left[j] * scale
        for t in range(n):
            u = 0.0
            if ptr[t + 1] > ptr[t]:
                u = pressure[members[ptr[t]]]
                for k in range(ptr[t] + 1, ptr[t + 1]):
                    p = pressure[members[k]]
                    if p > u:
                        u = p
            urgency[t] = u
        pick = -1
        best = 0.0
        if pos > 0:
            prev = order[pos - 1]
            for t in range(n):  # a track by the previous track's artist only when nothing else
                if taken[t] or artist[t] == artist[prev]:
                    continue
                score = urgency[t] - step[prev, t] if smooth else urgency[t]
                if pick < 0 or score > best:
                    pick, best = t, score
            if pick < 0:
                for t in range(n):
                    if taken[t]:
                        continue
                    score = urgency[t] - step[prev, t] if smooth else urgency[t]
                    if pick < 0 or score > best:
                        pick, best = t, score
        else:
            for t in range(n):
                if pick < 0 or urgency[t] > best:
                    pick, best = t, urgency[t]
        order[pos] = pick
        taken[pick] = True
        for k in range(ptr[pick], ptr[pick + 1]):
            if not _seen(members, ptr[pick], k):
                last[members[k]] = pos
                left[members[k]] -= 1.0
    return separate_artists(order, artist)


def warm_up() -> None:
    """Run every kernel once on a tiny input: the first call of a dispatcher resolves its
    overload, so a worker does that before its first request."""
    i = np.array([0, 1], np.int64)
    e = np.zeros(0, np.int64)
    greedy_fill(i, i, e, e, e, 1, 2)
    fair(np.ones((2, 2)), np.ones(2), 0.1, i, i, e, e, e, 1, 2, False)
    listening_order(np.array([0, 1, 2], np.int64), np.array([0, 1], np.int64), i,
                    np.ones((2, 2)), 0.25, 2)
