"""The plain Python/numpy implementations of the loops that ``app/recommender/kernels.py``
compiles, as they were before numba: the tests compare the kernels with them on random inputs
(same playlists and orders, bit for bit)."""
from __future__ import annotations

import bisect
import math
from operator import itemgetter

import numpy as np

from app.recommender import ordering, strategies
from app.recommender.strategies import (_AGREED_BONUS, _EXCLUDED, KNOWN_MODEL_TOP, KNOWN_TOP,
                                        KNOWN_TURN_LIMIT, NO_TURN, TURN_FILL_DELTA,
                                        TURN_FILL_SLOPE, TURN_OWN_WEIGHT, Rules, Taken,
                                        column_mean, fair_share, favourite_count, liking)

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
    """``strategies._fair`` as numpy code, before its steps were compiled (the rule is
    documented there). ``scratch``: ``lk`` is a float64 array the caller no longer needs, so
    it is worked on in place instead of copied."""
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


def own_pools_reference(z: np.ndarray, allowed: np.ndarray | None, k: int) -> np.ndarray:
    """``strategies._own_pools`` as numpy code, before it was compiled (the rule
    is documented there)."""
    m, n = z.shape
    stride = max(1, n // 512)
    sample = z[:, ::stride]
    s = sample.shape[1]
    r = s - max(1, min(s, (6 * k * s) // n))
    above = (z >= np.partition(sample, r, axis=1)[:, r:r + 1]).any(axis=0)
    if allowed is not None:
        above &= allowed
    return above


def turn_pools_reference(z: np.ndarray, allowed: np.ndarray | None, size: int, k: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``strategies._turn_pools`` as numpy code, before it was compiled (the
    rule is documented there; None: a pool would take ``best``'s fallback)."""
    n = z.shape[1]
    half = max(size // 2, 1)
    pools = []
    for score, kk in ((z.sum(axis=0), 2 * size), (z.min(axis=0), half)):
        stride = kk // 8
        if kk >= n or not (stride >= 2 and 8 * kk < n):
            return None
        if allowed is not None:
            score = np.where(allowed, score, _EXCLUDED)
        sample = score[::stride]
        r = len(sample) - 32
        pools.append((score, kk, score >= np.partition(sample, r)[r]))
    own = own_pools_reference(z, allowed, k)
    listed = np.flatnonzero(own | pools[0][2] | pools[1][2])
    is_cand = np.zeros(len(listed), dtype=bool)
    for score, kk, passed in pools:
        at = np.flatnonzero(passed[listed])  # positions in ``listed`` of ``best``'s pool
        if len(at) < kk:
            return None
        pool = listed[at]
        is_cand[at[np.argpartition(score[pool], len(pool) - kk)[len(pool) - kk:]]] = True
    if allowed is not None:
        is_cand &= allowed[listed]
    is_wide = is_cand | own[listed]
    return listed[is_cand], listed[is_wide], is_cand[is_wide]


def turn_candidates_reference(z: np.ndarray, allowed: np.ndarray | None, size: int, k: int,
                              known: list[np.ndarray | None] | None = None):
    """``strategies._turn_candidates`` as numpy code: ``turn_pools_reference``, then the
    favourites of ``turns_reference`` on its wide columns (None: a pool would take
    ``best``'s fallback)."""
    pools = turn_pools_reference(z, allowed, size, k)
    if pools is None:
        return None
    wide, in_cand = pools[1], pools[2]
    ranked = np.take(z, wide, axis=1)
    c = ranked.shape[1]
    kf = min(k, c)
    fav = ranked >= np.partition(ranked, c - kf, axis=1)[:, c - kf:c - kf + 1]
    agreed = np.zeros((0, c), dtype=bool)
    if known is not None and any(kn is not None and len(kn) for kn in known):
        agreed = _agreed(ranked, wide, known, min(c, KNOWN_MODEL_TOP))
        fav = fav | agreed
    keep = np.flatnonzero(in_cand | fav.any(axis=0))
    return wide[keep], ranked[:, keep], fav[:, keep], agreed[:, keep]


def _agreed(ranked: np.ndarray, wide: np.ndarray, known: list[np.ndarray | None], kk: int
            ) -> np.ndarray:
    """Per member, the columns in their model top ``kk`` that are among their known tracks."""
    c = ranked.shape[1]
    top = ranked >= np.partition(ranked, c - kk, axis=1)[:, c - kk:c - kk + 1]
    agreed = np.zeros(ranked.shape, dtype=bool)
    for q, kn in enumerate(known):
        if kn is not None and len(kn):
            agreed[q] = top[q] & np.isin(wide, np.asarray(kn)[:KNOWN_TOP])
    return agreed


def turns_reference(z: np.ndarray, allowed: np.ndarray | None, cand: np.ndarray, song: np.ndarray,
           artist: np.ndarray, rules: Rules, owed: np.ndarray | None = None,
           pools: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, extra: int = 0,
           known: list[np.ndarray | None] | None = None, known_limit: int = KNOWN_TURN_LIMIT
           ) -> tuple[list[int], list[int]]:
    """``strategies._turns`` as numpy code, before its loops were compiled: the rule is
    documented there."""
    m, n = z.shape
    if m == 1:  # one member: every turn is theirs, best liking first, as in ``_fair``
        chosen = fair_reference(liking(np.take(z, cand, axis=1)), cand, song, artist, rules)
        return chosen, [0] * len(chosen)
    k = favourite_count(n, rules.length)
    if pools is not None:  # ``_turn_pools``: the candidates and own pools already listed
        wide, in_cand = pools[1], pools[2]
    else:
        mark = own_pools_reference(z, allowed, k)
        mark[cand] = True
        wide = np.flatnonzero(mark)
        in_cand = np.zeros(len(wide), dtype=bool)
        in_cand[np.searchsorted(wide, cand)] = True
    ranked = np.take(z, wide, axis=1)  # every column is allowed: the pools and ``cand`` are
    c = ranked.shape[1]
    fav = ranked >= np.partition(ranked, c - k, axis=1)[:, c - k:c - k + 1]
    agreed = None
    if known is not None and any(kn is not None and len(kn) for kn in known):
        agreed = _agreed(ranked, wide, known, min(c, max(k, KNOWN_MODEL_TOP)))
        fav = fav | agreed
    # keep the group's candidates and every member's favourites, not the rest of the pools
    any_fav = fav.any(axis=0)
    keep = np.flatnonzero(in_cand | any_fav)  # positions: one nonzero for the four gathers
    cand, zc, fav, any_fav = wide[keep], ranked[:, keep], fav[:, keep], any_fav[keep]
    if agreed is not None:
        agreed = agreed[:, keep]
    lk = liking(zc, TURN_FILL_SLOPE).astype(np.float64)
    owed = [1.0] * m if owed is None else np.asarray(owed, np.float64).tolist()
    share = [fair_share(rules.length, m) * o + extra for o in owed]
    # A member's preference among their favourites does not change as the playlist grows
    # (the group's liking is fixed), so each member's picks are ranked once, up front.
    f_cols = np.flatnonzero(any_fav)
    f_fav, f_lk = fav[:, f_cols], lk[:, f_cols]
    # each member's own favourites only, member by member, their best first (ties: the
    # earlier column), valued as the group's mean liking plus TURN_OWN_WEIGHT times their own
    who, col = np.nonzero(f_fav)
    value = column_mean(f_lk)[col] + TURN_OWN_WEIGHT * f_lk[who, col]
    agreed_of: list[set[int]] | None = None
    if agreed is not None:  # the agreed favourites first, the limit applied as turns go
        f_agreed = agreed[:, f_cols]
        value = value + _AGREED_BONUS * f_agreed[who, col]
        agreed_of = [set(np.flatnonzero(f_agreed[q]).tolist()) for q in range(m)]
        repeats = [0] * m
    ranked_picks = col[np.lexsort((-value, who))].tolist()
    members_of = who.tolist()  # sorted: member by member
    ends = [bisect.bisect_right(members_of, j) for j in range(m)]
    picks = [ranked_picks[a:b][::-1] for a, b in zip([0] + ends, ends)]  # next pick last
    f_index = cand[f_cols].tolist()
    # every member's liking per favourite: all at once when few, else per pick
    gains = f_lk.T.tolist() if f_lk.size <= 512 else None
    count, total = [0] * m, [0.0] * m
    used: set[int] = set()
    taken = Taken(rules.max_per_artist)
    chosen: list[int] = []  # positions in ``cand``
    out: list[int] = []     # the same tracks as catalogue indices
    turns: list[int] = []
    members = range(m)
    while len(chosen) < rules.length:
        j, best_key = -1, None
        for q in members:  # the needy member with the fewest turns, then the lowest fit
            if count[q] < share[q] and picks[q] and (
                    best_key is None or (count[q], total[q]) < best_key):
                j, best_key = q, (count[q], total[q])
        if j < 0:
            break
        c = picks[j].pop()
        if c in used:
            continue
        if agreed_of is not None and c in agreed_of[j] and repeats[j] >= known_limit:
            continue  # not used: another member may still take it as a favourite
        used.add(c)
        i = f_index[c]
        s, a = int(song[i]), int(artist[i])
        if not taken.allows(s, a):
            continue
        taken.take(s, a)
        chosen.append(int(f_cols[c]))
        out.append(i)
        turns.append(j)
        count[j] += 1
        if agreed_of is not None and c in agreed_of[j]:
            repeats[j] += 1
        gain = gains[c] if gains is not None else f_lk[:, c].tolist()
        for q in members:
            total[q] += gain[q]
    if len(out) < rules.length:
        rest = np.ones(len(cand), dtype=bool)
        rest[chosen] = False
        rest = np.flatnonzero(rest)
        out += fair_reference(lk[:, rest], cand[rest], song, artist,
                     Rules(rules.length - len(out), rules.max_per_artist,
                           rules.exclude_explicit),
                     start=(np.array(total), len(out)), taken=taken,
                     delta=TURN_FILL_DELTA, scratch=True)
    return out, turns + [NO_TURN] * (len(out) - len(turns))


def thresholds_reference(z_sample: np.ndarray, share: float = 0.02) -> np.ndarray:
    """Per member (row), the z above which a track is in the member's top ``share``: the
    ``k``-th best sampled score, ``k = ceil(share · sample)`` (at least 1)."""
    m, s = z_sample.shape
    if s == 0:
        return np.full(m, np.inf, np.float32)
    k = min(s, max(1, int(np.ceil(share * s))))
    return np.partition(z_sample, s - k, axis=1)[:, s - k]


def for_members_reference(turns: list[int], favourite: np.ndarray | None) -> list[list[int]]:
    """Per track, the sorted member positions it is for: its turn member (when any) and every
    member it is a favourite of (``favourite``: members x playlist, or None)."""
    out: list[set[int]] = [set() if t is None or t < 0 else {int(t)} for t in turns]
    if favourite is not None:
        tracks, members = np.nonzero(favourite.T)
        for t, j in zip(tracks.tolist(), members.tolist()):
            out[t].add(j)
    return [sorted(s) for s in out]


def taste_match_reference(rc: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``Recommender.taste_match`` from ``r`` (the members' rows, float64) and
    ``rc = r @ cov_item``: Pearson correlation over the catalogue, mapped to 0-1."""
    cov = rc @ r.T
    d = np.sqrt(np.maximum(np.diag(cov), 1e-12))
    corr = np.clip(cov / np.outer(d, d), -1.0, 1.0)
    return ((corr + 1.0) / 2.0).astype(np.float32)


def folded_reference(r: np.ndarray, rc: np.ndarray, mean_item: np.ndarray) -> np.ndarray:
    """``Recommender.folded``: rows whose product with the items is already standardised."""
    var = np.add.reduce(rc * r, axis=1)
    mu, sd = r @ mean_item, np.sqrt(np.maximum(var, 1e-12))
    folded = r / sd[:, None]
    folded[:, -1] -= mu / sd
    return folded.astype(np.float32)
