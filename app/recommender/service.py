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
"""
from __future__ import annotations

from dataclasses import dataclass, field


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
    raise NotImplementedError("implemented by the recommender work (issue 3)")


def model_status() -> dict:
    """For /health and the admin page: {"version": str|None, "loaded": bool, "error": str|None}."""
    raise NotImplementedError("implemented by the recommender work (issue 3)")
