"""Content similarity for the cold-start path: a member's genre/tag profile against items' genres.

Why: a track (or artist) that arrived after training has no learned identity embedding; LightFM
can only sum the embeddings of its features, and on Last.fm that fell far below the precision of
plain tag cosine on new artists (EVALUATION.md, "Cold start"). So new items are scored by a blend:
``(1 - w) * z_model + w * z_content``, both standardised per member over the catalogue, so that
new items compete with known ones on the same scale. ``w`` and the IDF choice were picked on a
validation split of Last.fm (``app/recommender/offline/``), never on its test split.

Everything here is sparse algebra over (users x items) and (items x genres) matrices: a profile
is the sum of the genre vectors of the items a user listened to; IDF down-weights genres that
half the catalogue carries ("rock", "seen live").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from app.recommender.idmap import IdMap

# Content weight for a new item whose artist the model does not know: chosen on the Last.fm
# validation split (EVALUATION.md, "Cold start"), where every cold item is a new artist and
# LightFM's tag-only score fell far below plain tag cosine. On the demo world's hidden taste the
# same holds for tracks of new artists: without the blend they are over-scored and crowd
# single-user top-20s (README, "Cold-start blend").
COLD_CONTENT_WEIGHT = 0.95
# ... and for a new release of an artist the model knows: the artist's embedding carries the
# taste, content only calibrates: a small weight beat both the model alone and a large one on
# the demo world's held-out releases (README, "Cold-start blend").
KNOWN_ARTIST_CONTENT_WEIGHT = 0.3
USE_IDF = True


def idf(item_genres: sp.spmatrix) -> np.ndarray:
    """Smoothed inverse document frequency of each genre over the items."""
    g = sp.csr_matrix(item_genres)
    df = np.bincount(g.indices, minlength=g.shape[1]).astype(np.float64)
    return np.log((1.0 + g.shape[0]) / (1.0 + df)) + 1.0


def _l2_rows(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ m)


@dataclass(frozen=True)
class ContentIndex:
    """Items' unit genre vectors (IDF-weighted when ``use_idf``) for cosine similarity."""

    items: sp.csr_matrix      # items x genres, unit rows (zero rows for untagged items)
    weights: np.ndarray       # genres: IDF or ones
    use_idf: bool = USE_IDF

    @classmethod
    def build(cls, item_genres: sp.spmatrix, use_idf: bool = USE_IDF) -> "ContentIndex":
        binary = sp.csr_matrix(item_genres, dtype=np.float32, copy=True)
        binary.data[:] = 1.0
        w = idf(binary) if use_idf else np.ones(binary.shape[1])
        weighted = binary @ sp.diags(w.astype(np.float32))
        return cls(items=_l2_rows(weighted), weights=w.astype(np.float32), use_idf=use_idf)

    def profiles(self, listened: sp.spmatrix) -> sp.csr_matrix:
        """users x genres unit profiles from a users x items matrix of what each user listened
        to (any positive value counts once: the plain "artists they listened to")."""
        seen = sp.csr_matrix(listened, dtype=np.float32, copy=True)
        seen.eliminate_zeros()
        seen.data[:] = 1.0
        return _l2_rows(seen @ self.items)

    def profiles_from_genres(self, genre_rows: sp.spmatrix) -> sp.csr_matrix:
        """Profiles of users described only by declared genres (users x genres, 0/1)."""
        g = sp.csr_matrix(genre_rows, dtype=np.float32)
        return _l2_rows(g @ sp.diags(self.weights))

    def similarity(self, profiles: sp.spmatrix, columns: np.ndarray | None = None) -> np.ndarray:
        """Dense cosine (members x items, or x ``columns``), float32."""
        items = self.items if columns is None else self.items[columns]
        return np.asarray((sp.csr_matrix(profiles) @ items.T).toarray(), dtype=np.float32)

    def standardised(self, profiles: sp.spmatrix) -> np.ndarray:
        """Per member z of the cosine over the whole catalogue, like the model's scores."""
        s = self.similarity(profiles)
        mu = s.mean(axis=1, keepdims=True)
        sd = s.std(axis=1, keepdims=True)
        return (s - mu) / np.maximum(sd, 1e-6)


