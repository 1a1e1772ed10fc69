"""The live party's planner: it continues a queue for the guests in the room.

A party is one long sequence, so fairness is kept over the whole evening, not per list (the
sequential view of group recommendation): every track played while a guest is present earns
that guest a share of turns (half of the tracks are turns, split evenly among those present,
cold guests owed ``COLD_TURNS`` shares as in ``turns``), and each planned slot goes to the
present guest who is owed most. A guest who has had no turn yet (a newcomer) goes first, so
their first track comes within the next few. A guest who has left is not scored at all.

On their turn a guest picks among their own favourites (their top ``TURN_SHARE`` by the model)
the track that maximises the room's mean liking plus ``TURN_OWN_WEIGHT`` times their own, as
``turns`` does (with a weight of its own); the other slots go to proportional fairness on each present guest's mean
liking over the tracks they have heard (close to max-min, ``TURN_FILL_DELTA``). No track
twice, no artist back to back, at most ``max_per_artist`` of one artist in the planned part,
and among near-equal picks the one closest in tempo and energy to the previous track.

Skips and likes change a guest's taste for the rest of the party by folding them into the
guest's row (``fold_in``): a ridge step of the row against the item vectors of the tracks
reported, which moves every track *like* those tracks, not only the ones reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.recommender import attribution
from app.recommender.members import COLD_TURNS, SKIP_PENALTY, Member
from app.recommender.ordering import SMOOTH_WEIGHT
from app.recommender.strategies import (MAX_PER_ARTIST, TURN_FILL_DELTA, TURN_FILL_SLOPE,
                                        Taken, candidates, favourite_count, liking, _own_pools)

# Share of the party's tracks that are someone's turn (``fair_share``: half of a playlist).
TURN_RATE = 0.5
# On a turn the pick maximises the room's mean liking plus this times the guest's own. Lower
# than ``turns``' weight for one playlist: over a party of strangers, 3 instead of 10 cut the
# tracks most of the room dislikes by about 40 % at the same least happy guest (EVALUATION.md).
TURN_OWN_WEIGHT = 3.0
# A guest takes a turn once owed this much more than received (rounding half up).
TURN_DUE = 0.5
# Fold-in: where a skipped / liked track should land on the guest's standardised scale, and
# how strongly the guest's row resists moving (in units of the mean squared item vector norm).
SKIP_TARGET_Z = -1.0
LIKE_TARGET_Z = 2.5
FOLD_IN_RIDGE = 1.0
# Candidate pool size per re-plan (the group's pools; own favourites come on top).
POOL = 300
# Fill picks within this much of the best value (per present guest, on the log scale) count as
# near-equal; the smoothest of them is taken.
FILL_SLACK = 0.002
_EXCLUDED = -1e9


@dataclass
class PartyGuest:
    """One guest as the planner sees them; ``key`` is the party's guest id."""

    key: int
    member: Member
    present: bool = True
    liked: list[int] = field(default_factory=list)    # catalogue indices liked in this party
    skipped: list[int] = field(default_factory=list)  # catalogue indices skipped in this party


@dataclass(frozen=True)
class Played:
    """A track of the party that is fixed (played, playing, or kept in the queue): whose turn
    chose it (a guest key or None) and which guests were present for it."""

    index: int
    turn_of: int | None
    present: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    indices: list[int]
    turns: list[int | None]           # guest key whose turn chose each track
    for_guests: list[list[int]]       # guest keys each track is for
    received: dict[int, int]          # turns received per present guest, after the plan
    owed: dict[int, float]            # turns owed per present guest, after the plan


def fold_in(items_t: np.ndarray, row: np.ndarray, liked: list[int], skipped: list[int],
            mean_item: np.ndarray, cov_item: np.ndarray) -> np.ndarray:
    """The guest's row after their skips and likes: the smallest change (ridge) to the row's
    vector part that puts each reported track's score at its target on the guest's own
    standardised scale (``SKIP_TARGET_Z`` / ``LIKE_TARGET_Z``), or beyond it already.

    Closed form ``u' = u + Vᵀ (λI + V Vᵀ)⁻¹ (y − V u)`` over the reported tracks' vectors V:
    one solve of size (reports x reports). Tracks close to a skipped one in the model's space
    lose with it; the biases are left alone."""
    idx = np.asarray(list(liked) + list(skipped), np.int64)
    if not len(idx):
        return row
    r = row.astype(np.float64)
    k = len(r) - 2
    mu = float(r @ mean_item)
    sd = float(np.sqrt(max(r @ cov_item @ r, 1e-12)))
    cols = items_t[:, idx].astype(np.float64)       # (k + 2) x reports
    v = cols[:k].T                                  # reports x k
    score = r @ cols
    target = np.concatenate([np.full(len(liked), mu + LIKE_TARGET_Z * sd),
                             np.full(len(skipped), mu + SKIP_TARGET_Z * sd)])
    # only move where the score is on the wrong side of its target
    is_like = np.arange(len(idx)) < len(liked)
    gap = np.where(is_like, np.maximum(target - score, 0.0), np.minimum(target - score, 0.0))
    if not np.any(gap):
        return row
    # the items' mean squared vector norm, from their mean and covariance (no catalogue pass)
    lam = FOLD_IN_RIDGE * float(np.trace(cov_item[:k, :k]) + mean_item[:k] @ mean_item[:k])
    step = v.T @ np.linalg.solve(lam * np.eye(len(idx)) + v @ v.T, gap)
    out = r.copy()
    out[:k] += step
    return out.astype(np.float32)


