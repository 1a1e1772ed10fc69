"""The one entry point the API and the web pages use to build a group playlist.

CONTRACT (kept stable for app/api and app/web; the implementation behind it may change):

    build_playlist(members, length, *, model="advanced", strategy=None,
                   exclude_explicit=False, seed=None) -> Playlist

- ``members``: the requesting user first, then the other users (duplicates removed, order kept).
- ``model``: "advanced" (LightFM) or "base" (random tracks from the members' history).
- raises ``UnknownUsersError`` (``.ids``) when user ids are not in the database,
  ``ModelUnavailableError`` when "advanced" is asked for and no model version can be loaded,
  ``ValueError`` for an unknown strategy.
- ``Playlist.items`` has exactly ``length`` distinct songs; each item carries, per member, the
  expected liking in 0-1 (``member_scores``, same order as ``Playlist.members``);
  ``Playlist.member_fit`` is how well the whole playlist fits each member (0-1);
  ``Playlist.taste_match`` is a members x members matrix of taste similarity (0-1).
  For the base model the scores come from the advanced model when one is loaded, else are None.
- ``PlaylistItem.for_members`` (user ids) says whom the track is for: the member whose turn
  chose it (``turn_of``) and every member it is a favourite of (attribution.py). Advanced
  playlists come in listening order (ordering.py); base playlists keep their random order,
  the original system's, since base is the A/B control.

Serving state lives in one ``ModelHolder`` per application (``app.extensions``): the catalogue
and the active model version, loaded lazily. At most every ``MODEL_RELOAD_SECONDS`` (default 5)
one request re-reads the active version and the track count from the database; a newly
activated version or newly imported tracks are then loaded in the background of that request
while the others keep using the previous state, so gunicorn workers follow `model activate`
without a restart.

A version that fails to load is never the end of serving: the previous version keeps serving,
and a fresh worker with nothing loaded yet falls back to the newest other version that loads.
``model_status()["fallback"]`` says so (and /health with it); the failed version is retried when
the active pointer changes or after ``RETRY_FAILED_SECONDS``, not on every check, because a
failed load reads and hashes the whole artifact.
"""
from __future__ import annotations

from pathlib import Path

import threading
import time
from dataclasses import dataclass, field
import numpy as np


class UnknownUsersError(LookupError):
    def __init__(self, ids: list[int]):
        self.ids = sorted(ids)
        super().__init__(f"unknown user ids: {self.ids}")


class ModelUnavailableError(RuntimeError):
    """No trained model version is active, or its artifact cannot be loaded."""


@dataclass(frozen=True)
class PlaylistItem:
    track_id: str
    name: str
    artist: str
    artist_id: str
    genres: list[str]
    duration_ms: int
    explicit: bool
    member_scores: list[float] | None
    # user ids this track is for (the turn member and members it is a favourite of) and the
    # member whose turn chose it; None when no model could tell (base model without a model)
    for_members: list[int] | None = None
    turn_of: int | None = None


@dataclass(frozen=True)
class Playlist:
    items: list[PlaylistItem]
    members: list[int]
    model: str  # "base" or "advanced"
    model_version: str | None
    strategy: str | None
    member_fit: list[float] | None
    taste_match: list[list[float]] | None = None
    notes: list[str] = field(default_factory=list)  # e.g. cold-start members, padding used


def build_playlist(members: list[int], length: int, *, model: str = "advanced",
                   strategy: str | None = None, exclude_explicit: bool = False,
                   seed: int | None = None) -> Playlist:
    from flask import current_app

    from app.recommender.strategies import Rules, check_strategy

    members = list(dict.fromkeys(int(m) for m in members))
    if not members:
        raise ValueError("a playlist needs at least one member")
    if length < 1:
        raise ValueError("playlist length must be at least 1")
    if model not in ("advanced", "base"):
        raise ValueError(f"unknown model {model!r}; use 'advanced' or 'base'")
    strategy = check_strategy(strategy or current_app.config.get("DEFAULT_STRATEGY") or None)
    rules = Rules(length=int(length),
                  max_per_artist=int(current_app.config.get("MAX_TRACKS_PER_ARTIST", 3)),
                  exclude_explicit=bool(exclude_explicit))
    holder = get_holder()
    state = holder.current()
    if model == "base":
        return _base(holder, state, members, rules, seed)
    return _advanced(state, members, rules, strategy)


