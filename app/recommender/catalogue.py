"""The servable catalogue: every track in the database with what playlists and pages need.

Read by ``app.modelstore.loaders.load_catalogue``; loaded once per process (and again when the track
count changes), independent of any model, so that the base model works before the first training
and new tracks are noticed without restart.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.recommender.dataset import InteractionData, ItemMeta, build_items, genre_matrix
from app.recommender.idmap import IdMap


@dataclass
class Catalogue:
    item_ids: np.ndarray
    meta: ItemMeta
    item_genres: sp.csr_matrix
    genre_names: np.ndarray
    names: np.ndarray | None = None
    durations: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = IdMap(np.asarray(self.item_ids, dtype=str))  # track id <-> catalogue index
        # most popular first: the padding of the base model and the "popular" baseline
        self.popular_order = np.argsort(-self.meta.popularity, kind="stable")
        self._genre_list = [str(g) for g in self.genre_names]  # Python strings, made once
        self._answer: tuple[bytes, np.ndarray, np.ndarray] | None = None

    def prepare_answer(self) -> None:
        """Each track's entry of the /predict answer, ``{"id", "name", "artist"}`` as
        ``json.dumps(..., ensure_ascii=False)`` writes it, in UTF-8, one after the other in one
        bytes object; made once per catalogue (the serving state does it at load, off the
        request path), so that a request only joins twenty slices."""
        if self._answer is not None:
            return
        ids = np.asarray(self.item_ids).astype(str).tolist()
        names = ([str(n) for n in self.names.tolist()] if self.names is not None
                 else [""] * len(ids))
        artists = self.meta.artist_names[self.meta.artist].astype(str).tolist()
        parts = [json.dumps({"id": i, "name": n, "artist": a}, ensure_ascii=False).encode()
                 for i, n, a in zip(ids, names, artists)]
        ends = np.cumsum([len(p) for p in parts], dtype=np.int64)
        self._answer = (b"".join(parts), ends - np.fromiter(map(len, parts), np.int64,
                                                            len(parts)), ends)

    def answer_json(self, indices) -> bytes:
        """The /predict answer for the tracks at ``indices``, byte for byte what
        ``json.dumps([{"id", "name", "artist"}, ...], ensure_ascii=False)`` gives in UTF-8."""
        if self._answer is None:
            self.prepare_answer()
        blob, starts, ends = self._answer
        view = memoryview(blob)
        idx = np.asarray(indices, dtype=np.int64)
        return b"[" + b", ".join([view[a:b] for a, b in zip(starts[idx].tolist(),
                                                            ends[idx].tolist())]) + b"]"

    @classmethod
    def from_data(cls, data: InteractionData) -> "Catalogue":
        return cls(item_ids=data.item_ids, meta=data.items, item_genres=data.item_genres,
                   genre_names=data.genre_names)

    @classmethod
    def from_frames(cls, tracks: pd.DataFrame, artists: pd.DataFrame,
                    artist_genre_pairs: pd.DataFrame) -> "Catalogue":
        """From the frames a loader reads (``app.modelstore.loaders.load_catalogue``): tracks (export
        or database columns), artists (id, name) and (artist_id, genre) pairs."""
        item_ids, meta = build_items(tracks, artists)
        genres = IdMap(np.asarray(sorted(set(artist_genre_pairs["genre"])), dtype=str))
        by_artist = genre_matrix(artist_genre_pairs, IdMap(meta.artist_ids), "artist_id", genres)
        return cls(item_ids=item_ids, meta=meta, item_genres=by_artist[meta.artist].tocsr(),
                   genre_names=genres.external,
                   names=tracks["name"].fillna("").to_numpy(dtype=object),
                   durations=tracks["duration_ms"].fillna(0).to_numpy(dtype=np.int64))

    def __len__(self) -> int:
        return len(self.item_ids)

    def genres_of(self, index: int) -> list[str]:
        g, names = self.item_genres, self._genre_list
        return [names[c] for c in g.indices[g.indptr[index]:g.indptr[index + 1]].tolist()]

    def artist_name(self, index: int) -> str:
        return str(self.meta.artist_names[self.meta.artist[index]])

    @cached_property
    def _audio_columns(self) -> dict[str, int]:
        """Audio column by name (the first of a name), made once: every advanced playlist
        asks for two columns."""
        names = [str(n) for n in self.meta.audio_names]
        if self.meta.audio.shape[1] != len(names):
            return {}
        return {n: j for j, n in reversed(list(enumerate(names)))}

    def audio_feature(self, name: str, indices) -> np.ndarray | None:
        """One audio column (e.g. tempo, energy) for some tracks; None when not imported."""
        col = self._audio_columns.get(name)
        if col is None:
            return None
        return self.meta.audio[np.asarray(indices, dtype=np.int64), col]

    def artist_id(self, index: int) -> str:
        return str(self.meta.artist_ids[self.meta.artist[index]])