def plan(rec, guests: list[PartyGuest], fixed: list[Played], count: int, *,
         excluded: list[int] = (), max_per_artist: int = MAX_PER_ARTIST,
         allowed: np.ndarray | None = None) -> Plan:
    """``count`` tracks to follow ``fixed`` (everything played, playing or kept, in order).

    ``rec`` is a ``scoring.Recommender``; ``excluded``: tracks that must not come back (removed
    by the host) beyond those in ``fixed``; ``allowed``: the catalogue filter (explicit)."""
    here = [g for g in guests if g.present]
    if not here or count <= 0:
        return Plan([], [], [], {}, {})
    keys = [g.key for g in here]
    pos = {k: j for j, k in enumerate(keys)}
    m, n = len(here), rec.items_t.shape[1]
    rows = np.array([fold_in(rec.items_t, g.member.row, g.liked, g.skipped, rec.mean_item,
                             rec.cov_item) if g.liked or g.skipped else g.member.row
                     for g in here], np.float32)
    z = rec.z_scores(rows)
    for j, g in enumerate(here):
        if len(g.member.skip_items):
            z[j, g.member.skip_items] -= SKIP_PENALTY
    if rec.cold_blend is not None and any(g.member.content is not None for g in here):
        z = rec.cold_blend.apply(z, [g.member.content for g in here])

    # the party so far: turns owed and received, and each guest's liking of what they heard
    scale = np.array([1.0 if g.member.kind == "trained" else COLD_TURNS for g in here])
    owed, received = np.zeros(m), np.zeros(m, np.int64)
    fit, heard = np.zeros(m), np.zeros(m)
    if fixed:
        fixed_idx = np.array([p.index for p in fixed], np.int64)
        lk_fixed = liking(z[:, fixed_idx], TURN_FILL_SLOPE).astype(np.float64)
        for t, p in enumerate(fixed):
            there = [pos[k] for k in p.present if k in pos]
            if not there:
                continue
            there_a = np.array(there)
            owed[there_a] += TURN_RATE * scale[there_a] / scale[there_a].sum()
            fit[there_a] += lk_fixed[there_a, t]
            heard[there_a] += 1
            if p.turn_of in pos:
                received[pos[p.turn_of]] += 1

    ok = np.ones(n, bool) if allowed is None else allowed.copy()
    blocked = [p.index for p in fixed] + list(excluded)
    if blocked:
        ok[np.asarray(blocked, np.int64)] = False
    song, artist = rec.song, rec.artist
    blocked_songs = set(song[np.asarray(blocked, np.int64)].tolist()) if blocked else set()

    # candidates: the room's pools plus every present guest's own favourites
    k_fav = favourite_count(n, max(count, 20))
    mark = _own_pools(z, ok, k_fav)
    group = candidates(z, ok, POOL, with_max=False)
    mark[group] = True
    mark &= ok
    wide = np.flatnonzero(mark)
    if not len(wide):
        return Plan([], [], [], dict(zip(keys, received.tolist())), dict(zip(keys, owed.tolist())))
    zw = z[:, wide]
    own = _own_top(zw, k_fav)
    # keep the room's candidates and every guest's exact favourites, not the rest of the pools
    in_group = np.zeros(len(wide), bool)
    in_group[np.searchsorted(wide, group[ok[group]])] = True
    keep = np.flatnonzero(in_group | own.any(axis=0))
    cand, zc, own = wide[keep], zw[:, keep], own[:, keep]
    lk = liking(zc, TURN_FILL_SLOPE).astype(np.float64)
    turn_value = lk.mean(axis=0)[None, :] + TURN_OWN_WEIGHT * lk
    turn_value = np.where(own, turn_value, -np.inf)
    prev = fixed[-1].index if fixed else None
    prev_artist = int(artist[prev]) if prev is not None else None
    audio = _audio(rec, cand if prev is None else np.append(cand, prev))
    prev_audio = None
    if audio is not None and prev is not None:
        audio, prev_audio = audio[:-1], audio[-1]
    taken = Taken(max_per_artist)
    usable = ~np.isin(song[cand], np.fromiter(blocked_songs, np.int64, len(blocked_songs)))
    cand_artist = artist[cand]
    newcomer = received == 0
    join_order = {k: i for i, k in enumerate(keys)}

    out, turns = [], []
    for _slot in range(count):
        free = usable & (cand_artist != prev_artist) if prev_artist is not None else usable.copy()
        if not free.any():
            free = usable.copy()  # only that artist is left: back to back rather than nothing
        if not free.any():
            break
        # whose turn: newcomers first (in join order), then the guest owed most
        deficit = owed - received
        j = -1
        can_pick = (free & np.isfinite(turn_value)).any(axis=1)
        fresh = np.flatnonzero(newcomer & can_pick).tolist()
        if fresh:
            j = min(fresh, key=lambda q: join_order[keys[q]])
        else:
            eligible = np.flatnonzero(deficit >= TURN_DUE)
            if len(eligible):
                mean_fit = fit / np.maximum(heard, 1)
                j = int(min(eligible.tolist(), key=lambda q: (-deficit[q], mean_fit[q])))
                if not can_pick[j]:
                    j = -1
        if j >= 0:
            value = np.where(free, turn_value[j], -np.inf)
            slack = 0.0
        else:
            avg = (fit[:, None] + lk) / (heard + 1)[:, None]
            value = np.log(TURN_FILL_DELTA + avg).sum(axis=0)
            value = np.where(free, value, -np.inf)
            slack = FILL_SLACK * m
        pick = _smoothest(value, slack, audio, prev_audio)
        i = int(cand[pick])
        out.append(i)
        turns.append(keys[j] if j >= 0 else None)
        usable[pick] = False
        s, a = int(song[i]), int(artist[i])
        taken.take(s, a)
        same_song = np.flatnonzero(song[cand] == s)
        usable[same_song] = False
        if not taken.allows(-1, a):  # the artist is at its cap in this plan
            usable[cand_artist == a] = False
        if j >= 0:
            received[j] += 1
            newcomer[j] = False
        fit += lk[:, pick]
        heard += 1
        owed += TURN_RATE * scale / scale.sum()
        prev_artist = a
        prev_audio = audio[pick] if audio is not None else None

    idx = np.asarray(out, np.int64)
    z_sample = z[:, rec.favourite_sample]
    favourite = attribution.favourites(z[:, idx], attribution.thresholds(z_sample))
    turn_pos = [pos[t] if t is not None else -1 for t in turns]
    fors = attribution.for_members(turn_pos, favourite)
    return Plan(out, turns, [[keys[j] for j in f] for f in fors],
                dict(zip(keys, received.tolist())), dict(zip(keys, owed.tolist())))