def model_status() -> dict:
    """For /health and the admin page: {"version": str|None, "loaded": bool, "error": str|None,
    "fallback": bool} (fallback: the active version does not load, another one serves).

    Also: ``active_version`` (what the database says should serve), ``loaded_at``,
    ``tracks``/``new_tracks`` (catalogue size, tracks scored from features only),
    ``memory_bytes`` of the loaded model.
    """
    state = get_holder().current()
    rec = state.recommender
    return {
        "version": rec.version if rec else None,
        "loaded": rec is not None,
        "error": state.error,
        "fallback": state.fallback,
        "active_version": state.active_version,
        "loaded_at": state.loaded_at,
        "tracks": len(state.catalogue) if state.catalogue is not None else 0,
        "new_tracks": rec.n_new_items if rec else 0,
        "memory_bytes": rec.memory_bytes() if rec else 0,
    }


# ---------------------------------------------------------------------------------------------
# the per-process holder


@dataclass(frozen=True)
class ServingState:
    """Immutable snapshot; requests read one and never see a half-updated one."""

    catalogue: object | None = None       # Catalogue
    catalogue_signature: tuple | None = None
    recommender: object | None = None     # Recommender
    checksum: str | None = None
    active_version: str | None = None
    error: str | None = None
    loaded_at: float | None = None
    fallback: bool = False  # serving another version because the active one does not load
    failed: tuple | None = None  # (pointer, monotonic time, error) of the last failed load


RETRY_FAILED_SECONDS = 60.0
FALLBACK_CANDIDATES = 5  # older versions tried, newest first, by a worker with nothing loaded


