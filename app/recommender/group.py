"""The base model and the LightFM model behind one ``recommend`` interface.

The playlist service asks a model what it needs to know about the members (favourite genres of
the members it cannot represent otherwise; listening histories), reads that from the database,
and hands it over as a ``GroupInput``; the model never reads the database itself. Both models
answer with the one playlist shape (``playlist.GroupPlaylist``): catalogue indices plus, where a
trained model can tell, how much each member likes each track and whom each track is for,
signed with the model's name and version.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from app.recommender.attribution import for_members
from app.recommender.base import base_playlist
from app.recommender.catalogue import Catalogue
from app.recommender.members import Member
from app.recommender.ordering import listening_order
from app.recommender.playlist import GroupPlaylist
from app.recommender.scoring import Recommender
from app.recommender.strategies import NO_TURN, Rules


@dataclass(frozen=True)
class GroupInput:
    user_ids: list[int]
    genres: dict[int, list[str]] = field(default_factory=dict)  # for the ids needs_genres named
    histories: list[np.ndarray] | None = None  # played/liked catalogue indices per member
    # ``turns_known``: per member their heaviest known tracks (evidence.py), and how many of
    # a member's turns may take one
    known: list[np.ndarray] | None = None
    known_limit: int | None = None


class LightFMModel:
    """The advanced model: the trained recommender with the group strategy, in listening order."""

    name = "advanced"

    def __init__(self, recommender: Recommender):
        self.recommender = recommender
        self.catalogue: Catalogue = recommender.catalogue
        self.version = recommender.version

    def needs_genres(self, user_ids: list[int],
                     histories: list[np.ndarray] | None = None) -> list[int]:
        """Members without trained history (represented by their favourite genres), and, for
        the cold-start blend, members with no listening at all (profiled by their genres)."""
        rec = self.recommender
        blend = rec.cold_blend is not None and histories is not None
        return [u for j, u in enumerate(user_ids)
                if not rec.is_warm(u) or (blend and not len(histories[j]))]

    @property
    def needs_history(self) -> bool:
        """Tracks newer than the model are scored from the members' listening (content.py)."""
        return self.recommender.cold_blend is not None

    def members(self, group: GroupInput) -> tuple[list[Member], list[str]]:
        rec = self.recommender
        rows, notes = [], []
        for u in group.user_ids:
            m = rec.member(u, group.genres.get(u))
            if m.kind == "genres":
                notes.append(f"user {u} has no listening history in the model: represented by "
                             f"favourite genres")
            elif m.kind == "popular":
                notes.append(f"user {u} has neither listening history nor favourite genres: "
                             f"popularity profile")
            rows.append(m)
        if group.known is not None:
            rows = [replace(m, known=k) if m.kind == "trained" else m
                    for m, k in zip(rows, group.known)]
        if rec.cold_blend is not None and group.histories is not None:
            for m, h in zip(rows, group.histories):
                m.content = rec.cold_blend.profile(h, None if len(h) else
                                                   group.genres.get(m.user_id))
        return rows, notes

    def recommend(self, group: GroupInput, rules: Rules, strategy: str,
                  seed: int | None = None) -> GroupPlaylist:
        rows, notes = self.members(group)
        result = self.recommender.recommend(rows, rules, strategy, known_limit=group.known_limit)
        return in_listening_order(self.catalogue, result, len(rows), model=self.name,
                                  version=self.version, notes=notes + result.notes)

    def taste_match(self, group: GroupInput) -> np.ndarray:
        rows, _ = self.members(group)
        return self.recommender.taste_match(np.vstack([m.row for m in rows]).astype(np.float32))


class HistoryModel:
    """The A/B control: random tracks from the members' history, in their random order (the
    original system's). Described by the trained model when one is loaded for this catalogue."""

    name = "base"
    needs_history = True

    def __init__(self, catalogue: Catalogue, recommender: Recommender | None = None):
        self.catalogue = catalogue
        self.describer = LightFMModel(recommender) if recommender is not None and \
            recommender.catalogue is catalogue else None
        self.version = recommender.version if recommender is not None else None

    def needs_genres(self, user_ids: list[int],
                     histories: list[np.ndarray] | None = None) -> list[int]:
        """The members the describing model has not trained (their genres describe them, and
        the query is their existence check); everyone when there is no describing model."""
        if self.describer is None:
            return list(user_ids)
        return self.describer.needs_genres(user_ids)

    def recommend(self, group: GroupInput, rules: Rules, strategy: str | None = None,
                  seed: int | None = None) -> GroupPlaylist:
        histories = group.histories if group.histories is not None else \
            [np.zeros(0, np.int64) for _ in group.user_ids]
        indices, notes = base_playlist(histories, self.catalogue, rules, seed)
        scores = fit = match = attributed = None
        if self.describer is not None:
            rows = [self.describer.recommender.member(u, group.genres.get(u))
                    for u in group.user_ids]
            scores, fit, match, favourite = self.describer.recommender.describe(rows, indices)
            attributed = for_members([NO_TURN] * len(indices), favourite)
        return GroupPlaylist(
            indices=indices, member_scores=scores, member_fit=fit, taste_match=match,
            strategy=None, notes=notes, turns=None, for_members=attributed, model=self.name,
            version=self.version)


def in_listening_order(catalogue: Catalogue, result: GroupPlaylist, n_members: int,
                       **changes) -> GroupPlaylist:
    """``result`` with its tracks in listening order (ordering.py), and ``changes``."""
    idx = result.indices
    turns = result.turns or [NO_TURN] * len(idx)
    fors = result.for_members or [[] for _ in idx]
    order = listening_order(fors, catalogue.meta.artist[np.asarray(idx)],
                            catalogue.audio_feature("tempo", idx),
                            catalogue.audio_feature("energy", idx), n_members)
    return replace(result, indices=[idx[i] for i in order],
                   member_scores=result.member_scores[order],
                   turns=[turns[i] for i in order], for_members=[fors[i] for i in order],
                   **changes)
