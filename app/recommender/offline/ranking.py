"""Mean ranking metrics over many users in batches: the real-data protocol's scorer of any
score function (a model, a baseline, a blend) against a held-out set."""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp

from app.recommender.offline.evaluation import ranking_metrics

ScoreFn = Callable[[np.ndarray], np.ndarray]


def rank_eval(score: ScoreFn, test: sp.csr_matrix, k: int, *, exclude: sp.csr_matrix | None,
              candidates: np.ndarray | None = None, users: np.ndarray | None = None,
              batch: int = 256, per_user: dict | None = None) -> dict[str, float]:
    """Mean precision@k, recall@k, nDCG@k and AUC over users with a test item among the
    candidates (a bool item mask; all items when None). ``per_user``, when given, receives
    each metric's per-user values (for paired comparisons)."""
    kept: dict = {}
    out = rank_eval_many(lambda b: {"": score(b)}, test, k, exclude=exclude,
                         candidates=candidates, users=users, batch=batch, per_user=kept)[""]
    if per_user is not None:
        per_user.update(kept.get("", {}))
    return out


def rank_eval_many(scores: Callable[[np.ndarray], dict[str, np.ndarray]], test: sp.csr_matrix,
                   k: int, *, exclude: sp.csr_matrix | None, candidates: np.ndarray | None = None,
                   users: np.ndarray | None = None, batch: int = 256,
                   per_user: dict | None = None) -> dict[str, dict]:
    """``rank_eval`` for several named score matrices that share their expensive parts (the
    cold-start blends share the model's and the content's scores)."""
    cols = np.arange(test.shape[1]) if candidates is None else np.flatnonzero(candidates)
    t = sp.csr_matrix(test)[:, cols].tocsr()
    ex = None if exclude is None else sp.csr_matrix(exclude)[:, cols].tocsr()
    has_test = np.flatnonzero(np.diff(t.indptr) > 0)
    users = has_test if users is None else np.intersect1d(users, has_test)
    sums: dict[str, dict[str, float]] = {}
    for start in range(0, len(users), batch):
        b = users[start:start + batch]
        for name, matrix in scores(b).items():
            s = np.asarray(matrix, dtype=np.float64)[:, cols]
            acc = sums.setdefault(name, {})
            for metric, values in ranking_metrics(s, t[b], k,
                                                  None if ex is None else ex[b]).items():
                acc[metric] = acc.get(metric, 0.0) + float(values.sum())
                if per_user is not None:
                    name_k = "auc" if metric == "auc" else f"{metric}@{k}"
                    per_user.setdefault(name, {}).setdefault(name_k, []).append(values)
    if per_user is not None:
        for name, metrics in per_user.items():
            for metric, parts in metrics.items():
                metrics[metric] = np.concatenate(parts)
    n = max(len(users), 1)
    return {name: {("auc" if m == "auc" else f"{m}@{k}"): round(v / n, 5) for m, v in acc.items()}
            | {"users": int(len(users))} for name, acc in sums.items()}


def sample_users(test: sp.csr_matrix, n: int, seed: int) -> np.ndarray:
    has = np.flatnonzero(np.diff(sp.csr_matrix(test).indptr) > 0)
    if len(has) <= n:
        return has
    return np.sort(np.random.default_rng(seed).choice(has, n, replace=False))
