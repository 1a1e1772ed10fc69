"""A playlist request with every default settled once, from the configuration, before building.

Everything downstream (the recommender, the record, the log line) reads the settled values
and never consults the configuration or re-checks them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flask import current_app

from app.playlists.errors import InvalidRequest
from app.recommender.strategies import Rules, check_strategy

Choice = Literal["ab", "base", "advanced"]
CHOICES = ("ab", "base", "advanced")


@dataclass(frozen=True)
class PlaylistRequest:
    members: tuple[int, ...]  # the requesting user first; no duplicates
    rules: Rules
    choice: Choice            # "ab": the requesting user's arm decides
    strategy: str             # settled: the client's, else the configured, else the default
    strategy_named: bool      # the client or the configuration named it (recorded as asked)
    endpoint: str = "web"
    seed: int | None = None   # base model: the same seed gives the same playlist
    # Evidence: an authenticated API client asked (``client_id``), so an "ab" playlist counts
    # in the experiment. ``builder``: the public builder, inside the experiment only where an
    # admin included it.
    trusted: bool = False
    client_id: int | None = None
    builder: bool = False

    @property
    def user_id(self) -> int:
        return self.members[0]

    @property
    def length(self) -> int:
        return self.rules.length

    @classmethod
    def settle(cls, members, length: int, *, choice: str = "advanced",
               strategy: str | None = None, exclude_explicit: bool = False,
               endpoint: str = "web", seed: int | None = None,
               client_id: int | None = None, builder: bool = False) -> "PlaylistRequest":
        config = current_app.config
        ids = tuple(dict.fromkeys(int(m) for m in members))
        if not ids:
            raise InvalidRequest("a playlist needs at least one member")
        if int(length) < 1:
            raise InvalidRequest("playlist length must be at least 1")
        if choice not in CHOICES:
            raise InvalidRequest(f"unknown model {choice!r}; use one of {', '.join(CHOICES)}")
        named = strategy or config.get("DEFAULT_STRATEGY") or None
        try:
            settled = check_strategy(named)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        rules = Rules(length=int(length),
                      max_per_artist=int(config["MAX_TRACKS_PER_ARTIST"]),
                      exclude_explicit=bool(exclude_explicit))
        return cls(members=ids, rules=rules, choice=choice,  # type: ignore[arg-type]
                   strategy=settled, strategy_named=named is not None, endpoint=endpoint,
                   seed=seed, trusted=client_id is not None, client_id=client_id,
                   builder=builder)
