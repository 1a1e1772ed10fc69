"""What a member's own history says they love, as evidence next to the model's scores.

A member's *known* tracks: every track they played, liked or repeated, weighted as training
weighs it (``features.event_weights``: a like counts three plays, a skip cancels the play it
ends, so a track played to the end keeps its weight and a skipped one drops out; repeats add
up; older events decay with the training's half-life). Pure numpy: the caller (the playlist
service from the database, the evaluation from its training split) passes the events in, so
nothing here can see an event the caller did not hand over.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.recommender.features import WeightParams, event_weights


@dataclass(frozen=True)
class Known:
    """One member's known tracks (catalogue positions, ascending) and their evidence weight
    (positive; larger: played more often, liked, more recently)."""

    items: np.ndarray
    weight: np.ndarray

    @classmethod
    def empty(cls) -> "Known":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.items)

    def top(self, k: int) -> np.ndarray:
        """The ``k`` heaviest known tracks, heaviest first (ties: the lower position)."""
        order = np.lexsort((self.items, -self.weight))[:k]
        return self.items[order]


class _Events:
    """The columns ``event_weights`` reads, for one member's events."""

    def __init__(self, kind, time, value):
        self.kind, self.time, self.value = kind, time, value

    def __len__(self) -> int:
        return len(self.kind)


def known_tracks(item: np.ndarray, kind: np.ndarray, time: np.ndarray, params: WeightParams,
                 now: float, value: np.ndarray | None = None) -> Known:
    """One member's events (catalogue positions, ``dataset`` kinds, epoch seconds) as evidence
    per track: the sum of the training's event weights, decayed to ``now``; tracks whose sum is
    not positive (skipped as often as played) are not known."""
    item = np.asarray(item, np.int64)
    if len(item) == 0:
        return Known.empty()
    kind = np.asarray(kind, np.int8)
    value = np.ones(len(item), np.float32) if value is None else np.asarray(value, np.float32)
    w = event_weights(_Events(kind, np.asarray(time, np.float64), value), params, now=now)
    items, inverse = np.unique(item, return_inverse=True)
    total = np.bincount(inverse, weights=w, minlength=len(items))
    keep = total > 1e-9
    return Known(items[keep], total[keep])


def known_by_user(user: np.ndarray, item: np.ndarray, kind: np.ndarray, time: np.ndarray,
                  params: WeightParams, now: float, value: np.ndarray | None = None
                  ) -> dict[int, Known]:
    """``known_tracks`` for every user of an event log at once (evaluation): the same sums,
    one sparse matrix instead of one call per user."""
    import scipy.sparse as sp

    user = np.asarray(user, np.int64)
    if len(user) == 0:
        return {}
    value = np.ones(len(user), np.float32) if value is None else np.asarray(value, np.float32)
    w = event_weights(_Events(np.asarray(kind, np.int8), np.asarray(time, np.float64), value),
                      params, now=now)
    m = sp.csr_matrix((w, (user, np.asarray(item, np.int64))),
                      shape=(int(user.max()) + 1, int(np.max(item)) + 1))
    m.sum_duplicates()
    out: dict[int, Known] = {}
    for u in np.unique(user).tolist():
        cols = m.indices[m.indptr[u]:m.indptr[u + 1]].astype(np.int64)
        vals = m.data[m.indptr[u]:m.indptr[u + 1]]
        order = np.argsort(cols)
        cols, vals = cols[order], vals[order]
        keep = vals > 1e-9
        out[u] = Known(cols[keep], vals[keep])
    return out
