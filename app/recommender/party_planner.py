"""The live party's planner: it continues a queue for the guests in the room.

A party is one long sequence, so fairness is kept over the whole evening, not per list (the
sequential view of group recommendation): every track played while a guest is present earns
that guest a share of turns (half of the tracks are turns, split evenly among those present,
cold guests owed ``COLD_TURNS`` shares as in ``turns``), and each planned slot goes to the
present guest who is owed most. A guest who has had no turn yet (a newcomer) goes first, so
their first track comes within the next few. A guest who has left is not scored at all.

On their turn a guest picks among their own favourites (their top ``TURN_SHARE`` by the model)
the track that maximises the room's mean liking plus ``TURN_OWN_WEIGHT`` times their own, as
``turns`` does (with a weight of its own); the other slots go to proportional fairness on each
present guest's mean liking over the tracks they have heard (close to max-min,
``TURN_FILL_DELTA``). No track
twice, no artist back to back, at most ``max_per_artist`` of one artist in the planned part,
and among near-equal picks the one closest in tempo and energy to the previous track.

The planner is a strategy of the recommender's entry point (``Recommender.plan``, which
continues a playlist): the tracks so far are kept and never repeated, the guests' skips and likes
are folded into their tastes (``continuation.fold_in``), each guest carries the turns they have
received, and the result is attributed as every playlist is. What is the party's own stays here:
who is present, turns owed by presence over the evening, newcomers first, and the transitions.
"""
from __future__ import annotations

from copy import copy
from dataclasses import dataclass, field

import numpy as np

from app.recommender.continuation import SoFar
from app.recommender.members import COLD_TURNS, Member
from app.recommender.ordering import SMOOTH_WEIGHT
from app.recommender.strategies import (MAX_PER_ARTIST, NO_TURN, TURN_FILL_DELTA,
                                        TURN_FILL_SLOPE, Pick, Rules, Strategy, Taken,
                                        candidates, favourite_count, liking, _own_pools)

# Share of the party's tracks that are someone's turn (``fair_share``: half of a playlist).
TURN_RATE = 0.5
# On a turn the pick maximises the room's mean liking plus this times the guest's own. Lower
# than ``turns``' weight for one playlist: over a party of strangers, a lower weight cut the
# tracks most of the room dislikes at the same least happy guest (EVALUATION.md).
TURN_OWN_WEIGHT = 3.0
# A guest takes a turn once owed this much more than received (rounding half up).
TURN_DUE = 0.5
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
    m = len(here)

    # the party so far: turns owed (by presence) and received, and what each guest heard
    scale = np.array([1.0 if g.member.kind == "trained" else COLD_TURNS for g in here])
    owed, received = np.zeros(m), np.zeros(m, np.int64)
    heard_at: list[tuple[int, np.ndarray]] = []  # (fixed position, guests present for it)
    for t, p in enumerate(fixed):
        there = [pos[k] for k in p.present if k in pos]
        if not there:
            continue
        there_a = np.array(there)
        owed[there_a] += TURN_RATE * scale[there_a] / scale[there_a].sum()
        heard_at.append((t, there_a))
        if p.turn_of in pos:
            received[pos[p.turn_of]] += 1
    gone = [p.index for p in fixed] + list(excluded)  # their songs do not come back either
    filtered = [] if allowed is None else np.flatnonzero(~np.asarray(allowed, bool)).tolist()
    so_far = SoFar(played=[p.index for p in fixed],
                   turns=[pos.get(p.turn_of, NO_TURN) for p in fixed],
                   skipped={j: g.skipped for j, g in enumerate(here) if g.skipped},
                   liked={j: g.liked for j, g in enumerate(here) if g.liked},
                   excluded=list(excluded) + filtered)
    # the turns received, where presence makes them differ from the turns so far
    counted = np.bincount([pos[p.turn_of] for p in fixed if p.turn_of in pos], minlength=m)
    members = [g.member if received[j] == counted[j] else _with_received(g.member, received[j])
               for j, g in enumerate(here)]
    state: dict[str, np.ndarray] = {"owed": owed, "received": received}

    def choose(p: Pick) -> tuple[list[int], list[int]]:
        return _choose(rec, p, keys, fixed, gone, heard_at, scale, state)

    strategy = Strategy("party", "the live party's planner", choose, fills=False)
    result = rec.plan(members, Rules(count, max_per_artist), strategy, so_far, exact=True)
    done = len(result.indices) - len(state["out"])
    turns = result.turns[done:]
    return Plan(result.indices[done:], [keys[j] if j >= 0 else None for j in turns],
                [[keys[j] for j in f] for f in result.for_members[done:]],
                dict(zip(keys, state["received"].tolist())),
                dict(zip(keys, state["owed"].tolist())))


def _with_received(member: Member, received: int) -> Member:
    """The member as the entry point takes them in this party: with the turns received."""
    out = copy(member)  # a shallow copy: the row and the arrays stay shared
    out.received = int(received)
    return out


def _choose(rec, p: Pick, keys: list[int], fixed: list[Played], gone: list[int],
            heard_at: list[tuple[int, np.ndarray]], scale: np.ndarray, state: dict
            ) -> tuple[list[int], list[int]]:
    """The party's slots, one by one, on the room's scores ``p.z`` (the whole catalogue):
    whose turn, then their pick or the fairest fill, the smoothest among near-equals. Writes
    the tracks and the turns owed and received after them into ``state``."""
    z, count = p.z, p.rules.length
    m, n = z.shape
    owed = state["owed"].copy()
    received = (p.before.received.copy() if p.before is not None
                else np.zeros(m, np.int64))
    fit, heard = np.zeros(m), np.zeros(m)
    if heard_at:
        lk_fixed = liking(p.before.z, TURN_FILL_SLOPE).astype(np.float64)
        for t, there_a in heard_at:
            fit[there_a] += lk_fixed[there_a, t]
            heard[there_a] += 1
    state.update(out=[], owed=owed, received=received)

    ok = np.ones(n, bool) if p.allowed is None else p.allowed
    song, artist = p.song, p.artist
    blocked_songs = set(song[np.asarray(gone, np.int64)].tolist()) if gone else set()

    # candidates: the room's pools plus every present guest's own favourites
    k_fav = favourite_count(n, max(count, 20))
    mark = _own_pools(z, ok, k_fav)
    group = candidates(z, ok, POOL, with_max=False)
    mark[group] = True
    mark &= ok
    wide = np.flatnonzero(mark)
    if not len(wide):
        return [], []
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
    taken = Taken(p.rules.max_per_artist)
    cand_song, cand_artist = song[cand], artist[cand]
    usable = ~np.isin(cand_song, np.fromiter(blocked_songs, np.int64, len(blocked_songs)))
    can_turn = np.isfinite(turn_value)  # each guest's own favourites among the candidates
    newcomer = received == 0

    out, turns = state["out"], []
    for _slot in range(count):
        free = usable & (cand_artist != prev_artist) if prev_artist is not None else usable.copy()
        if not free.any():
            free = usable.copy()  # only that artist is left: back to back rather than nothing
        if not free.any():
            break
        # whose turn: newcomers first (in join order), then the guest owed most
        deficit = owed - received
        j = -1
        can_pick = (free & can_turn).any(axis=1)
        fresh = np.flatnonzero(newcomer & can_pick).tolist()
        if fresh:
            j = min(fresh)  # the guests are in join order
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
        turns.append(j)
        usable[pick] = False
        s, a = int(song[i]), int(artist[i])
        taken.take(s, a)
        same_song = np.flatnonzero(cand_song == s)
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
    return list(out), turns


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
