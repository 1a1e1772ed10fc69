"""What the service reads about a group's members: favourite genres and listening histories.

Histories are cached per process (``HistoryCache``): the history query reads every event of
every member and used to cost more than the rest of a request (bench/RESULTS.md).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from app.common.lru import LRU
from app.db import Genre, ListeningEvent, User, user_genres as user_genres_table
from app.extensions import db
from app.recommender.catalogue import Catalogue


def user_genres(user_ids: list[int]) -> dict[int, list[str]]:
    """Existing users among ``user_ids`` with their favourite genres (one query); a missing key
    is a user that does not exist."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(User.user_id, Genre.name)
        .outerjoin(user_genres_table, user_genres_table.c.user_id == User.user_id)
        .outerjoin(Genre, Genre.id == user_genres_table.c.genre_id)
        .where(User.user_id.in_(user_ids))).all()
    found: dict[int, list[str]] = {}
    for uid, genre in rows:
        found.setdefault(int(uid), [])
        if genre is not None:
            found[int(uid)].append(genre)
    return found


class GenresCache:
    """Per-process, LRU-bounded cache of ``user_genres`` (a query with two joins that most
    playlists made again for the same members). A user's entry is read again once it is
    ``interval`` seconds old, so a re-imported user's genres reach the playlists that much
    later, as a new import's histories do (``HistoryCache``); a user not found is never kept,
    so a user just created is found at once."""

    MAX_USERS = 20_000

    def __init__(self, interval: float):
        self.interval = interval
        self.users: LRU[int, tuple[float, list[str]]] = LRU(self.MAX_USERS)

    def get(self, user_ids: list[int]) -> dict[int, list[str]]:
        """As ``user_genres``: existing users among ``user_ids`` with their genres."""
        now = time.monotonic()
        found: dict[int, list[str]] = {}
        missing = []
        for u in user_ids:
            hit = self.users.get(u)
            if hit is not None and now - hit[0] < self.interval:
                found[u] = list(hit[1])
            else:
                missing.append(u)
        if missing:
            for u, genres in user_genres(missing).items():
                self.users.put(u, (now, genres))
                found[u] = list(genres)
        return found


def histories(catalogue: Catalogue, members: list[int]) -> list[np.ndarray]:
    """Per member, catalogue indices of the tracks they played or liked."""
    ev = ListeningEvent.__table__.c
    rows = db.session.execute(
        select(ev.user_id, ev.track_id).distinct()
        .where(ev.user_id.in_(members), ev.track_id.is_not(None),
               ev.event_type.in_(("play", "like")))).all()
    by_user: dict[int, list[str]] = {u: [] for u in members}
    for uid, tid in rows:
        by_user[int(uid)].append(tid)
    out = []
    for u in members:
        idx = catalogue.ids.to_internal(by_user[u])
        out.append(idx[idx >= 0])
    return out


class HistoryCache:
    """Per-process, LRU-bounded cache of ``histories``.

    Histories change only when listening events are imported, so the cache is dropped when the
    catalogue object changes or ``max(listening_events.id)`` moves (checked at most every
    ``interval`` seconds: an import reaches the playlists that much later, as new tracks do).
    """

    MAX_USERS = 20_000

    def __init__(self, interval: float):
        self.interval = interval
        self.users: LRU[int, np.ndarray] = LRU(self.MAX_USERS)
        self.key: tuple | None = None
        self.checked_at = float("-inf")
        self.lock = threading.Lock()

    def get(self, catalogue: Catalogue, members: list[int]) -> list[np.ndarray]:
        if time.monotonic() - self.checked_at >= self.interval:
            key = (id(catalogue), db.session.scalar(select(func.max(ListeningEvent.id))))
            with self.lock:
                if key != self.key:
                    self.users.clear()
                    self.key = key
                self.checked_at = time.monotonic()
        found = {u: self.users.get(u) for u in members}
        missing = [u for u in members if found[u] is None]
        if missing:
            for u, h in zip(missing, self.load(catalogue, missing)):
                found[u] = h
                self.users.put(u, found[u])
        return [found[u] for u in members]  # type: ignore[misc]

    def load(self, catalogue: Catalogue, members: list[int]) -> list:
        # sorted: the base draw skips its unique
        return [np.sort(h).astype(np.int32) for h in histories(catalogue, members)]


