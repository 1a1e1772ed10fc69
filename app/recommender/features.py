"""Interaction weights and user/item feature matrices, built with numpy/scipy only.

Everything here is vectorised over the whole event log: a per-row Python loop over a full
export's events would cost more than training. The feature *vocabulary* (``FeatureSpace``) is
stored with the model, so that tracks and users that appear after training get feature rows in
the same columns and can be scored from the learned feature embeddings without retraining.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from app.recommender.dataset import COUNT, LIKE, PLAY, SKIP, InteractionData, ItemMeta
from app.recommender.idmap import IdMap

DAY = 86400.0

ITEM_BLOCKS = ("identity", "artist", "genre", "audio", "decade", "explicit")
USER_BLOCKS = ("identity", "genre")


@dataclass(frozen=True)
class WeightParams:
    """How much one event says about taste, before time decay.

    A like is a deliberate act, a play a weak signal. Every heard track starts with a play
    event, and a skip follows when the listener abandons it, so ``skip = -1`` cancels that play:
    a heard-and-skipped track drops out (WARP ignores pairs whose net weight is not positive).
    On the demo data's time split -1 ranked best and trained on fewer pairs; only AUC preferred
    counting skips, because the test set counts every heard track, skipped or not (figures:
    README, "Skip weight").
    ``cap``: pair weights are ``min(w, cap) / cap`` because WARP caps each example's loss, so
    raw counts far above 1 all behave alike.
    """

    play: float = 1.0
    like: float = 3.0
    skip: float = -1.0
    half_life_days: float = 60.0
    cap: float = 3.0
    min_weight: float = 0.0  # pairs lighter than this (after scaling) are dropped to save time

    def as_dict(self) -> dict:
        return asdict(self)


def event_weights(events, params: WeightParams, now: float | None = None) -> np.ndarray:
    """Per event: kind weight x exponential decay by age relative to the newest event, or to
    the wall clock when an event claims to be newer than that (a clock fault must not age every
    real event to nothing)."""
    base = np.array([params.play, params.skip, params.like, 1.0], dtype=np.float64)
    w = base[events.kind]
    counts = events.kind == COUNT
    if counts.any():  # listen counts: diminishing returns, a 1000-play artist is not 1000x
        w[counts] = np.log1p(events.value[counts])
    if params.half_life_days and params.half_life_days > 0 and len(events):
        newest = min(float(events.time.max()), time.time()) if now is None else now
        age_days = np.maximum(newest - events.time, 0.0) / DAY
        w = w * np.exp2(-age_days / params.half_life_days)
    return w


def interaction_matrix(data: InteractionData, params: WeightParams,
                       now: float | None = None) -> sp.coo_matrix:
    """Users x items, weights in (0, 1]; only pairs with a positive net weight are kept."""
    ev = data.events
    w = event_weights(ev, params, now)
    m = sp.coo_matrix((w, (ev.user, ev.item)), shape=(data.n_users, data.n_items)).tocsr()
    m.sum_duplicates()
    m = m.tocoo()
    scaled = np.minimum(m.data, params.cap) / params.cap
    keep = scaled > max(params.min_weight, 0.0)
    return sp.coo_matrix((scaled[keep].astype(np.float32), (m.row[keep], m.col[keep])),
                         shape=m.shape)


def skip_matrix(data: InteractionData, min_skips: int = 2) -> sp.csr_matrix:
    """Users x items: 1 where a user skipped a track at least ``min_skips`` times and skipped it
    more often than they played or liked it ("keeps skipping"); serving pushes these down."""
    ev = data.events
    sign = np.where(ev.kind == SKIP, 1.0, np.where((ev.kind == PLAY) | (ev.kind == LIKE), -1.0, 0))
    skips = sp.coo_matrix(((ev.kind == SKIP).astype(np.float32), (ev.user, ev.item)),
                          shape=(data.n_users, data.n_items)).tocsr()
    net = sp.coo_matrix((sign.astype(np.float32), (ev.user, ev.item)),
                        shape=(data.n_users, data.n_items)).tocsr()
    skips.sum_duplicates()
    net.sum_duplicates()
    mask = skips.multiply(skips >= min_skips).multiply(net > 0)
    mask = sp.csr_matrix(mask)
    mask.eliminate_zeros()
    mask.data[:] = 1.0
    return mask.astype(np.float32)


@dataclass
class FeatureSpace:
    """The column layout of the item and user feature matrices, saved with the model.

    Block weights are per block (spread over the block's active features) before each row is
    normalised to sum 1, as LightFM's own ``Dataset`` does: without it, the nine audio bins of a
    track would outweigh its identity and artist.
    """

    item_blocks: tuple[str, ...] = ITEM_BLOCKS
    user_blocks: tuple[str, ...] = USER_BLOCKS
    audio_bins: int = 4
    block_weights: dict[str, float] = field(default_factory=lambda: {
        "identity": 1.0, "artist": 1.0, "genre": 1.0, "audio": 0.5, "decade": 0.25,
        "explicit": 0.25})
    # vocabularies, filled by fit()
    item_ids: list[str] = field(default_factory=list)
    user_ids: list[int] = field(default_factory=list)
    artists: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    audio_names: list[str] = field(default_factory=list)
    audio_edges: list[list[float]] = field(default_factory=list)
    decades: list[int] = field(default_factory=list)

    # ----- fitting -----
    def fit(self, data: InteractionData) -> "FeatureSpace":
        self.item_ids = [str(x) for x in data.item_ids]
        self.user_ids = [int(x) for x in data.user_ids]
        self.artists = [str(x) for x in data.items.artist_ids]
        self.genres = [str(x) for x in data.genre_names]
        self.audio_names = list(data.items.audio_names)
        qs = np.linspace(0, 1, self.audio_bins + 1)[1:-1]
        audio = data.items.audio
        self.audio_edges = ([np.unique(np.quantile(audio[:, j], qs)).tolist()
                             for j in range(audio.shape[1])] if len(audio) else [])
        years = data.items.year[data.items.year > 0]
        self.decades = sorted({int(y) // 10 * 10 for y in np.unique(years)})
        return self

    # ----- layout -----
    def item_block_sizes(self) -> dict[str, int]:
        sizes = {
            "identity": len(self.item_ids),
            "artist": len(self.artists),
            "genre": len(self.genres),
            "audio": sum(len(e) + 1 for e in self.audio_edges),
            "decade": len(self.decades),
            "explicit": 1,
        }
        return {b: sizes[b] for b in self.item_blocks}

    def user_block_sizes(self) -> dict[str, int]:
        sizes = {"identity": len(self.user_ids), "genre": len(self.genres)}
        return {b: sizes[b] for b in self.user_blocks}

    @property
    def n_item_features(self) -> int:
        return sum(self.item_block_sizes().values())

    @property
    def n_user_features(self) -> int:
        return sum(self.user_block_sizes().values())

    # ----- matrices -----
    def item_features(self, item_ids: np.ndarray, meta: ItemMeta, item_genres: sp.csr_matrix,
                      genre_names: np.ndarray, *, identity: bool = True) -> sp.csr_matrix:
        """Rows for any items: known ones get their identity column, new ones (or
        ``identity=False``) are described by artist, genres, audio bins, decade and explicit."""
        n = len(item_ids)
        blocks = []
        offset = 0
        rows_all, cols_all, vals_all = [], [], []
        for block, size in self.item_block_sizes().items():
            weight = self.block_weights.get(block, 1.0)
            r, c = self._item_block(block, item_ids, meta, item_genres, genre_names, identity)
            if len(r):
                # spread the block's weight over its active features in each row
                per_row = np.bincount(r, minlength=n).astype(np.float32)
                v = weight / per_row[r]
                rows_all.append(r)
                cols_all.append(c + offset)
                vals_all.append(v.astype(np.float32))
            blocks.append(block)
            offset += size
        if rows_all:
            rows = np.concatenate(rows_all)
            cols = np.concatenate(cols_all)
            vals = np.concatenate(vals_all)
        else:
            rows = cols = np.zeros(0, np.int64)
            vals = np.zeros(0, np.float32)
        m = sp.csr_matrix((vals, (rows, cols)), shape=(n, offset), dtype=np.float32)
        return _normalise_rows(m)

    def _item_block(self, block, item_ids, meta, item_genres, genre_names, identity):
        n = len(item_ids)
        if block == "identity":
            if not identity:
                return np.zeros(0, np.int64), np.zeros(0, np.int64)
            idx = IdMap(self.item_ids).to_internal(np.asarray(item_ids, dtype=str))
            ok = idx >= 0
            return np.flatnonzero(ok), idx[ok]
        if block == "artist":
            art = IdMap(self.artists).to_internal(meta.artist_ids[meta.artist])
            ok = art >= 0
            return np.flatnonzero(ok), art[ok]
        if block == "genre":
            g = item_genres.tocoo()
            col = IdMap(self.genres).to_internal(np.asarray(genre_names, dtype=str)[g.col]) \
                if g.nnz else np.zeros(0, np.int64)
            ok = col >= 0
            return g.row[ok].astype(np.int64), col[ok]
        if block == "audio":
            rows, cols = [], []
            offset = 0
            names = list(meta.audio_names)
            for name, edges in zip(self.audio_names, self.audio_edges):
                if name in names and n:
                    values = meta.audio[:, names.index(name)]
                    b = np.searchsorted(np.asarray(edges), values, side="right")
                    rows.append(np.arange(n))
                    cols.append(b + offset)
                offset += len(edges) + 1
            if not rows:
                return np.zeros(0, np.int64), np.zeros(0, np.int64)
            return np.concatenate(rows), np.concatenate(cols)
        if block == "decade":
            dec = IdMap(self.decades).to_internal((meta.year.astype(np.int64) // 10) * 10)
            ok = (meta.year > 0) & (dec >= 0)
            return np.flatnonzero(ok), dec[ok]
        if block == "explicit":
            rows = np.flatnonzero(meta.explicit)
            return rows, np.zeros(len(rows), np.int64)
        raise ValueError(f"unknown item feature block {block!r}")

    def user_features(self, user_ids: np.ndarray, user_genres: sp.csr_matrix,
                      genre_names: np.ndarray, *, identity: bool = True) -> sp.csr_matrix:
        n = len(user_ids)
        rows_all, cols_all, vals_all = [], [], []
        offset = 0
        for block, size in self.user_block_sizes().items():
            weight = self.block_weights.get(block, 1.0)
            if block == "identity":
                if identity:
                    idx = IdMap(self.user_ids).to_internal(np.asarray(user_ids, np.int64))
                    ok = idx >= 0
                    r, c = np.flatnonzero(ok), idx[ok]
                else:
                    r = c = np.zeros(0, np.int64)
            else:
                g = user_genres.tocoo()
                names = np.asarray(genre_names, dtype=str)[g.col]
                col = (IdMap(self.genres).to_internal(names) if g.nnz
                       else np.zeros(0, np.int64))
                ok = col >= 0
                r, c = g.row[ok].astype(np.int64), col[ok]
            if len(r):
                per_row = np.bincount(r, minlength=n).astype(np.float32)
                rows_all.append(r)
                cols_all.append(c + offset)
                vals_all.append((weight / per_row[r]).astype(np.float32))
            offset += size
        if rows_all:
            rows, cols, vals = (np.concatenate(rows_all), np.concatenate(cols_all),
                                np.concatenate(vals_all))
        else:
            rows = cols = np.zeros(0, np.int64)
            vals = np.zeros(0, np.float32)
        m = sp.csr_matrix((vals, (rows, cols)), shape=(n, offset), dtype=np.float32)
        return _normalise_rows(m)

    def to_json(self) -> dict:
        d = asdict(self)
        d["item_blocks"] = list(self.item_blocks)
        d["user_blocks"] = list(self.user_blocks)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "FeatureSpace":
        d = dict(d)
        d["item_blocks"] = tuple(d["item_blocks"])
        d["user_blocks"] = tuple(d["user_blocks"])
        return cls(**d)


def _normalise_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / sums).astype(np.float32)) @ m, dtype=np.float32)
