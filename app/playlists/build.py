"""Build a playlist for a settled request: the members' data from the database, the playlist
from the recommender, the names and artists from the catalogue. Nothing is recorded here."""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
from flask import current_app

from app.playlists.errors import CannotBuild, ModelUnavailable, UnknownUsers
from app.playlists.histories import known_histories, playlist_evidence
from app.playlists.holder import ServingState, get_holder
from app.recommender.catalogue import Catalogue
from app.recommender.group import GroupInput, HistoryModel, LightFMModel
from app.recommender.playlist import GroupPlaylist
from app.recommender.reasons import track_reasons
from app.recommender.strategies import KNOWN_TURN_LIMIT, REGISTRY, NotEnoughSongs, Rules


@dataclass(frozen=True)
class TrackDetails:
    """What the catalogue says about one of the playlist's tracks."""
    track_id: str
    name: str
    artist: str
    artist_id: str
    genres: tuple[str, ...]
    duration_ms: int
    explicit: bool


@dataclass(frozen=True)
class Playlist:
    """The recommender's playlist (``group``, read as it is, under its own field names) and
    what the catalogue and the database add beside it: the members' user ids (member
    positions in ``group`` index ``members``), the tracks' details (in ``group.indices``'
    order), why each track is there, and the JSON API's answer."""
    group: GroupPlaylist
    members: list[int]
    tracks: list[TrackDetails]
    # per track: the member position a reason speaks for (None: the group) and the reason's
    # words (``reasons.py``); None when no model attributed the tracks
    reasons: list[tuple[int | None, str]] | None = None
    # the JSON API's answer (id, name, artist per track), joined from the catalogue's fragments
    answer: bytes = b"[]"


def model_for(state: ServingState, name: str) -> LightFMModel | HistoryModel:
    if name == "base":
        base = state.base()
        if base is None:
            raise CannotBuild("the catalogue is empty: import an export first")
        return base
    advanced = state.advanced()
    if advanced is None:
        raise ModelUnavailable(state.error or "no trained model version is loaded")
    return advanced


def group_input(model: LightFMModel | HistoryModel, members: list[int], *,
                with_histories: bool = True, strategy: str | None = None) -> GroupInput:
    """What ``model`` needs to know about the members; raises UnknownUsers for members that
    neither the model nor the database knows. ``turns_known`` also reads what each member is
    known to love from their own events."""
    histories = None
    if with_histories and model.needs_history:
        histories = get_holder().histories.get(model.catalogue, members)
    asked = model.needs_genres(members, histories)
    genres = get_holder().genres.get(asked)
    unknown = [u for u in asked if u not in genres]
    if unknown:
        raise UnknownUsers(unknown)
    known = limit = None
    spec = REGISTRY.get(strategy) if strategy is not None else None
    if spec is not None and spec.uses_known and isinstance(model, LightFMModel):
        known = known_histories(model.catalogue, members,
                                model.recommender.model.params.weights)
        limit = int(current_app.config.get("KNOWN_TURN_LIMIT", KNOWN_TURN_LIMIT))
    return GroupInput(user_ids=members, genres=genres, histories=histories, known=known,
                      known_limit=limit)


def build(model: LightFMModel | HistoryModel, members: list[int], rules: Rules, strategy: str,
          seed: int | None = None) -> Playlist:
    group = group_input(model, members, strategy=strategy)
    try:
        result = model.recommend(group, rules, strategy, seed)
    except NotEnoughSongs as exc:
        raise CannotBuild(str(exc)) from None
    return _playlist(model.catalogue, result, members, _kinds(model, members))


def _kinds(model: LightFMModel | HistoryModel, members: list[int]) -> list[str] | None:
    rec = model.recommender if isinstance(model, LightFMModel) else (
        model.describer.recommender if model.describer is not None else None)
    return None if rec is None else ["trained" if rec.is_warm(u) else "genres" for u in members]


def _playlist(catalogue: Catalogue, result: GroupPlaylist, members: list[int],
              kinds: list[str] | None = None) -> Playlist:
    reasons = (_reasons(catalogue, result, members, kinds)
               if result.for_members is not None and result.indices else None)
    return Playlist(group=result, members=members, tracks=_tracks(catalogue, result.indices),
                    reasons=reasons, answer=catalogue.answer_json(result.indices))


def _tracks(catalogue: Catalogue, indices: list[int]) -> list[TrackDetails]:
    """The tracks' details, each made once per catalogue and kept (they never change while
    the catalogue lives): a playlist then costs one dictionary look-up per track."""
    known = _details_of(catalogue)
    out = [known.get(i) for i in indices]
    if None in out:
        missing = [i for i, d in zip(indices, out) if d is None]
        made = dict(zip(missing, _make_details(catalogue, missing)))
        with _DETAILS_LOCK:
            if len(known) + len(made) > _DETAILS_MAX:
                known.clear()  # a bound for huge catalogues; refilled by the tracks served
            known.update(made)
        out = [d if d is not None else made[i] for i, d in zip(indices, out)]
    return out  # type: ignore[return-value]


# The details of one catalogue at a time (the serving one), keyed by catalogue position; held
# by a weak reference, so that a replaced catalogue is freed as it was before.
_DETAILS_MAX = 200_000
_DETAILS_LOCK = threading.Lock()
_details: tuple[weakref.ref, dict[int, TrackDetails]] | None = None


def _details_of(catalogue: Catalogue) -> dict[int, TrackDetails]:
    global _details
    held = _details
    if held is None or held[0]() is not catalogue:
        held = _details = (weakref.ref(catalogue), {})
    return held[1]


def _make_details(catalogue: Catalogue, indices: list[int]) -> list[TrackDetails]:
    """The catalogue columns gathered for ``indices`` (``tolist`` gives plain Python values)."""
    meta = catalogue.meta
    idx = np.asarray(indices, dtype=np.int64)
    artist = meta.artist[idx]
    names = catalogue.names[idx].tolist() if catalogue.names is not None else [""] * len(idx)
    durations = (catalogue.durations[idx].tolist() if catalogue.durations is not None
                 else [0] * len(idx))
    return [TrackDetails(track_id=track_id, name=str(name), artist=artist_name,
                         artist_id=artist_id, genres=tuple(catalogue.genres_of(i)),
                         duration_ms=int(duration), explicit=explicit)
            for i, track_id, name, artist_name, artist_id, duration, explicit in zip(
                idx.tolist(), catalogue.item_ids[idx].astype(str).tolist(), names,
                meta.artist_names[artist].astype(str).tolist(),
                meta.artist_ids[artist].astype(str).tolist(), durations,
                meta.explicit[idx].astype(bool).tolist())]


def _reasons(catalogue: Catalogue, result: GroupPlaylist, members: list[int],
             kinds: list[str] | None) -> list[tuple[int | None, str]]:
    """Why each track is there, from the members' own counts on the playlist's artists."""
    counts = get_holder().evidence.get(catalogue, members)
    likes, plays, artist_plays = playlist_evidence(counts, catalogue, result.indices)
    return track_reasons(result.for_members, result.turns, likes, plays, artist_plays, kinds)
