"""The real-data protocol's splits (``protocol.py``): warm hold-out, cold items, validation.

Every set is expressed in the full data set's user and item indices, so that one trained model
can be scored on any of them without re-mapping.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from app.recommender.dataset import COUNT, SKIP, InteractionData
from app.recommender.offline.protocol import Protocol

def positive_pairs(data: InteractionData, event_mask: np.ndarray | None = None) -> sp.csr_matrix:
    """users x items: log1p of the positive events' total (listen counts; plays and likes).

    The log-scaled counts are ALS's input and, made binary, the "listened to" of every metric.
    """
    ev = data.events if event_mask is None else data.events.take(event_mask)
    pos = ev.kind != SKIP
    value = np.where(ev.kind[pos] == COUNT, ev.value[pos], 1.0).astype(np.float64)
    m = sp.csr_matrix((value, (ev.user[pos], ev.item[pos])), shape=(data.n_users, data.n_items))
    m.sum_duplicates()
    m.eliminate_zeros()
    m.data = np.log1p(m.data).astype(np.float32)
    return m


def _pair_codes(data: InteractionData) -> np.ndarray:
    return data.events.user.astype(np.int64) * data.n_items + data.events.item


def holdout(data: InteractionData, fraction: float, rng: np.random.Generator,
            items: np.ndarray | None = None) -> np.ndarray:
    """Bool mask over events: every event of the held-out pairs (per user ``fraction`` of the
    positive pairs, at least one when the user has two or more; only pairs on ``items``)."""
    pairs = positive_pairs(data).tocoo()
    ok = np.ones(pairs.nnz, bool) if items is None else items[pairs.col]
    users, cols = pairs.row[ok], pairs.col[ok]
    order = rng.permutation(len(users))
    users, cols = users[order], cols[order]
    by_user = np.argsort(users, kind="stable")
    users, cols = users[by_user], cols[by_user]
    counts = np.bincount(users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = np.where(counts >= 2, np.maximum(np.rint(counts * fraction), 1), 0).astype(np.int64)
    rank = np.arange(len(users)) - starts[users]
    chosen = rank < take[users]
    codes = users[chosen].astype(np.int64) * data.n_items + cols[chosen]
    return np.isin(_pair_codes(data), codes)


def choose_cold_items(data: InteractionData, fraction: float, rng: np.random.Generator,
                      among: np.ndarray | None = None) -> np.ndarray:
    """Bool mask over items: ``fraction`` of the tagged items that somebody listened to."""
    listened = np.diff(positive_pairs(data).tocsc().indptr) > 0
    tagged = np.diff(sp.csr_matrix(data.item_genres).indptr) > 0
    eligible = listened & tagged & (True if among is None else among)
    idx = np.flatnonzero(eligible)
    cold = np.zeros(data.n_items, bool)
    cold[rng.choice(idx, size=int(round(fraction * len(idx))), replace=False)] = True
    return cold


@dataclass
class Splits:
    """Every set is expressed in the full data set's user and item indices."""

    data: InteractionData
    warm_train: np.ndarray        # event mask
    warm_test: sp.csr_matrix      # users x items, binary
    cold_items: np.ndarray        # item mask (test)
    cold_test: sp.csr_matrix
    val_train: np.ndarray         # event mask (also excludes val_cold and cold items)
    val_test: sp.csr_matrix
    val_cold_items: np.ndarray
    val_cold_test: sp.csr_matrix
    info: dict = field(default_factory=dict)


def _binary(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, copy=True)
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


def make_splits(data: InteractionData, p: Protocol) -> Splits:
    rng = np.random.default_rng(p.seed)
    all_pairs = _binary(positive_pairs(data))
    # warm: per user hold-out
    warm_out = holdout(data, p.test_fraction, rng)
    warm_test = _binary(positive_pairs(data, warm_out))
    # cold: a share of tagged artists leaves training entirely
    cold = choose_cold_items(data, p.cold_fraction, rng)
    cold_test = _binary(all_pairs.multiply(sp.csr_matrix(cold.astype(np.float32))[0]).tocsr())
    # validation: inside what both training sets share
    shared = ~warm_out & ~cold[data.events.item]
    shared_data = data.with_events(data.events.take(shared))
    val_cold = choose_cold_items(shared_data, p.cold_fraction, rng, among=~cold)
    val_out_local = holdout(shared_data, p.validation_fraction, rng, items=~val_cold & ~cold)
    shared_idx = np.flatnonzero(shared)
    val_out = np.zeros(len(data.events), bool)
    val_out[shared_idx[val_out_local]] = True
    val_train = shared & ~val_out & ~val_cold[data.events.item]
    val_test = _binary(positive_pairs(data, val_out))
    shared_pairs = _binary(positive_pairs(shared_data))
    val_cold_test = _binary(shared_pairs.multiply(
        sp.csr_matrix(val_cold.astype(np.float32))[0]).tocsr())
    info = {"users": data.n_users, "items": data.n_items, "pairs": int(all_pairs.nnz),
            "warm_test_pairs": int(warm_test.nnz), "cold_items": int(cold.sum()),
            "cold_test_pairs": int(cold_test.nnz),
            "validation_pairs": int(val_test.nnz), "validation_cold_items": int(val_cold.sum()),
            "validation_cold_pairs": int(val_cold_test.nnz)}
    return Splits(data, ~warm_out, warm_test, cold, cold_test, val_train, val_test, val_cold,
                  val_cold_test, info)
