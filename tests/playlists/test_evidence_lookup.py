"""The reasons' counts looked up for every member at once are, member by member, what each
member's own ``Counts`` holds for the playlist's tracks and their artists."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from app.playlists.histories import Counts, playlist_evidence


def _counts(rng, tracks: int, artist: np.ndarray, size: int) -> Counts:
    keys = np.unique(rng.integers(0, tracks, size))
    plays = rng.integers(0, 5, len(keys))
    likes = rng.integers(0, 3, len(keys))
    a = artist[keys]
    artists = np.unique(a)
    per_artist = np.bincount(np.searchsorted(artists, a), weights=plays,
                             minlength=len(artists)).astype(np.int64)
    return Counts(keys.astype(np.int64), plays.astype(np.int64), likes.astype(np.int64),
                  artists.astype(np.int64), per_artist)


def _one_by_one(counts, artist, idx):
    """Each member searched alone, with ``Counts``' own look-up."""
    rows = [(c.at(c.tracks, c.likes, idx), c.at(c.tracks, c.plays, idx),
             c.at(c.artists, c.artist_plays, artist[idx])) for c in counts]
    return tuple(np.array([r[k] for r in rows]).reshape(len(counts), len(idx))
                 for k in range(3))


def test_every_member_at_once_equals_each_member_alone():
    rng = np.random.default_rng(3)
    for trial in range(200):
        tracks = int(rng.integers(1, 60))
        n_artists = int(rng.integers(1, 12))
        artist = rng.integers(0, n_artists, tracks).astype(np.int32)
        # every artist code below the number of artist ids, as in a catalogue
        catalogue = SimpleNamespace(meta=SimpleNamespace(artist=artist,
                                                         artist_ids=np.arange(n_artists)))
        sizes = rng.integers(0, 2 * tracks, int(rng.integers(1, 8)))
        sizes[rng.random(len(sizes)) < 0.2] = 0  # members with no counts at all
        counts = [_counts(rng, tracks, artist, int(s)) for s in sizes]
        idx = rng.integers(0, tracks, int(rng.integers(0, 25)))
        got = playlist_evidence(counts, _Sized(catalogue, tracks), idx)
        want = _one_by_one(counts, artist, idx)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == np.int64, trial
            assert np.array_equal(g, w), trial


class _Sized:
    """A catalogue stand-in: its artists and its length."""

    def __init__(self, inner, size):
        self.meta, self._size = inner.meta, size

    def __len__(self):
        return self._size