class EvidenceCache(HistoryCache):
    """``HistoryCache`` of each member's play and like counts (``member_counts``): what the
    reasons quote, read once per member and import instead of once per playlist."""

    def load(self, catalogue: Catalogue, members: list[int]) -> list:
        return member_counts(catalogue, members)


class CountedHistoryCache(HistoryCache):
    """``HistoryCache`` whose misses read the members' ``Counts`` through ``evidence``: a
    history is the set of tracks a member played or liked, exactly the tracks their counts
    hold, so a member new to this process costs one query (which the playlist's reasons then
    find cached) instead of a history query and a counts query."""

    def __init__(self, interval: float, evidence: EvidenceCache):
        super().__init__(interval)
        self.evidence = evidence

    def load(self, catalogue: Catalogue, members: list[int]) -> list:
        return [c.tracks.astype(np.int32) for c in self.evidence.get(catalogue, members)]


@dataclass(frozen=True)
class Counts:
    """One member's plays and likes per track (catalogue positions, ascending) and plays per
    artist (catalogue artist codes, ascending)."""

    tracks: np.ndarray
    plays: np.ndarray
    likes: np.ndarray
    artists: np.ndarray
    artist_plays: np.ndarray

    def at(self, keys: np.ndarray, values: np.ndarray, asked: np.ndarray) -> np.ndarray:
        return self.lookup(keys, asked, values)[0]

    @staticmethod
    def lookup(keys: np.ndarray, asked: np.ndarray, *columns: np.ndarray) -> list[np.ndarray]:
        """``columns`` (aligned with the ascending ``keys``) at ``asked``, 0 where a key is
        absent: one search for every column of the same keys."""
        if not len(keys):
            return [np.zeros(len(asked), np.int64) for _ in columns]
        pos = np.searchsorted(keys, asked)
        np.minimum(pos, len(keys) - 1, out=pos)
        miss = keys[pos] != asked
        out = []
        for values in columns:
            got = values[pos]
            got[miss] = 0
            out.append(got)
        return out


def member_counts(catalogue: Catalogue, members: list[int]) -> list[Counts]:
    """Per member, ``Counts`` from one grouped query on the covering (user, event type, track)
    index."""
    ev = ListeningEvent.__table__.c
    rows = db.session.execute(
        select(ev.user_id, ev.event_type, ev.track_id, func.count())
        .where(ev.user_id.in_(members), ev.event_type.in_(("play", "like")),
               ev.track_id.is_not(None))
        .group_by(ev.user_id, ev.event_type, ev.track_id)).all()
    row_of = {u: j for j, u in enumerate(members)}
    users = np.array([row_of.get(int(r[0]), -1) for r in rows], np.int64)
    is_play = np.array([r[1] == "play" for r in rows], bool)
    pos = catalogue.ids.to_internal([r[2] for r in rows]) if rows else np.zeros(0, np.int64)
    count = np.array([int(r[3]) for r in rows], np.int64)
    ok = (users >= 0) & (pos >= 0)
    users, is_play, pos, count = users[ok], is_play[ok], pos[ok], count[ok]
    artist = catalogue.meta.artist
    out = []
    for j in range(len(members)):
        mine = users == j
        p, c, play = pos[mine], count[mine], is_play[mine]
        tracks = np.unique(p)
        at = np.searchsorted(tracks, p)
        plays = np.bincount(at[play], weights=c[play], minlength=len(tracks)).astype(np.int64)
        likes = np.bincount(at[~play], weights=c[~play], minlength=len(tracks)).astype(np.int64)
        a = artist[p[play]].astype(np.int64)
        artists = np.unique(a)
        per_artist = np.bincount(np.searchsorted(artists, a), weights=c[play],
                                 minlength=len(artists)).astype(np.int64)
        out.append(Counts(tracks, plays, likes, artists, per_artist))
    return out



