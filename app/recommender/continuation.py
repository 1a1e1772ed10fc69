"""A playlist that continues: what it already holds, and how the members' skips and likes in it
change their taste for the rest of it.

``Recommender.plan`` takes a ``SoFar`` next to the members (each carrying the turns they are
owed and have already received, ``Member.owed`` / ``Member.received``, by default their
kind's share and the turns ``SoFar.turns`` gives them): the tracks already
played or queued stay in front, never come again and count for the playlist rules; the new
tracks continue the turn order and the running fairness from there. ``/predict`` is the case
with nothing so far (``SoFar`` empty or None).

Skips and likes change a member's taste by folding them into the member's row (``fold_in``): a
ridge step of the row against the item vectors of the tracks reported, which moves every track
*like* those tracks, not only the ones reported; a skipped track itself is also pushed down as
a skip in the member's history is (``SKIP_PENALTY``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Fold-in: where a skipped / liked track should land on the member's standardised scale, and
# how strongly the member's row resists moving (in units of the mean squared item vector norm).
SKIP_TARGET_Z = -1.0
LIKE_TARGET_Z = 2.5
FOLD_IN_RIDGE = 1.0


@dataclass
class SoFar:
    """The playlist so far, as the recommender continues it.

    ``played``: catalogue positions played or queued, in order: kept in front of the result,
    never repeated, and counted for the rules (no song twice, the artist cap).
    ``turns``: per played track, the member position whose turn chose it (-1 or None: nobody's,
    or a member who is not among the members now): the turns a member has received unless
    ``Member.received`` says otherwise, and the result's attribution of those tracks.
    ``skipped`` / ``liked``: per member position, catalogue positions the member skipped /
    liked in this playlist. ``excluded``: tracks that must not come (removed by a host),
    not kept."""

    played: list[int] = field(default_factory=list)
    turns: list[int | None] = field(default_factory=list)
    skipped: dict[int, list[int]] = field(default_factory=dict)
    liked: dict[int, list[int]] = field(default_factory=dict)
    excluded: list[int] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (len(self.played) or len(self.excluded) or any(map(len, self.skipped.values()))
                    or any(map(len, self.liked.values())))

    def played_turns(self) -> list[int]:
        """Per played track, the member position whose turn chose it, -1 for none."""
        t = [-1 if x is None or x < 0 else int(x) for x in list(self.turns)[:len(self.played)]]
        return t + [-1] * (len(self.played) - len(t))

    def received(self, members: list) -> np.ndarray:
        """Per member, the turns they already had: ``Member.received``, else their turns
        among the tracks so far."""
        counted = np.bincount([t for t in self.played_turns() if 0 <= t < len(members)],
                              minlength=len(members))
        return np.array([m.received if m.received is not None else counted[j]
                         for j, m in enumerate(members)], dtype=np.int64)

    def reported(self, member: int) -> tuple[list[int], list[int]]:
        """A member's likes and skips in this playlist."""
        return list(self.liked.get(member, ())), list(self.skipped.get(member, ()))


def fold_in(items_t: np.ndarray, row: np.ndarray, liked: list[int], skipped: list[int],
            mean_item: np.ndarray, cov_item: np.ndarray) -> np.ndarray:
    """The member's row after their skips and likes: the smallest change (ridge) to the row's
    vector part that puts each reported track's score at its target on the member's own
    standardised scale (``SKIP_TARGET_Z`` / ``LIKE_TARGET_Z``), or beyond it already.

    Closed form ``u' = u + Vᵀ (λI + V Vᵀ)⁻¹ (y − V u)`` over the reported tracks' vectors V:
    one solve of size (reports x reports). Tracks close to a skipped one in the model's space
    lose with it; the biases are left alone."""
    idx = np.asarray(list(liked) + list(skipped), np.int64)
    if not len(idx):
        return row
    r = row.astype(np.float64)
    k = len(r) - 2
    mu = float(r @ mean_item)
    sd = float(np.sqrt(max(r @ cov_item @ r, 1e-12)))
    cols = items_t[:, idx].astype(np.float64)       # (k + 2) x reports
    v = cols[:k].T                                  # reports x k
    score = r @ cols
    target = np.concatenate([np.full(len(liked), mu + LIKE_TARGET_Z * sd),
                             np.full(len(skipped), mu + SKIP_TARGET_Z * sd)])
    # only move where the score is on the wrong side of its target
    is_like = np.arange(len(idx)) < len(liked)
    gap = np.where(is_like, np.maximum(target - score, 0.0), np.minimum(target - score, 0.0))
    if not np.any(gap):
        return row
    # the items' mean squared vector norm, from their mean and covariance (no catalogue pass)
    lam = FOLD_IN_RIDGE * float(np.trace(cov_item[:k, :k]) + mean_item[:k] @ mean_item[:k])
    step = v.T @ np.linalg.solve(lam * np.eye(len(idx)) + v @ v.T, gap)
    out = r.copy()
    out[:k] += step
    return out.astype(np.float32)
