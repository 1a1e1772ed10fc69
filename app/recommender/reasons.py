"""Why each playlist track is there, in a few words, from the same evidence as the choice.

A track that is nobody's (no turn chose it and it is no member's favourite) is a compromise
for the whole group: its reason is ``GROUP``. A member's track names the strongest evidence the
member's own listening gives (a like, repeated plays of the track, plays of its artist), and
otherwise the model's reason: people whose listening resembles theirs love it (or, for a
member known only by favourite genres, that it suits those genres). Pure: the caller passes the
counts in.
"""
from __future__ import annotations

import numpy as np

GROUP = "group"
MODEL = "people with your taste love it"
GENRES = "it suits your favourite genres"
# fewer plays than this say little (every heard track starts with one)
MIN_PLAYS = 2


def reason_for(likes: int, track_plays: int, artist_plays: int, kind: str = "trained") -> str:
    """One member's reason for one track."""
    if likes > 0:
        return "you liked this track"
    if track_plays >= MIN_PLAYS:
        return f"you played this track {track_plays} times"
    if artist_plays >= MIN_PLAYS:
        return f"you played this artist {artist_plays} times"
    return GENRES if kind == "genres" else MODEL


def track_reasons(for_members: list[list[int]], turns: list[int] | None, likes: np.ndarray,
                  track_plays: np.ndarray, artist_plays: np.ndarray,
                  kinds: list[str] | None = None) -> list[tuple[int | None, str]]:
    """Per track, (the member position the reason speaks for, the reason); ``(None, GROUP)``
    for a compromise. The member is the one whose turn chose the track, else the first it is
    for. Counts are members x playlist."""
    out: list[tuple[int | None, str]] = []
    for t, whom in enumerate(for_members):
        turn = turns[t] if turns is not None and t < len(turns) else -1
        if turn is None or turn < 0:
            turn = whom[0] if whom else -1
        if turn < 0:
            out.append((None, GROUP))
            continue
        kind = kinds[turn] if kinds is not None else "trained"
        out.append((turn, reason_for(int(likes[turn, t]), int(track_plays[turn, t]),
                                     int(artist_plays[turn, t]), kind)))
    return out
