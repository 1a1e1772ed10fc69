"""Reasons of playlist tracks from hand-made counts."""
from __future__ import annotations

import numpy as np

from app.recommender.reasons import GENRES, GROUP, MODEL, reason_for, track_reasons


def test_the_strongest_evidence_speaks():
    assert reason_for(1, 5, 40) == "you liked this track"
    assert reason_for(0, 5, 40) == "you played this track 5 times"
    assert reason_for(0, 1, 40) == "you played this artist 40 times"
    assert reason_for(0, 1, 1) == MODEL
    assert reason_for(0, 0, 0, "genres") == GENRES


def test_compromise_turn_and_favourite_tracks():
    for_members = [[], [1], [0, 1], [0]]
    turns = [-1, -1, 1, 0]
    likes = np.zeros((2, 4), int)
    plays = np.zeros((2, 4), int)
    artist = np.zeros((2, 4), int)
    artist[0, 2] = 12   # member 0 knows track 2's artist, but member 1 had the turn
    artist[1, 2] = 3
    likes[0, 3] = 1
    got = track_reasons(for_members, turns, likes, plays, artist, ["trained", "genres"])
    assert got == [(None, GROUP), (1, GENRES), (1, "you played this artist 3 times"),
                   (0, "you liked this track")]