def _own_top(zw: np.ndarray, k: int) -> np.ndarray:
    """members x columns: each member's exact top ``k`` among the columns. A threshold from a
    strided sample of the row first narrows each member to a few times ``k`` columns, so the
    exact selection runs on those only (one partition of the whole matrix cost most of a
    re-plan); a row whose sample misjudged it falls back to the full row."""
    m, c = zw.shape
    own = np.zeros((m, c), bool)
    if c <= k:
        own[:] = True
        return own
    stride = max(1, c // 256)
    sample = zw[:, ::stride]
    s = sample.shape[1]
    r = s - max(1, min(s, (4 * k * s) // c))
    above = zw >= np.partition(sample, r, axis=1)[:, r:r + 1]
    for j in range(m):
        cols = np.flatnonzero(above[j])
        if len(cols) < k:
            cols = np.arange(c)
        row = zw[j, cols]
        own[j, cols[np.argpartition(row, len(cols) - k)[len(cols) - k:]]] = True
    return own


def _audio(rec, idx: np.ndarray) -> np.ndarray | None:
    """Tempo and energy of ``idx``, each divided by its spread among them (as the listening
    order divides by the spread within the playlist)."""
    cat = rec.catalogue
    cols = [cat.audio_feature(name, idx) for name in ("tempo", "energy")]
    if any(c is None for c in cols):
        return None
    x = np.nan_to_num(np.stack(cols, axis=1).astype(np.float64))
    spread = x.std(axis=0)
    return x / np.where(spread > 0, spread, 1.0)


def _smoothest(value: np.ndarray, slack: float, audio: np.ndarray | None,
               prev_audio: np.ndarray | None) -> int:
    """The best value; among those within ``slack`` of it, the smallest step in tempo and
    energy from the previous track (``SMOOTH_WEIGHT`` as in the listening order)."""
    top = int(np.argmax(value))
    if audio is None or prev_audio is None or slack <= 0:
        return top
    near = np.flatnonzero(value >= value[top] - slack)
    if len(near) <= 1:
        return top
    step = SMOOTH_WEIGHT * np.abs(audio[near] - prev_audio).sum(axis=1)
    return int(near[np.argmin(step - (value[near] - value[top]))])
