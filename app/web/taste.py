"""The taste-match matrix in the form a phone can show: each member's closest and farthest
match, read from the same figures as the full matrix that wide screens keep."""
from __future__ import annotations

from dataclasses import dataclass

from app.web.stored import MemberView, PlaylistView, Score


@dataclass(frozen=True)
class TastePair:
    member: MemberView
    closest: MemberView
    closest_score: Score
    farthest: MemberView | None  # None in a group of two: the closest is the only one
    farthest_score: Score | None


def taste_pairs(view: PlaylistView) -> list[TastePair]:
    matrix = view.taste_match
    members = view.members
    if not matrix or len(members) < 2:
        return []
    out: list[TastePair] = []
    for i, member in enumerate(members):
        others = [(matrix[i][j], members[j]) for j in range(len(members))
                  if j != i and j < len(matrix[i]) and matrix[i][j].value is not None]
        if not others:
            continue
        # ties go to the member listed first, so the answer does not depend on sort stability
        closest = max(others, key=lambda o: o[0].value)
        farthest = min(others, key=lambda o: o[0].value)
        far = farthest if len(others) > 1 else (None, None)
        out.append(TastePair(member, closest[1], closest[0], far[1], far[0]))
    return out