class ModelHolder:
    def __init__(self, app) -> None:
        self.app = app
        self.state = ServingState()
        self.lock = threading.Lock()
        self.checked_at = float("-inf")
        self.interval = float(app.config.get("MODEL_RELOAD_SECONDS", 5))

    def current(self) -> ServingState:
        """The state to serve with; refreshes it first when the interval has passed."""
        if time.monotonic() - self.checked_at >= self.interval:
            # the first load blocks everyone (nothing to serve yet); later ones only one thread
            blocking = self.state.catalogue is None
            if self.lock.acquire(blocking=blocking):
                try:
                    if time.monotonic() - self.checked_at >= self.interval:
                        self.refresh()
                finally:
                    self.lock.release()
        return self.state

    def refresh(self) -> None:
        """Reload what changed in the database: the catalogue, the active version, or both."""
        from sqlalchemy import func, select

        from app.db import ModelVersion, Track
        from app.extensions import db
        from app.data.loaders import load_catalogue

        old = self.state
        try:  # own short connection: never touch the request's session or transaction
            with db.engine.connect() as conn:
                signature = tuple(conn.execute(
                    select(func.count(Track.id), func.max(Track.id))).one())
                row = conn.execute(
                    select(ModelVersion.version, ModelVersion.path, ModelVersion.checksum)
                    .where(ModelVersion.active.is_(True))
                    .order_by(ModelVersion.id.desc()).limit(1)).first()
            pointer = (row[0], row[1], row[2]) if row else None
        except Exception as exc:  # database unreachable: keep serving what we have
            self.state = _replace(old, error=f"database unavailable: {exc}")
            self.checked_at = time.monotonic()
            return
        catalogue = old.catalogue
        if catalogue is None or signature != old.catalogue_signature:
            catalogue = load_catalogue()
        recommender, checksum, error = old.recommender, old.checksum, None
        fallback, failed = old.fallback, old.failed
        active_version = pointer[0] if pointer else None
        rebuild = catalogue is not old.catalogue
        if pointer is None:
            fallback = False
            if recommender is None:
                error = "no trained model version is active: run `flask --app wsgi model train`"
        elif pointer[2] != old.checksum or recommender is None:
            if failed is not None and failed[0] == pointer and \
                    time.monotonic() - failed[1] < RETRY_FAILED_SECONDS:
                error = failed[2]  # known bad: do not read and hash it again yet
            else:
                try:
                    recommender, checksum = self._load(pointer, catalogue), pointer[2]
                    rebuild, fallback, failed = False, False, None
                except Exception as exc:
                    error = f"model version {pointer[0]} cannot be loaded: {exc}"
                    failed = (pointer, time.monotonic(), error)
                    self.app.logger.error("%s", error)  # /health shows a reason code only
            if error is not None and recommender is None:
                recommender, checksum = self._fallback(pointer, catalogue)
                rebuild = False
            if error is not None and recommender is not None:
                fallback = True
        elif old.error and old.checksum == pointer[2]:
            error = None
        if rebuild and recommender is not None:
            try:  # new tracks: same model, representations for the new ones from features
                from app.recommender.scoring import Recommender

                recommender = self._with_retrieval(
                    Recommender(recommender.model, catalogue, version=recommender.version),
                    pointer)
            except Exception as exc:
                error = f"catalogue refresh failed: {exc}"
        if recommender is not None and pointer and recommender.version == pointer[0]:
            fallback = False
        if error is None and recommender is not None and pointer and \
                recommender.version != pointer[0]:
            error = f"active version {pointer[0]} is not loaded"
        self.state = ServingState(
            catalogue=catalogue, catalogue_signature=signature, recommender=recommender,
            checksum=checksum, active_version=active_version, error=error,
            loaded_at=time.time() if recommender is not old.recommender else old.loaded_at,
            fallback=fallback, failed=failed)
        self.checked_at = time.monotonic()

    def _fallback(self, active: tuple[str, str, str], catalogue):
        """(recommender, checksum) of the newest other version that loads, else (None, None)."""
        from sqlalchemy import select

        from app.db import ModelVersion
        from app.extensions import db

        try:
            with db.engine.connect() as conn:
                rows = conn.execute(
                    select(ModelVersion.version, ModelVersion.path, ModelVersion.checksum)
                    .where(ModelVersion.version != active[0])
                    .order_by(ModelVersion.id.desc()).limit(FALLBACK_CANDIDATES)).all()
        except Exception:  # noqa: BLE001 - no database, no fallback; the error is reported
            return None, None
        for version, path, checksum in rows:
            try:
                return self._load((version, path, checksum), catalogue), checksum
            except Exception as exc:  # noqa: BLE001 - try the next older one
                self.app.logger.warning("fallback model version %s does not load either: %s",
                                        version, exc)
        return None, None

    def _load(self, pointer: tuple[str, str, str], catalogue):
        from app.recommender import artifact
        from app.modelstore.registry import artifact_folder
        from app.recommender.scoring import Recommender

        version, path, checksum = pointer
        folder = artifact_folder(version, path, self.app.config["MODEL_DIR"])
        art = artifact.load(folder, expected_checksum=checksum)
        return self._with_retrieval(Recommender(art.model, catalogue, version=version), pointer)

    def _with_retrieval(self, rec, pointer):
        """Catalogues past RETRIEVAL_MIN_TRACKS get ANN candidate retrieval (bench_catalogue)."""
        from app.recommender import retrieval
        from app.modelstore.registry import artifact_folder

        min_tracks = int(self.app.config.get("RETRIEVAL_MIN_TRACKS", retrieval.DEFAULT_MIN_TRACKS))
        if len(rec.items) >= min_tracks and pointer:
            folder = Path(artifact_folder(pointer[0], pointer[1], self.app.config["MODEL_DIR"]))
            retrieval.attach(rec, folder=folder / "ann", min_tracks=min_tracks)
        return rec


def _replace(state: ServingState, **changes) -> ServingState:
    from dataclasses import replace

    return replace(state, **changes)


_holders_lock = threading.Lock()


def get_holder() -> ModelHolder:
    from flask import current_app

    app = current_app._get_current_object()
    holder = app.extensions.get("model_holder")
    if holder is None:
        with _holders_lock:
            holder = app.extensions.get("model_holder")
            if holder is None:
                holder = app.extensions["model_holder"] = ModelHolder(app)
    return holder


def reset_holder() -> None:
    """Forget the loaded state (tests; after `model activate` in the same process)."""
    from flask import current_app

    current_app.extensions.pop("model_holder", None)


# ---------------------------------------------------------------------------------------------
# playlists


