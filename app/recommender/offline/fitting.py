"""Fitting the real-data protocol's models: the product's LightFM (served through the product's
``Recommender``) and the outside reference, ``implicit``'s ALS.

``implicit`` is a dev-only dependency (requirements-dev.txt): it is imported inside ``fit_als``
alone, so that nothing on the serving path pulls it in.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from app.recommender.catalogue import Catalogue
from app.recommender.dataset import COUNT, InteractionData
from app.recommender.features import WeightParams
from app.recommender.offline.evaluation import user_genre_lists
from app.recommender.offline.lastfm import subset_items
from app.recommender.scoring import Recommender
from app.recommender.training import TrainParams, cores, train


def lightfm_params(data: InteractionData, config: dict, hybrid: bool, seed: int) -> TrainParams:
    """The product's TrainParams for a grid entry. Listen counts are log-scaled by
    ``event_weights``; the cap is the largest log count, so that weights spread over (0, 1]
    instead of saturating at the product's default cap (which is sized for plays and likes)."""
    base = TrainParams()
    weights = base.weights
    if (data.events.kind == COUNT).any():
        top = float(np.log1p(data.events.value[data.events.kind == COUNT].max()))
        weights = WeightParams(half_life_days=0.0, cap=max(top, 1.0))
    has_user_genres = data.user_genres.nnz > 0
    if hybrid:
        item_blocks = tuple(b for b in base.item_blocks if _block_has_data(data, b))
    else:
        item_blocks = ("identity",)
    user_blocks = base.user_blocks if (hybrid and has_user_genres) else ("identity",)
    return replace(base, epochs=int(config["epochs"]), components=int(config["components"]),
                   profile_weight=float(config.get("profile_weight", base.profile_weight)),
                   max_sampled=int(config.get("max_sampled", base.max_sampled)),
                   learning_rate=float(config.get("learning_rate", base.learning_rate)),
                   loss=str(config.get("loss", base.loss)), seed=seed,
                   item_blocks=item_blocks, user_blocks=user_blocks, weights=weights)


def _block_has_data(data: InteractionData, block: str) -> bool:
    """Drop feature blocks a data set cannot fill: on Last.fm every artist is its own artist
    (the block would duplicate identity) and there are no audio features or years."""
    m = data.items
    if block == "identity":
        return True
    if block == "artist":
        return len(m.artist_ids) < data.n_items
    if block == "genre":
        return data.item_genres.nnz > 0
    if block == "audio":
        return m.audio.shape[1] > 0
    if block == "decade":
        return bool((m.year > 0).any())
    if block == "explicit":
        return bool(m.explicit.any())
    return True


def fit_lightfm(data: InteractionData, event_mask: np.ndarray, drop_items: np.ndarray,
                params: TrainParams) -> tuple[Recommender, float]:
    """Train on the masked events without the dropped items, then serve every item of ``data``
    through the product's Recommender (dropped items are scored from their features)."""
    train_data = subset_items(data.with_events(data.events.take(event_mask)), ~drop_items)
    t0 = time.perf_counter()
    model = train(train_data, params)
    seconds = time.perf_counter() - t0
    return Recommender(model, Catalogue.from_data(data), version="real-eval"), seconds


def with_profile_weight(rec: Recommender, weight: float) -> Recommender:
    """The same trained model served with another recent-taste mix (no retraining)."""
    model = replace(rec.model, params=replace(rec.model.params, profile_weight=weight))
    return Recommender(model, rec.catalogue, version=rec.version)


def member_rows(rec: Recommender, data: InteractionData) -> np.ndarray:
    """Every user's serving row, as the product builds it (history -> trained row)."""
    genres = user_genre_lists(data)
    return np.vstack([rec.member(int(u), genres[i]).row
                      for i, u in enumerate(data.user_ids)]).astype(np.float32)


def fit_als(matrix: sp.csr_matrix, config: dict, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """implicit's ALS on log-scaled counts (confidence 1 + alpha * log1p(count))."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads only fight
        model = AlternatingLeastSquares(
            factors=int(config["factors"]), regularization=float(config["regularization"]),
            alpha=float(config["alpha"]), iterations=int(config["iterations"]),
            random_state=seed, num_threads=cores())
        model.fit(sp.csr_matrix(matrix, dtype=np.float32), show_progress=False)
    return (np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32),
            time.perf_counter() - t0)


def fit_ease(matrix: sp.csr_matrix, config: dict
             ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, float]:
    """EASE (Steck, WWW 2019), the closed-form item-item outside reference: on binary training
    pairs X, ``B = I − P·diag(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``, so that ``B`` has a
    zero diagonal; a user's scores are ``x_u B``. The inverse is dense in the item count, so
    only items with at least ``min_users`` training users take part (the others score lowest:
    an item so rarely heard is almost never a held-out hit). Returns (X on the covered items,
    the dense item weights, the covered items, seconds)."""
    t0 = time.perf_counter()
    x = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    x.data[:] = 1.0
    users_per_item = np.diff(x.tocsc().indptr)
    items = np.flatnonzero(users_per_item >= int(config.get("min_users", 3)))
    xs = x[:, items]
    gram = np.asarray((xs.T @ xs).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += float(config["lambda"])
    inv = np.linalg.inv(gram)
    weights = inv / (-np.diag(inv))
    weights[np.diag_indices_from(weights)] = 0.0
    return xs.tocsr(), weights.astype(np.float32), items, time.perf_counter() - t0


def ease_scores(fitted: tuple, users: np.ndarray, n_items: int) -> np.ndarray:
    """EASE scores of ``users`` over all ``n_items``. Items outside the model get a finite
    floor, below every covered item but above the -inf that ``ranking_metrics`` gives to the
    excluded ones (its AUC counts those at the bottom)."""
    xs, weights, items = fitted[:3]
    out = np.full((len(users), n_items), -1e30, dtype=np.float32)
    out[:, items] = np.asarray(xs[users].todense(), dtype=np.float32) @ weights
    return out
