"""External ids <-> internal positions, one map per kind of id (as RecTools' ``IdMap``).

A track's position is its row in every item matrix of the catalogue and the model; a user's,
their row in the user matrices. Every translation between the ids the database and the clients
use and those positions goes through one of these maps. Unknown ids map to -1, so callers
filter once with ``>= 0`` instead of catching errors per id.
"""
from __future__ import annotations

from typing import Hashable, Iterable

import numpy as np
import pandas as pd

MISSING = -1


class IdMap:
    __slots__ = ("external", "_index", "_positions")

    def __init__(self, external: Iterable[Hashable] | np.ndarray):
        self.external = np.asarray(external)
        self._index = pd.Index(self.external)
        self._positions: dict | None = None

    def __len__(self) -> int:
        return len(self.external)

    def to_internal(self, ids) -> np.ndarray:
        """Positions of ``ids`` (int64), ``MISSING`` for ids not in the map."""
        return self._index.get_indexer(ids).astype(np.int64, copy=False)

    def position(self, external_id: Hashable) -> int | None:
        """One id's position, or None: a dict lookup, for the per-member path of a request."""
        if self._positions is None:
            self._positions = {k: i for i, k in enumerate(self.external.tolist())}
        return self._positions.get(external_id)