def _user_genres(user_ids: list[int]) -> dict[int, list[str]]:
    """Existing users among ``user_ids`` with their favourite genres (one query)."""
    from sqlalchemy import select

    from app.db import Genre, User, user_genres
    from app.extensions import db

    rows = db.session.execute(
        select(User.user_id, Genre.name)
        .outerjoin(user_genres, user_genres.c.user_id == User.user_id)
        .outerjoin(Genre, Genre.id == user_genres.c.genre_id)
        .where(User.user_id.in_(user_ids))).all()
    found: dict[int, list[str]] = {}
    for uid, genre in rows:
        found.setdefault(int(uid), [])
        if genre is not None:
            found[int(uid)].append(genre)
    return found


def _members(rec, members: list[int]) -> tuple[list, list[str]]:
    """Model rows for every member; only members the model has not trained cost a query."""
    cold = [u for u in members if not rec.is_warm(u)]
    genres = _user_genres(cold) if cold else {}
    unknown = [u for u in cold if u not in genres]
    if unknown:
        raise UnknownUsersError(unknown)
    out, notes = [], []
    for u in members:
        m = rec.member(u, genres.get(u))
        if m.kind == "genres":
            notes.append(f"user {u} has no listening history in the model: represented by "
                         f"favourite genres")
        elif m.kind == "popular":
            notes.append(f"user {u} has neither listening history nor favourite genres: "
                         f"popularity profile")
        out.append(m)
    return out, notes


def _items(catalogue, indices: list[int], scores: np.ndarray | None, members: list[int],
           for_members: list[list[int]] | None = None,
           turns: list[int] | None = None) -> list[PlaylistItem]:
    """Playlist items; ``for_members`` and ``turns`` hold member positions, turned into ids."""
    meta = catalogue.meta
    items = []
    for pos, i in enumerate(indices):
        turn = turns[pos] if turns else -1
        items.append(PlaylistItem(
            track_id=str(catalogue.item_ids[i]),
            name=str(catalogue.names[i]) if catalogue.names is not None else "",
            artist=catalogue.artist_name(i),
            artist_id=catalogue.artist_id(i),
            genres=catalogue.genres_of(i),
            duration_ms=int(catalogue.durations[i]) if catalogue.durations is not None else 0,
            explicit=bool(meta.explicit[i]),
            member_scores=[round(float(x), 4) for x in scores[pos]] if scores is not None
            else None,
            for_members=sorted(members[j] for j in for_members[pos]) if for_members is not None
            else None,
            turn_of=members[turn] if turn >= 0 else None,
        ))
    return items


def _advanced(state: ServingState, members: list[int], rules, strategy: str | None) -> Playlist:
    from app.recommender.strategies import NotEnoughSongs

    rec = state.recommender
    if rec is None:
        raise ModelUnavailableError(state.error or "no trained model version is loaded")
    rows, notes = _members(rec, members)
    if rec.cold_blend is not None:  # tracks newer than the model: content profiles needed
        _content_profiles(rec, rows)
    try:
        result = rec.recommend(rows, rules, strategy)
    except NotEnoughSongs as exc:
        raise ValueError(str(exc)) from exc
    result = in_listening_order(rec.catalogue, result, len(members))
    return Playlist(
        items=_items(rec.catalogue, result.indices, result.member_scores, members,
                     result.for_members, result.turns),
        members=members, model="advanced", model_version=rec.version, strategy=result.strategy,
        member_fit=[round(float(x), 4) for x in result.member_fit],
        taste_match=[[round(float(x), 4) for x in row] for row in result.taste_match],
        notes=notes + result.notes)


def in_listening_order(catalogue, result, n_members: int):
    """``result`` (a GroupResult) with its tracks in listening order (ordering.py)."""
    from dataclasses import replace

    from app.recommender.ordering import listening_order

    idx = result.indices
    turns = result.turns or [-1] * len(idx)
    fors = result.for_members or [[] for _ in idx]
    order = listening_order(fors, catalogue.meta.artist[np.asarray(idx)],
                            catalogue.audio_feature("tempo", idx),
                            catalogue.audio_feature("energy", idx), n_members)
    return replace(result, indices=[idx[i] for i in order],
                   member_scores=result.member_scores[order],
                   turns=[turns[i] for i in order], for_members=[fors[i] for i in order])


