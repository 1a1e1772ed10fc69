"""How a group's members come in and how a group's playlist goes out: the types that the
exact scorer (``scoring``) and candidate retrieval (``retrieval``) share, so that neither has to
import the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

SKIP_PENALTY = 2.0  # standard deviations a "keeps skipping" track loses for that member
# turns: a member the model knows only by favourite genres (or not at all) is owed this many
# fair shares of turns: their model favourites are far less often true ones (EVALUATION.md).
COLD_TURNS = 2.0


@dataclass
class Member:
    """How one member is represented: ``kind`` is trained / genres / popular."""

    user_id: int
    row: np.ndarray
    kind: str
    skip_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # genre profile (1 x catalogue genres) for the cold-start blend; see content.ColdStartBlend
    content: sp.csr_matrix | None = None
    # the member's heaviest known tracks, heaviest first (catalogue positions; evidence.py),
    # when the caller passed their history in; only ``turns_known`` reads it
    known: np.ndarray | None = None
    # a playlist that continues (``continuation.SoFar``): the turns this member already had
    # in it (None: those ``SoFar.turns`` gives them), and how many fair shares of turns they
    # are owed (None: by their ``kind``)
    received: int | None = None
    owed: float | None = None


@dataclass
class GroupResult:
    indices: list[int]
    member_scores: np.ndarray  # playlist x members, 0-1
    member_fit: np.ndarray     # members, 0-1
    taste_match: np.ndarray    # members x members, 0-1
    strategy: str
    notes: list[str]
    # per track: the member position whose turn chose it (-1: none), and the sorted member
    # positions it is for (that member and those it is a favourite of; attribution.py)
    turns: list[int] = field(default_factory=list)
    for_members: list[list[int]] = field(default_factory=list)


def owed_turns(members: list[Member]) -> np.ndarray:
    """Per member, the fair shares of turns they are owed: a member the model knows only by
    genres (or not at all) ``COLD_TURNS``, unless the caller set ``Member.owed``."""
    return np.array([m.owed if m.owed is not None else 1.0 if m.kind == "trained"
                     else COLD_TURNS for m in members])