def blend_cold(z_model: np.ndarray, z_content: np.ndarray, cold: np.ndarray,
               weight: float | np.ndarray = COLD_CONTENT_WEIGHT) -> np.ndarray:
    """Members x items scores where the ``cold`` columns (bool mask or indices) are replaced by
    ``(1 - weight) * z_model + weight * z_content``; known items keep the model's score.
    ``weight``: one number, or one per item (only the cold items' entries are used).

    Members with an empty profile (no tagged history, no genres) keep the model's score: a zero
    cosine row says nothing about them."""
    out = np.array(z_model, dtype=np.float32, copy=True)
    cols = np.flatnonzero(cold) if np.asarray(cold).dtype == bool else np.asarray(cold)
    w = np.asarray(weight, dtype=np.float32)
    w = w[cols] if w.ndim else np.full(len(cols), float(w), np.float32)
    if not len(cols) or not (w > 0).any():
        return out
    informative = np.abs(z_content).max(axis=1) > 0
    blended = (1.0 - w) * out[:, cols] + w * z_content[:, cols]
    out[:, cols] = np.where(informative[:, None], blended, out[:, cols])
    return out


class ColdStartBlend:
    """The product's hook: a ``Recommender`` whose catalogue holds tracks the model never saw
    (imported after training) builds one of these; members carry a content profile
    (``Member.content``) and ``apply`` blends it into the new tracks' scores.

    Profiles come from what a member listened to (catalogue indices, e.g. the service's history
    cache) or, with no history, from their declared favourite genres.
    """

    def __init__(self, item_genres: sp.spmatrix, genre_names: np.ndarray, new_items: np.ndarray,
                 known_artist: np.ndarray | None = None, use_idf: bool = USE_IDF):
        """``known_artist`` (per catalogue item): the model has an embedding for its artist."""
        self.index = ContentIndex.build(item_genres, use_idf=use_idf)
        self.genres = IdMap(np.asarray(genre_names, dtype=str))
        self.new = np.asarray(new_items, dtype=bool)
        known = (np.zeros(len(self.new), bool) if known_artist is None
                 else np.asarray(known_artist, dtype=bool))
        self.weight = np.where(known, KNOWN_ARTIST_CONTENT_WEIGHT,
                               COLD_CONTENT_WEIGHT).astype(np.float32)

    def profile(self, history: np.ndarray | None = None,
                genres: list[str] | None = None) -> sp.csr_matrix | None:
        """1 x genres unit profile; None when neither source says anything."""
        if history is not None and len(history):
            cols = np.unique(np.asarray(history, dtype=np.int64))
            seen = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols)), cols)),
                                 shape=(1, self.index.items.shape[0]))
            p = self.index.profiles(seen)
            if p.nnz:
                return p
        if genres:
            cols = self.genres.to_internal(list(genres))
            cols = np.unique(cols[cols >= 0])
            if len(cols):
                g = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols)), cols)),
                                  shape=(1, len(self.genres)))
                return self.index.profiles_from_genres(g)
        return None

    def apply(self, z: np.ndarray, profiles: list[sp.csr_matrix | None],
              columns: np.ndarray | None = None) -> np.ndarray:
        """``z`` (members x catalogue, or x ``columns``) with the new tracks blended; ``z``
        itself is returned when there is nothing to blend."""
        new = self.new if columns is None else self.new[np.asarray(columns)]
        weight = self.weight if columns is None else self.weight[np.asarray(columns)]
        if not new.any() or all(p is None for p in profiles):
            return z
        empty = sp.csr_matrix((1, len(self.genres)), dtype=np.float32)
        stacked = sp.vstack([p if p is not None else empty for p in profiles]).tocsr()
        content = self.index.standardised(stacked)
        if columns is not None:
            content = content[:, np.asarray(columns)]
        return blend_cold(z, content, new, weight)
