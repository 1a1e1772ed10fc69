"""How a group's members come in: the type that the scorer (``scoring``), candidate retrieval
(``retrieval``) and the party planner (``party``) share, and the turns each member is owed.
The playlist that goes out is ``playlist.GroupPlaylist``.
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


def owed_turns(members: list[Member]) -> np.ndarray:
    """Per member, the fair shares of turns they are owed: a member the model knows only by
    genres (or not at all) ``COLD_TURNS``, unless the caller set ``Member.owed``."""
    return np.array([m.owed if m.owed is not None else 1.0 if m.kind == "trained"
                     else COLD_TURNS for m in members])
