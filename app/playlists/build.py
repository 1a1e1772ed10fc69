"""Build a playlist for a settled request: the members' data from the database, the tracks from
the recommender, the names and artists from the catalogue. Nothing is recorded here."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flask import current_app

from app.playlists.errors import CannotBuild, ModelUnavailable, UnknownUsers
from app.playlists.holder import ServingState, get_holder
from app.playlists.histories import known_histories, playlist_evidence, user_genres
from app.recommender.catalogue import Catalogue
from app.recommender.group import GroupInput, GroupPlaylist, HistoryModel, LightFMModel
from app.recommender.reasons import track_reasons
from app.recommender.strategies import KNOWN_TURN_LIMIT, NotEnoughSongs, Rules


@dataclass(frozen=True)
class PlaylistItem:
    track_id: str
    name: str
    artist: str
    artist_id: str
    genres: list[str]
    duration_ms: int
    explicit: bool
    member_scores: list[float] | None  # expected liking 0-1, in the order of Playlist.members
    # user ids this track is for (the turn member and members it is a favourite of) and the
    # member whose turn chose it; None when no model could tell (base without a model)
    for_members: list[int] | None = None
    turn_of: int | None = None
    # why the track is here (``reasons.py``): "group" for a compromise that is nobody's, else a
    # few words for ``reason_member``
    reason: str | None = None
    reason_member: int | None = None


@dataclass(frozen=True)
class Playlist:
    items: list[PlaylistItem]
    members: list[int]
    model: str  # "base" or "advanced"
    model_version: str | None
    strategy: str | None
    member_fit: list[float] | None  # how well the whole playlist fits each member, 0-1
    taste_match: list[list[float]] | None = None  # members x members, 0-1
    notes: list[str] = field(default_factory=list)  # e.g. cold-start members, padding used
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
    genres = user_genres(asked)
    unknown = [u for u in asked if u not in genres]
    if unknown:
        raise UnknownUsers(unknown)
    known = limit = None
    if strategy == "turns_known" and isinstance(model, LightFMModel):
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
    said = (_reasons(catalogue, result, members, kinds)
            if result.for_members is not None and len(result.indices) else None)
    items = _items(catalogue, result, members, said)
    return Playlist(
        items=items, members=members, model=result.model,
        model_version=result.version, strategy=result.strategy,
        member_fit=_rounded(result.member_fit), taste_match=_rounded(result.taste_match),
        notes=result.notes, answer=catalogue.answer_json(result.indices))


def _items(catalogue: Catalogue, result: GroupPlaylist, members: list[int],
           said: list[tuple[int | None, str]] | None = None) -> list[PlaylistItem]:
    """The playlist's items, with their reasons when ``said``; the catalogue columns are
    gathered once per playlist (``tolist`` gives plain Python values), not looked up track by
    track."""
    meta = catalogue.meta
    idx = np.asarray(result.indices, dtype=np.int64)
    artist = meta.artist[idx]
    names = catalogue.names[idx].tolist() if catalogue.names is not None else [""] * len(idx)
    durations = (catalogue.durations[idx].tolist() if catalogue.durations is not None
                 else [0] * len(idx))
    fors, turns = result.for_members, result.turns
    scores = _rounded(result.member_scores)
    return [PlaylistItem(
        track_id=track_id, name=str(name), artist=artist_name, artist_id=artist_id,
        genres=catalogue.genres_of(i), duration_ms=int(duration), explicit=explicit,
        member_scores=scores[pos] if scores is not None else None,
        for_members=sorted(members[j] for j in fors[pos]) if fors is not None else None,
        turn_of=members[turns[pos]] if turns and turns[pos] >= 0 else None,
        reason=said[pos][1] if said is not None else None,
        reason_member=(members[said[pos][0]] if said is not None and said[pos][0] is not None
                       else None),
    ) for pos, (i, track_id, name, artist_name, artist_id, duration, explicit) in enumerate(zip(
        idx.tolist(), catalogue.item_ids[idx].astype(str).tolist(), names,
        meta.artist_names[artist].astype(str).tolist(),
        meta.artist_ids[artist].astype(str).tolist(), durations,
        meta.explicit[idx].astype(bool).tolist()))]


def _reasons(catalogue: Catalogue, result: GroupPlaylist, members: list[int],
             kinds: list[str] | None) -> list[tuple[int | None, str]]:
    """Per track, (member position, reason), from the members' own counts on the playlist's
    tracks and artists."""
    counts = get_holder().evidence.get(catalogue, members)
    likes, plays, artist_plays = playlist_evidence(counts, catalogue, result.indices)
    return track_reasons(result.for_members, result.turns, likes, plays, artist_plays, kinds)


def _rounded(values: np.ndarray | None):
    """Four decimals (once, here): plenty for 0-1 likings, and what the prediction stores.
    ``tolist`` gives the same Python floats as ``float(x)`` per element, at C speed.

    The model's numbers are float32, and a float32 times 10⁴ is exact in float64 (24 + 10
    significant bits), so ``rint`` (half to even) of it and a division by 10⁴ (correctly
    rounded) give exactly Python's ``round(x, 4)``, in one pass instead of a call per number
    (tests/playlists/test_serving.py compares them)."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.dtype == np.float32:
        return (np.rint(values.astype(np.float64) * 1e4) / 1e4).tolist()
    if values.ndim == 1:
        return [round(x, 4) for x in values.tolist()]
    return [[round(x, 4) for x in row] for row in values.tolist()]