def playlist_evidence(counts: list[Counts], catalogue: Catalogue, idx: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per member and playlist track (catalogue positions ``idx``): the member's likes of the
    track, plays of the track and plays of any track by its artist (members x playlist each),
    the counts a track's reason quotes (``reasons.py``), from each member's ``Counts``.

    All members are searched at once: each member's keys are shifted into a range of their
    own (member position times the number of keys there can be), so one sorted array holds
    every member's keys and one search answers every (member, track), where a search per
    member and column cost a dozen numpy calls each."""
    idx = np.asarray(idx, dtype=np.int64)
    artists = catalogue.meta.artist[idx].astype(np.int64)
    likes, plays = _stacked_lookup([c.tracks for c in counts], idx, len(catalogue),
                                   [c.likes for c in counts], [c.plays for c in counts])
    by_artist, = _stacked_lookup([c.artists for c in counts], artists,
                                 len(catalogue.meta.artist_ids), [c.artist_plays for c in counts])
    return likes, plays, by_artist


def _stacked_lookup(keys: list[np.ndarray], asked: np.ndarray, span: int,
                    *columns: list[np.ndarray]) -> list[np.ndarray]:
    """``Counts.lookup`` for every member at once: per column, members x ``asked``, 0 where a
    member's (ascending, below ``span``) keys lack the asked one."""
    m, n = len(keys), len(asked)
    sizes = np.fromiter((len(k) for k in keys), np.int64, m)
    if not sizes.sum():
        return [np.zeros((m, n), np.int64) for _ in columns]
    shift = np.arange(m, dtype=np.int64) * span
    stacked = np.concatenate(keys).astype(np.int64, copy=False) + np.repeat(shift, sizes)
    wanted = (asked[None, :] + shift[:, None]).ravel()
    found = Counts.lookup(stacked, wanted,
                          *(np.concatenate(values).astype(np.int64, copy=False)
                            for values in columns))
    return [got.reshape(m, n) for got in found]


def known_histories(catalogue: Catalogue, members: list[int], weights) -> list[np.ndarray]:
    """Per member, their heaviest known tracks (catalogue positions, heaviest first) from their
    plays, likes and skips, weighed as training weighs them (``evidence.py``); for the
    ``turns_known`` strategy only. The decay's reference time does not change a member's order
    of tracks, so it is the newest of the group's events."""
    from datetime import timezone

    from app.recommender.evidence import known_tracks
    from app.recommender.dataset import KIND_CODES
    from app.recommender.strategies import KNOWN_TOP

    ev = ListeningEvent.__table__.c
    rows = db.session.execute(
        select(ev.user_id, ev.track_id, ev.event_type, ev.timestamp)
        .where(ev.user_id.in_(members), ev.track_id.is_not(None),
               ev.event_type.in_(("play", "like", "skip")))).all()
    by_user: dict[int, list] = {u: [] for u in members}
    for uid, tid, kind, ts in rows:
        by_user.setdefault(int(uid), []).append((tid, KIND_CODES[kind], ts))
    stamps = [r[3] for r in rows if r[3] is not None]
    now = max(stamps).replace(tzinfo=timezone.utc).timestamp() if stamps else 0.0
    out = []
    for u in members:
        got = [r for r in by_user[u] if r[2] is not None]
        if not got:
            out.append(np.zeros(0, np.int64))
            continue
        idx = catalogue.ids.to_internal([r[0] for r in got])
        ok = idx >= 0
        times = np.array([r[2].replace(tzinfo=timezone.utc).timestamp() for r in got])
        kinds = np.array([r[1] for r in got], np.int8)
        known = known_tracks(idx[ok], kinds[ok], times[ok], weights, now)
        out.append(known.top(KNOWN_TOP))
    return out
