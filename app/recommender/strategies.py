"""Group aggregation strategies and the playlist rules, on a members x tracks score matrix.

Input is ``z``: each member's scores standardised over the whole catalogue (mean 0, std 1 per
member), so that a member whose raw scores happen to spread widely does not outvote the others.
Every strategy but ``mean_rank`` works on the *expected liking* ``ℓ = σ(a·(z − c))`` (0-1),
the number shown to people. Its form is the expected enjoyment under a logistic taste model,
with ``a`` and ``c`` fitted on the demo's hidden taste (README: strategy evaluation).

Candidates: the catalogue is cut to the tracks with the best mean, minimum and maximum ``z``
(``best``: a sampled threshold, then an exact selection); ``ℓ`` and the greedy rules run on
those few hundred only, so nothing after the matrix product touches the whole catalogue more
than a handful of times.

Default ``turns_plus`` (``turns`` with one more turn each): the product promises a playlist
the *whole* group enjoys, so a strategy is judged by its least happy member and by whether
every member gets some of their own favourites, not by the group's mean alone. Strategies
that rank by a group score (``average``, ``fair``) let the majority win when tastes differ;
``turns`` first gives every member a fair share of turns to pick their own favourites, and then
fills the playlist close to max-min (README: strategy evaluation; ``promise.py`` for the
measures). ``gfar`` is the published reference (Kaya et al. 2020); ``turns_known`` also steers
the turns by each member's own history (``evidence.py``).
"""
from __future__ import annotations

import math
from copy import copy
from dataclasses import dataclass

import numpy as np

from app.recommender import kernels

DEFAULT_STRATEGY = "turns_plus"

LIKING_SLOPE = 1.0
LIKING_CENTER = 1.0
# average_without_misery: a member "dislikes" a track whose expected liking is below this.
MISERY_LIKING = 0.25
# fair: offset inside the log of each member's running fit (smaller: more weight on the
# least happy member; larger: closer to the plain average).
FAIR_DELTA = 1.15
# turns: a member's favourites are their top TURN_SHARE of the catalogue by the model (small:
# the model's very top is far more often a true favourite than its top few percent); on their
# turn the pick maximises the group's mean liking plus TURN_OWN_WEIGHT times their own.
TURN_SHARE = 0.001
TURN_OWN_WEIGHT = 10.0
# turns, after the turns: proportional fairness with a small offset (close to max-min), on a
# steeper liking that tells a loved track from a merely acceptable one.
TURN_FILL_DELTA = 0.1
TURN_FILL_SLOPE = 1.5
# turns_plus: every member gets this many turns beyond their fair share. Fewer people left out
# (Last.fm friends, demo strangers) at a cost in the group's mean, and in the least happy
# member where friends share a taste (README: strategy evaluation).
TURNS_PLUS_EXTRA = 1
# turns_known: ``turns_plus`` whose turns look first at the member's *agreed* favourites, the
# tracks both in their model top KNOWN_MODEL_TOP and among their KNOWN_TOP heaviest known tracks
# (their own listening, ``evidence.py``): the two sources make different mistakes, and where they
# agree a track is more often a true favourite. At most KNOWN_TURN_LIMIT of a member's turns
# go to tracks they already know, so that the playlist still brings something new
# (``KNOWN_TURN_LIMIT`` in config.py is the deployment's setting).
KNOWN_TOP = 100
KNOWN_MODEL_TOP = 50
KNOWN_TURN_LIMIT = 3
_AGREED_BONUS = 100.0
# gfar (the published reference): a member's relevant tracks are their top GFAR_RELEVANT by the
# model, with Borda relevance (the best GFAR_RELEVANT points, the last one point).
GFAR_RELEVANT = 20
_EXCLUDED = -1e9
NO_TURN = -1  # ``select``'s turn entry for a track that no member's turn chose


# The playlist rule's default: at most this many tracks by one artist (MAX_TRACKS_PER_ARTIST
# in config.py is the deployment's setting; evaluation and tools use this one).
MAX_PER_ARTIST = 3


@dataclass(frozen=True)
class Rules:
    length: int
    max_per_artist: int = MAX_PER_ARTIST
    exclude_explicit: bool = False


class NotEnoughSongs(ValueError):
    pass


