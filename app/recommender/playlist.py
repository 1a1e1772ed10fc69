"""One group's playlist, the one shape it has from the scorer to the pages.

The recommender fills it (tracks as catalogue positions, members as positions in the group as
asked); the playlist service adds only what the catalogue and the database know (the members'
user ids, the tracks' names, the answer's bytes, the reasons) beside it, and the record and the
pages read these fields under these names.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupPlaylist:
    indices: list[int]                # catalogue positions, in the order they are played
    member_scores: np.ndarray | None  # playlist x members: expected liking, 0-1
    member_fit: np.ndarray | None     # members: how well the whole playlist fits each, 0-1
    taste_match: np.ndarray | None    # members x members, 0-1
    strategy: str | None              # None: the base model, which has none
    notes: list[str]                  # e.g. cold-start members, padding, a relaxed artist cap
    # per track: the member position whose turn chose it (-1: none), and the sorted member
    # positions it is for (that member and those it is a favourite of; attribution.py);
    # None where no trained model could tell (the base model without one)
    turns: list[int] | None = None
    for_members: list[list[int]] | None = None
    # the model that answered ("advanced" or "base") and its trained version, if any
    model: str | None = None
    version: str | None = None