def _content_profiles(rec, rows: list) -> None:
    """Fill ``Member.content`` from each member's listening (the history cache), else from
    their favourite genres: the cold-start blend of tracks the model never saw."""
    ids = [m.user_id for m in rows]
    histories = _history_cache(get_holder()).get(rec.catalogue, ids)
    need_genres = [u for u, h in zip(ids, histories) if not len(h)]
    genres = _user_genres(need_genres) if need_genres else {}
    for m, h in zip(rows, histories):
        m.content = rec.cold_blend.profile(h, genres.get(m.user_id))


def _histories(catalogue, members: list[int]) -> list[np.ndarray]:
    from sqlalchemy import select

    from app.db import ListeningEvent
    from app.extensions import db

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
        idx = catalogue.index.get_indexer(by_user[u]) if by_user[u] else np.zeros(0, np.int64)
        out.append(idx[idx >= 0])
    return out


class _HistoryCache:
    """Per-process cache of what the base model draws from: each user's played/liked tracks.

    Why (issue 7, bench/RESULTS.md): the history query read ~1,000 events per member and cost
    more CPU than everything else in a /predict request together. Histories change only when
    listening events are imported, so the cache is dropped when the catalogue object changes or
    ``max(listening_events.id)`` moves (checked at most every MODEL_RELOAD_SECONDS; an import
    is visible to the base model that much later, as new tracks are). LRU-bounded.
    """

    MAX_USERS = 20_000

    def __init__(self, interval: float):
        from collections import OrderedDict

        self.interval = interval
        self.users: OrderedDict[int, np.ndarray] = OrderedDict()
        self.key: tuple | None = None
        self.checked_at = float("-inf")
        self.lock = threading.Lock()

    def get(self, catalogue, members: list[int]) -> list[np.ndarray]:
        if time.monotonic() - self.checked_at >= self.interval:
            from sqlalchemy import func, select

            from app.db import ListeningEvent
            from app.extensions import db

            key = (id(catalogue), db.session.scalar(select(func.max(ListeningEvent.id))))
            with self.lock:
                if key != self.key:
                    self.users.clear()
                    self.key = key
                self.checked_at = time.monotonic()
        with self.lock:
            found = {u: self.users.get(u) for u in members}
            for u in members:
                if found[u] is not None:
                    self.users.move_to_end(u)
        missing = [u for u in members if found[u] is None]
        if missing:
            fresh = _histories(catalogue, missing)
            with self.lock:
                for u, h in zip(missing, fresh):
                    found[u] = self.users[u] = h.astype(np.int32)
                while len(self.users) > self.MAX_USERS:
                    self.users.popitem(last=False)
        return [found[u] for u in members]


def _history_cache(holder: ModelHolder) -> _HistoryCache:
    cache = getattr(holder, "history_cache", None)
    if cache is None:
        cache = holder.history_cache = _HistoryCache(holder.interval)
    return cache


def _base(holder: ModelHolder, state: ServingState, members: list[int], rules,
          seed: int | None) -> Playlist:
    from app.recommender.attribution import for_members
    from app.recommender.base import base_playlist
    from app.recommender.strategies import NO_TURN

    found = _user_genres(members)
    unknown = [u for u in members if u not in found]
    if unknown:
        raise UnknownUsersError(unknown)
    catalogue = state.catalogue
    if catalogue is None or len(catalogue) == 0:
        raise ValueError("the catalogue is empty: import an export first")
    indices, notes = base_playlist(_history_cache(holder).get(catalogue, members), catalogue,
                                   rules, seed)
    rec = state.recommender
    scores = fit = match = attributed = None
    if rec is not None and rec.catalogue is catalogue:
        rows = [rec.member(u, found.get(u)) for u in members]
        scores, fit, match, favourite = rec.describe(rows, indices)
        attributed = for_members([NO_TURN] * len(indices), favourite)
    return Playlist(
        items=_items(catalogue, indices, scores, members, attributed), members=members,
        model="base",
        model_version=rec.version if rec is not None else None, strategy=None,
        member_fit=[round(float(x), 4) for x in fit] if fit is not None else None,
        taste_match=[[round(float(x), 4) for x in r] for r in match] if match is not None
        else None,
        notes=notes)