class Taken:
    """The playlist rules as running state: no song twice, at most ``cap`` tracks per artist.
    It takes song and artist ids as plain ints, so the greedy loops can pass values they read
    from lists instead of indexing numpy arrays per candidate."""

    __slots__ = ("cap", "songs", "per_artist")

    def __init__(self, cap: int):
        self.cap = cap
        self.songs: set[int] = set()
        self.per_artist: dict[int, int] = {}

    def allows(self, s: int, a: int) -> bool:
        return s not in self.songs and self.per_artist.get(a, 0) < self.cap

    def take(self, s: int, a: int) -> None:
        self.songs.add(s)
        self.per_artist[a] = self.per_artist.get(a, 0) + 1

    @classmethod
    def before(cls, cap: int, before: "Before | None") -> "Taken":
        """The rules' state once the tracks already in the playlist (``before``) are in."""
        taken = cls(cap)
        if before is not None:
            for s, a in zip(before.song.tolist(), before.artist.tolist()):
                taken.take(int(s), int(a))
        return taken


def fair_share(length: int, members: int) -> int:
    """Tracks each member is owed in a playlist of ``length``: half the playlist split evenly,
    the other half left to what the group shares."""
    return max(1, length // (2 * members))


def check_strategy(strategy: str | None, configured: str | None = None) -> str:
    """The strategy to use: ``strategy``, else the deployment's ``configured`` default, else
    the recommender's; ValueError names the valid ones. The one place a default is chosen."""
    strategy = strategy or configured or DEFAULT_STRATEGY
    if strategy not in REGISTRY:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    return strategy


def liking(z: np.ndarray, slope: float = LIKING_SLOPE) -> np.ndarray:
    """Expected liking 0-1 from standardised scores: ``σ(a·(z − c))``, evaluated as
    ``½ + ½·tanh(a·(z − c)/2)``, which numpy computes in float32 without overflow and faster
    than ``scipy.special.expit``."""
    t = liking_tanh(z, slope)
    t *= np.float32(0.5)
    t += np.float32(0.5)
    return t


def liking_tanh(z: np.ndarray, slope: float = LIKING_SLOPE) -> np.ndarray:
    """``liking`` up to its last two steps, ``tanh(a·(z − c)/2)`` in float32 (a new array):
    the kernels that read the liking take those steps themselves."""
    t = np.subtract(z, LIKING_CENTER, dtype=np.float32)
    t *= np.float32(slope / 2)
    np.tanh(t, out=t)
    return t


def column_mean(x: np.ndarray) -> np.ndarray:
    """``x.mean(axis=0)``: the same reduction and division, without ``np.mean``'s wrapper."""
    out = np.add.reduce(x, axis=0)
    return np.true_divide(out, np.intp(x.shape[0]), out=out, casting="unsafe")


def percentiles(scores: np.ndarray) -> np.ndarray:
    """Exact per-member percentile (0 worst, 1 best) of every track: one argsort per member."""
    m, n = scores.shape
    order = np.argsort(scores, axis=1)  # introsort: deterministic, and faster than the stable sort
    pct = np.empty((m, n), dtype=np.float32)
    ranks = np.broadcast_to(np.arange(n, dtype=np.float32) / max(n - 1, 1), (m, n))
    np.put_along_axis(pct, order, ranks, axis=1)
    return pct


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties by index (``best``, then sort only
    those)."""
    part = np.sort(best(score, k))
    return part[np.argsort(-score[part], kind="stable")]


def best(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, unordered. Every ``k/8``-th score forms a sample whose 32nd
    best is a threshold that about ``4k`` tracks pass; one comparison cuts the catalogue to
    those, and the exact selection runs on them only (half of ``argpartition``'s time on
    20,000 tracks, a quarter on 100,000). When fewer than k pass (a sample that misjudged,
    heavy ties), the full ``argpartition`` runs instead."""
    n = len(score)
    if k >= n:
        return np.arange(n)
    stride = k // 8
    if stride >= 2 and 8 * k < n:
        sample = score[::stride]
        r = len(sample) - 32
        pool = np.flatnonzero(score >= np.partition(sample, r)[r])
        if len(pool) >= k:
            return pool[np.argpartition(score[pool], len(pool) - k)[len(pool) - k:]]
    return np.argpartition(score, n - k)[n - k:]


def greedy_fill(order: np.ndarray, song: np.ndarray, artist: np.ndarray, rules: Rules,
                allowed: np.ndarray | None, chosen: list[int] | None = None,
                max_per_artist: int | None = None, before: Taken | None = None) -> list[int]:
    """Walk candidates best first; take a track unless its song is already in, its artist is at
    the cap, or it is filtered out (``kernels.greedy_fill``). Loops over candidates, in
    compiled code, never over the catalogue in Python. ``before``: the rules' state of the
    tracks in the playlist before ``chosen`` (a continuation)."""
    chosen = list(chosen or [])
    cap = rules.max_per_artist if max_per_artist is None else max_per_artist
    if allowed is not None:
        order = order[allowed[order]]
    if len(chosen) >= rules.length or not len(order):
        return chosen
    pre = np.asarray(chosen, dtype=np.int64)
    pre_song, pre_artist = as_int64(song[pre]), as_int64(artist[pre])
    pre_count = np.ones(len(pre), np.int64)
    if before is not None and (before.songs or before.per_artist):
        pre_song = np.concatenate([pre_song, np.fromiter(before.songs, np.int64,
                                                         len(before.songs))])
        pre_artist = np.concatenate([pre_artist, np.fromiter(before.per_artist, np.int64,
                                                             len(before.per_artist))])
        pre_count = np.concatenate([pre_count, np.fromiter(before.per_artist.values(),
                                                           np.int64, len(before.per_artist))])
    picked = kernels.greedy_fill(as_int64(song[order]), as_int64(artist[order]),
                                 pre_song, pre_artist, pre_count, cap,
                                 rules.length - len(chosen))
    return chosen + order[picked].tolist()


def as_int64(x) -> np.ndarray:
    """``x`` as the kernels' contiguous int64 array (no copy when it already is one)."""
    return np.ascontiguousarray(x, dtype=np.int64)


def candidates(z: np.ndarray, allowed: np.ndarray | None, size: int,
               with_max: bool = True) -> np.ndarray:
    """The group's best tracks by its mean (``2·size``), by its least happy member and by its
    most enthusiastic member (``size/2`` each). The mean pool holds what suits everyone; the
    maximum pool keeps a member with an unusual taste represented (their favourites rank low
    on the mean and the minimum). On the demo data (500 groups, two seeds) these sizes gave
    ``fair`` a higher least-happy affinity at the same mean than three pools of ``size``
    (+0.004) for the same number of candidates (README: strategy evaluation). ``turns`` adds
    every member's own favourites instead of the maximum pool (``with_max=False``)."""
    n = z.shape[1]
    if z.shape[0] == 1:  # one member: mean, minimum and maximum are the same ranking
        pools = ((z[0], size),)
    else:  # the sum ranks as the mean does, without a division over the catalogue
        half = max(size // 2, 1)
        pools = ((z.sum(axis=0), 2 * size), (z.min(axis=0), half)) + (
            ((z.max(axis=0), half),) if with_max else ())
    mark = np.zeros(n, dtype=bool)
    for score, k in pools:
        if allowed is not None:
            score = np.where(allowed, score, _EXCLUDED)
        mark[best(score, k)] = True
    if allowed is not None:
        mark &= allowed
    return np.flatnonzero(mark)


def _by_average(lk: np.ndarray) -> np.ndarray:
    return lk.mean(axis=0)


def _by_least_misery(lk: np.ndarray) -> np.ndarray:
    # ties on the minimum (common in small groups) go to the better group average
    return lk.min(axis=0) + 1e-3 * lk.mean(axis=0)


def _by_average_without_misery(lk: np.ndarray) -> np.ndarray:
    # tracks someone dislikes stay available, but only after every acceptable one
    mean = lk.mean(axis=0)
    return np.where(lk.min(axis=0) >= MISERY_LIKING, mean, mean - 10.0)


def _ranked(lk: np.ndarray, score) -> np.ndarray:
    """Candidate positions best first under a group ``score`` of the liking."""
    return np.argsort(-score(lk), kind="stable")


@dataclass(frozen=True)
class Before:
    """The part of the playlist already there when it continues (``continuation.SoFar``), as
    the strategies see it: the members' ``z`` of those tracks (members x tracks, scored as
    ``Pick.z``), their song and artist ids, and per member the turns they already had."""

    z: np.ndarray
    song: np.ndarray
    artist: np.ndarray
    received: np.ndarray

    @property
    def done(self) -> int:
        return self.z.shape[1]

    def fit(self, slope: float = LIKING_SLOPE) -> np.ndarray:
        """Per member, their summed liking of the tracks so far (float64)."""
        return liking(self.z, slope).astype(np.float64).sum(axis=1)


@dataclass
class Pick:
    """What ``select`` takes and hands each strategy: the strategy (a name or a ``Strategy``),
    the scores (``z``, members x columns; ``raw`` orders as ``z``), the columns' song and artist
    ids, the rules, the allowed columns (None: all), per member the fair shares of turns they
    are owed (``turns``), ``known`` / ``known_limit`` (``turns_known``), ``before``: the playlist
    so far when it continues (its tracks are not among the allowed columns), and ``size``: the
    candidates' size for this round (``select`` sets it, widening it when the rules eat the
    candidates)."""

    strategy: "str | Strategy"
    z: np.ndarray
    raw: np.ndarray
    song: np.ndarray
    artist: np.ndarray
    rules: Rules
    allowed: np.ndarray | None = None
    owed: np.ndarray | None = None
    known: list[np.ndarray | None] | None = None
    known_limit: int = KNOWN_TURN_LIMIT
    before: Before | None = None
    size: int = 0

    def taken(self) -> Taken:
        """The rules' state with the playlist so far in (empty for a new playlist)."""
        return Taken.before(self.rules.max_per_artist, self.before)

    def __copy__(self) -> "Pick":
        """A shallow copy (``select``'s, once per playlist) without ``copy``'s generic
        reduction protocol."""
        new = object.__new__(Pick)
        new.__dict__.update(self.__dict__)
        return new


@dataclass(frozen=True)
class Strategy:
    """One aggregation strategy: its name, the sentence people read about it, how it chooses
    tracks (``choose(pick) -> (tracks, turns)``), and for the strategies that take turns, how
    many turns beyond the fair share each member gets (None: no turns)."""

    name: str
    help: str
    choose: object
    extra_turns: int | None = None
    # False: the strategy keeps rules of its own and may come back short (the live party);
    # ``select`` then neither widens its candidates nor relaxes the artist cap for it
    fills: bool = True
    # True: its turns read each member's known favourites (``Member.known``, from their own
    # listening), which the service and the evaluation then load for it
    uses_known: bool = False

    @property
    def takes_turns(self) -> bool:
        return self.extra_turns is not None


def strategy_of(strategy: "str | Strategy | None") -> Strategy:
    """The registered strategy of that name (None: the default), or the ``Strategy`` itself."""
    return strategy if isinstance(strategy, Strategy) else REGISTRY[check_strategy(strategy)]


def select(pick: Pick) -> tuple[list[int], list[str], list[int]]:
    """The new tracks (positions in ``pick.z``'s columns) under ``pick.strategy`` and the
    playlist rules, notes, and per chosen track the member position whose turn chose it (-1:
    no member's turn did). ``pick.size`` is set here; see ``Pick`` for the rest."""
    spec = strategy_of(pick.strategy)
    pick = copy(pick)  # the caller's is left as it was; ``size`` changes per round
    z, song, artist, rules, allowed = pick.z, pick.song, pick.artist, pick.rules, pick.allowed
    notes: list[str] = []
    n = z.shape[1]
    size = max(10 * rules.length, 200)
    chosen: list[int] = []
    turns: list[int] = []
    while True:
        pick.size = size
        chosen, turns = spec.choose(pick)
        if not spec.fills or len(chosen) >= rules.length or size >= n:
            break
        size = min(n, size * 8)  # the rules ate the candidates (tight artist cap, filters)
    if spec.fills and len(chosen) < rules.length:
        # very small or filtered catalogues: the artist cap gives way before the length does
        base = z.mean(axis=0)
        order = _top(np.where(allowed, base, _EXCLUDED) if allowed is not None else base, n)
        chosen = greedy_fill(order, song, artist, rules, allowed, chosen, max_per_artist=n,
                             before=pick.taken() if pick.before is not None else None)
        notes.append("artist cap relaxed: not enough distinct artists")
    if spec.fills and len(chosen) < rules.length:
        raise NotEnoughSongs(f"the catalogue holds only {len(chosen)} distinct songs that pass "
                             f"the filters; asked for {rules.length}")
    return chosen, notes, (turns + [NO_TURN] * len(chosen))[:len(chosen)]


def _fair(lk: np.ndarray, cand: np.ndarray, song: np.ndarray, artist: np.ndarray,
          rules: Rules, start: tuple[np.ndarray, int] | None = None,
          taken: Taken | None = None, delta: float = FAIR_DELTA, *,
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
    stay finite in float64 take the sum of logarithms. The steps run in ``kernels.fair``;
    ``scratch`` (``lk`` is a float64 array the caller no longer needs) is kept for callers: the
    kernel does not write to ``lk``, so no copy is made either way."""
    m, c = lk.shape
    taken = taken if taken is not None else Taken(rules.max_per_artist)
    if m == 1:  # one member: the log changes nothing, best liking first
        chosen = greedy_fill(cand[np.argsort(-lk[0], kind="stable")], song, artist, rules, None,
                             before=taken)
        for i in chosen:
            taken.take(int(song[i]), int(artist[i]))
        return chosen
    done = start[1] if start is not None else 0
    in_logs = m * math.log10((1.0 + delta) * (rules.length + done + 1)) > 300
    fit = np.full(m, delta)  # A at step 0
    if start is not None:  # continue a playlist: A = (s + 1)·δ + what members got so far
        fit = fit * (done + 1) + start[0]
    c_song, c_artist = as_int64(song[cand]), as_int64(artist[cand])
    picked = kernels.fair(np.ascontiguousarray(lk, dtype=np.float64),
                          np.array(fit, dtype=np.float64), float(delta), c_song, c_artist,
                          np.fromiter(taken.songs, np.int64, len(taken.songs)),
                          np.fromiter(taken.per_artist, np.int64, len(taken.per_artist)),
                          np.fromiter(taken.per_artist.values(), np.int64,
                                      len(taken.per_artist)),
                          taken.cap, rules.length, in_logs)
    for s, a in zip(c_song[picked].tolist(), c_artist[picked].tolist()):
        taken.take(s, a)
    return np.asarray(cand)[picked].tolist()


def _own_pools(z: np.ndarray, allowed: np.ndarray | None, k: int) -> np.ndarray:
    """A mask of the tracks above some member's threshold for their top ``k``, for all members
    at once. Each threshold comes from a strided sample of the member's row, as in ``best``,
    set so that about ``6k`` tracks pass: a superset of the top ``k`` except for a sample that
    misjudged the row badly, where the exact selection that follows takes the best tracks it
    has (``kernels.own_pools``)."""
    m, n = z.shape
    return kernels.own_pools(as_f32(z), _allowed(allowed), _own_k(n, k))


def _own_k(n: int, k: int) -> int:
    """``_own_pools``: which best of a member's sampled scores is their threshold."""
    s = len(range(0, n, max(1, n // 512)))
    return max(1, min(s, (6 * k * s) // n))


def as_f32(x) -> np.ndarray:
    """``x`` as the kernels' contiguous float32 matrix (no copy when it already is one)."""
    return np.ascontiguousarray(x, dtype=np.float32)


_NO_FILTER = np.zeros(0, dtype=bool)


def _allowed(allowed: np.ndarray | None) -> np.ndarray:
    """The filter as the kernels take it: an empty mask for none."""
    return _NO_FILTER if allowed is None else np.ascontiguousarray(allowed, dtype=bool)


def favourite_count(n: int, length: int) -> int:
    """``turns``: how many tracks of the catalogue are a member's own favourites."""
    return min(n, max(length, math.ceil(TURN_SHARE * n)))


def _turn_pools(z: np.ndarray, allowed: np.ndarray | None, size: int, k: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``candidates(z, allowed, size, with_max=False)`` and every member's own pool
    (``_own_pools``) from one pass over the catalogue's marks: the sampled thresholds of the
    mean and minimum pools and of the members' own tracks are applied to the whole catalogue,
    their union is listed once, and the exact selections of ``best`` run on that short list
    (the same tracks as ``best`` selects). Returns the candidates, the sorted union of
    candidates and own pools, and which of those are candidates; None when a pool would take
    ``best``'s fallback (the caller then takes the plain path).

    The passes run in ``kernels.turn_pools``. Its exact selection takes the tracks at or above
    the pool's ``kk``-th best score, which is ``argpartition``'s set unless that score is shared
    across the cut; there ``argpartition`` itself chooses among the equals, as before."""
    n = z.shape[1]
    half = max(size // 2, 1)
    strides = []
    for kk in (2 * size, half):
        stride = kk // 8
        if kk >= n or not (stride >= 2 and 8 * kk < n):
            return None
        strides.append(stride)
    args = (as_f32(z), _allowed(allowed), 2 * size, half, strides[0], strides[1], _own_k(n, k))
    cand, wide, in_cand, status = kernels.turn_pools(*args)
    if status <= 0:
        return None if status < 0 else (cand, wide, in_cand)
    listed, own, is_cand, score, passed, _ = kernels.turn_pool_lists(*args)
    for p, kk in enumerate((2 * size, half)):
        if status & (1 << p):  # a tie across the cut: numpy's choice among the equals
            at = np.flatnonzero(passed[p])
            is_cand[at[np.argpartition(score[p, at], len(at) - kk)[len(at) - kk:]]] = True
    if allowed is not None:
        is_cand &= allowed[listed]
    is_wide = is_cand | own
    return listed[is_cand], listed[is_wide], is_cand[is_wide]


def _turns(z: np.ndarray, allowed: np.ndarray | None, cand: np.ndarray, song: np.ndarray,
           artist: np.ndarray, rules: Rules, owed: np.ndarray | None = None,
           pools: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, extra: int = 0,
           known: list[np.ndarray | None] | None = None, known_limit: int = KNOWN_TURN_LIMIT,
           before: Before | None = None,
           favourites: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
           ) -> tuple[list[int], list[int]]:
    """Members take turns, a fair share of turns each (and ``extra`` more), then proportional
    fairness close to max-min (``_fair`` with ``TURN_FILL_DELTA``) fills the rest.

    ``owed`` scales a member's share (members the model knows only by genres get more turns:
    fewer of their model favourites are true ones). The next turn goes to the member with the
    fewest turns so far (ties: the lowest running fit); they pick, among their own favourites
    (their top ``TURN_SHARE`` of the catalogue by the model), their most liked track, the
    group's liking breaking near-ties. A turn stays the member's own even where friends share
    favourites: on real friend groups their own picks are what keeps each member from being
    left out (README: strategy evaluation). Returns the tracks and, per track, the position
    of the member whose turn chose it (``NO_TURN``: chosen after the turns).

    ``known`` (``turns_known``): a member's agreed favourites (in their model top
    ``KNOWN_MODEL_TOP`` and among their known tracks) join their favourites and come first on
    their turns, at most ``known_limit`` of their turns.

    ``before`` (a continuation): the shares are of the whole playlist, the turns each member
    already had count towards theirs and order the next ones, the running fit starts from
    the tracks so far, and those tracks count for the rules.

    The favourites and the turns with their fill run in ``kernels.turn_favourites`` and
    ``kernels.turn_picks``; only the liking, a ufunc, is taken here. ``favourites``: what
    ``_turn_candidates`` returns, in place of ``pools`` and ``kernels.turn_favourites``."""
    m, n = z.shape
    done = before.done if before is not None else 0
    if m == 1:  # one member: every turn is theirs, best liking first, as in ``_fair``
        chosen = _fair(liking(np.take(z, cand, axis=1)), cand, song, artist, rules,
                       taken=Taken.before(rules.max_per_artist, before))
        return chosen, [0] * len(chosen)
    k = favourite_count(n, rules.length)
    if favourites is not None:  # ``_turn_candidates``: the kept columns already scored
        cand, zc, fav, agreed = favourites
    else:
        if pools is not None:  # ``_turn_pools``: the candidates and own pools already listed
            wide, in_cand = pools[1], pools[2]
        else:
            mark = _own_pools(z, allowed, k)
            mark[cand] = True
            wide = np.flatnonzero(mark)
            in_cand = np.zeros(len(wide), dtype=bool)
            in_cand[np.searchsorted(wide, cand)] = True
        # every column of ``wide`` is allowed: the pools and ``cand`` are
        zc, fav, agreed, keep = kernels.turn_favourites(
            as_f32(z), as_int64(wide), np.ascontiguousarray(in_cand, dtype=bool), k,
            *_known_lists(known, m), KNOWN_MODEL_TOP)
        cand = wide[keep]
    tanh = liking_tanh(zc, TURN_FILL_SLOPE)  # the kernel completes the liking
    owed = _NO_FIT if owed is None else np.ascontiguousarray(owed, dtype=np.float64)
    in_logs = m * math.log10((1.0 + TURN_FILL_DELTA) * (rules.length + done + 1)) > 300
    if before is None:  # empty: nothing so far, nobody has had a turn
        pre_song = pre_artist = pre_count = received = _NO_KNOWN
        fit = _NO_FIT
    else:
        pre_song = as_int64(before.song)
        pre_artist, pre_count = np.unique(as_int64(before.artist), return_counts=True)
        pre_count = as_int64(pre_count)
        received = as_int64(before.received)
        fit = np.ascontiguousarray(before.fit(TURN_FILL_SLOPE), dtype=np.float64)
    out, turns = kernels.turn_picks(tanh, fav, agreed, owed,
                                    float(fair_share(rules.length + done, m)), float(extra),
                                    int(known_limit), as_int64(song), as_int64(artist),
                                    as_int64(cand), rules.max_per_artist, rules.length,
                                    TURN_OWN_WEIGHT, _AGREED_BONUS, TURN_FILL_DELTA, in_logs,
                                    pre_song, pre_artist, pre_count, received, fit)
    return out.tolist(), turns.tolist()


_NO_KNOWN = np.zeros(0, np.int64)
_NO_FIT = np.zeros(0, np.float64)


def _known_lists(known: list[np.ndarray | None] | None, m: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The members' heaviest known tracks as the kernels take them: per member ``q``,
    ``at[ptr[q]:ptr[q + 1]]`` (both empty: nobody has any)."""
    if known is None or not any(kn is not None and len(kn) for kn in known):
        return _NO_KNOWN, _NO_KNOWN
    tops = [np.zeros(0, np.int64) if kn is None else as_int64(kn)[:KNOWN_TOP] for kn in known]
    ptr = np.zeros(m + 1, np.int64)
    np.cumsum([len(t) for t in tops], out=ptr[1:])
    return ptr, as_int64(np.concatenate(tops))


def _turn_candidates(z: np.ndarray, allowed: np.ndarray | None, size: int, k: int,
                     known: list[np.ndarray | None] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``_turn_pools`` and the favourites of ``_turns`` on its columns in one kernel
    (``kernels.turn_candidates``): the kept columns, their scores, the members' favourites and
    agreed favourites there, as ``_turns`` takes them in ``favourites``. None where
    ``_turn_pools`` would not answer from its kernel alone (a fallback, a tie across a cut):
    the caller then takes ``_turn_pools`` and ``_turns`` as they are."""
    m, n = z.shape
    half = max(size // 2, 1)
    for kk in (2 * size, half):
        if kk >= n or not (kk // 8 >= 2 and 8 * kk < n):
            return None
    kept, zc, fav, agreed, status = kernels.turn_candidates(
        as_f32(z), _allowed(allowed), 2 * size, half, (2 * size) // 8, half // 8, _own_k(n, k),
        k, *_known_lists(known, m), KNOWN_MODEL_TOP)
    return None if status else (kept, zc, fav, agreed)


def _gfar(z: np.ndarray, allowed: np.ndarray | None, cand: np.ndarray, song: np.ndarray,
          artist: np.ndarray, rules: Rules, relevant: int = GFAR_RELEVANT,
          before: Before | None = None) -> tuple[list[int], list[int]]:
    """GFAR (Kaya, Bridge, Tintarev, RecSys 2020), the published reference: greedily maximise
    the probability that every member finds at least one relevant track. A member's relevant
    tracks are their top ``relevant`` allowed tracks by the model, with Borda relevance
    normalised to sum to one (``p(rel | u, i)``); each next track maximises
    ``Σ_u p(rel | u, i) · Π_{j chosen} (1 − p(rel | u, j))``. The track is attributed to the
    member whose gain was largest. Once no relevant track passes the rules, the group's mean
    liking over ``cand`` fills the rest (as ``average``). ``before``: the tracks so far count
    for the rules (they are not among the allowed tracks)."""
    m, n = z.shape
    k = min(relevant, n)
    tops = []
    for q in range(m):
        score = z[q] if allowed is None else np.where(allowed, z[q], _EXCLUDED)
        top = _top(score, k)
        if allowed is not None:
            top = top[allowed[top]]
        tops.append(top)
    union = np.unique(np.concatenate(tops)) if tops else np.zeros(0, np.intp)
    p = np.zeros((m, len(union)))
    for q, top in enumerate(tops):
        borda = np.arange(len(top), 0, -1, dtype=np.float64)
        p[q, np.searchsorted(union, top)] = borda / borda.sum()
    missed = np.ones(m)  # per member: probability that nothing chosen so far is relevant
    taken = Taken.before(rules.max_per_artist, before)
    chosen: list[int] = []
    turns: list[int] = []
    live = np.ones(len(union), dtype=bool)
    while len(chosen) < rules.length and live.any():
        contrib = p * missed[:, None]
        gain = np.where(live, contrib.sum(axis=0), -1.0)
        j = int(gain.argmax())
        if gain[j] <= 0.0:
            break
        live[j] = False
        i = int(union[j])
        s, a = int(song[i]), int(artist[i])
        if not taken.allows(s, a):
            continue
        taken.take(s, a)
        chosen.append(i)
        turns.append(int(contrib[:, j].argmax()))
        missed *= 1.0 - p[:, j]
    if len(chosen) < rules.length:
        rest = cand[~np.isin(cand, chosen)]
        lk = liking(np.take(z, rest, axis=1))
        chosen = greedy_fill(rest[_ranked(lk, _by_average)], song, artist, rules, None, chosen,
                             before=Taken.before(rules.max_per_artist, before))
    return chosen, turns + [NO_TURN] * (len(chosen) - len(turns))


def _choose_mean_rank(p: Pick) -> tuple[list[int], list[int]]:
    score = percentiles(p.raw).mean(axis=0)
    if p.allowed is not None:
        score = np.where(p.allowed, score, _EXCLUDED)
    top = _top(score, min(p.size, p.z.shape[1]))
    return greedy_fill(top, p.song, p.artist, p.rules, p.allowed, before=p.taken()), []


def _group_candidates(p: Pick) -> np.ndarray:
    return candidates(p.z, p.allowed, p.size, with_max=True)


def _ranking(score):
    """A strategy that ranks the group's candidates once by ``score`` of their liking."""
    def choose(p: Pick) -> tuple[list[int], list[int]]:
        cand = _group_candidates(p)
        lk = liking(np.take(p.z, cand, axis=1))
        return greedy_fill(cand[_ranked(lk, score)], p.song, p.artist, p.rules, None,
                           before=p.taken()), []
    return choose


def _choose_fair(p: Pick) -> tuple[list[int], list[int]]:
    cand = _group_candidates(p)
    start = (p.before.fit(), p.before.done) if p.before is not None else None
    return _fair(liking(np.take(p.z, cand, axis=1)), cand, p.song, p.artist, p.rules,
                 start=start, taken=p.taken()), []


def _choose_gfar(p: Pick) -> tuple[list[int], list[int]]:
    return _gfar(p.z, p.allowed, _group_candidates(p), p.song, p.artist, p.rules,
                 before=p.before)


def _taking_turns(extra: int, use_history: bool = False):
    """A strategy where members take turns, ``extra`` turns each beyond the fair share;
    ``use_history``: the turns look first at the member's agreed favourites."""
    def choose(p: Pick) -> tuple[list[int], list[int]]:
        m, n = p.z.shape
        known = p.known if use_history else None
        if m > 1:
            got = _turn_candidates(p.z, p.allowed, p.size, favourite_count(n, p.rules.length),
                                   known)
            if got is not None:
                return _turns(p.z, p.allowed, got[0], p.song, p.artist, p.rules, p.owed,
                              extra=extra, known=known, known_limit=p.known_limit,
                              before=p.before, favourites=got)
        pools = (_turn_pools(p.z, p.allowed, p.size, favourite_count(n, p.rules.length))
                 if m > 1 else None)
        cand = pools[0] if pools is not None else candidates(p.z, p.allowed, p.size,
                                                             with_max=False)
        return _turns(p.z, p.allowed, cand, p.song, p.artist, p.rules, p.owed, pools=pools,
                      extra=extra, known=p.known if use_history else None,
                      known_limit=p.known_limit, before=p.before)
    return choose


# Every strategy, in the order people are offered them: the form, the API's enum, the OpenAPI
# document, the strategies page and the evaluation read this table; a name not in it is
# refused everywhere (``check_strategy``).
REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("mean_rank", "best mean rank across members (the original system)",
             _choose_mean_rank),
    Strategy("average", "highest average liking", _ranking(_by_average)),
    Strategy("least_misery", "nobody is left unhappy: maximise the least happy member",
             _ranking(_by_least_misery)),
    Strategy("average_without_misery", "highest average among tracks nobody dislikes",
             _ranking(_by_average_without_misery)),
    Strategy("fair", "proportional fairness: each next track weighs a gain for the member "
             "served worst so far most, but the group's liking still decides, so the majority "
             "wins when tastes differ", _choose_fair),
    Strategy("turns", "members take turns: each picks a fair share of their own favourites, "
             "the member with the fewest picks going next; then the rest goes to tracks that "
             "the least happy members like too", _taking_turns(0), extra_turns=0),
    Strategy("turns_plus", "like turns, with one more turn each, so fewer members are left "
             "out; it costs a little of the group average, and of the shared favourites when "
             "friends agree", _taking_turns(TURNS_PLUS_EXTRA), extra_turns=TURNS_PLUS_EXTRA),
    Strategy("gfar", "the published GFAR rule (Kaya et al. 2020): each next track raises most "
             "the chance that every member finds one of their own top 20", _choose_gfar),
    Strategy("turns_known", "like turns plus, but a member's turns look first at tracks both "
             "the model and their own listening say they love (a few of their turns at most)",
             _taking_turns(TURNS_PLUS_EXTRA, use_history=True),
             extra_turns=TURNS_PLUS_EXTRA, uses_known=True),
)}
STRATEGIES = tuple(REGISTRY)
