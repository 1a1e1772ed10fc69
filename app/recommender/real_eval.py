"""Evaluation on real data (Last.fm HetRec 2011, or any loader's ``InteractionData``).

Why a second protocol next to ``evaluation.py``'s time split: Last.fm has no listening times,
and the question here is different: does the product hold up on data nobody here made, against
an outside reference (``implicit``'s ALS), for new items (cold start) and for real friend groups?

Protocol (also written into EVALUATION.md by ``write_markdown``):

* **Warm split.** Per user, 20% of their positive (user, item) pairs are held out (seed fixed);
  the rest trains. Every item is a candidate except the user's own training items.
* **Cold split.** 10% of the tagged items that someone listened to are removed from training
  entirely (they are not even in the model's item list, so the product scores them from their
  features, exactly as it scores a track imported after training). Test: every pair on those
  items; candidates: the cold items.
* **Validation**, for every choice (LightFM configuration, ALS configuration, the cold-start
  blend): carved from the pairs that both training sets share (the warm training pairs minus
  the cold test items): per user 20% of pairs held out for warm validation, and 10% of the
  remaining tagged items held out entirely for cold validation. The test pairs are never looked
  at until the chosen configurations are final.
* **Groups.** Real friend groups (cliques of 2, 3 and 4 mutual friends from the loader; random
  groups when the data set has none) on the warm split, all members with held-out pairs; the
  members' training items are not candidates; playlists of 20. The default strategy is also
  compared with ``fair`` paired over the same groups (who gets left out, hit rate).

Metrics come from ``evaluation.ranking_metrics``; models from ``training.train`` and served
through ``scoring.Recommender`` (the product's path, including feature-only vectors for new
items); strategies from ``strategies.select``; the cold blend from ``content``.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from app.recommender.catalogue import Catalogue
from app.recommender.content import COLD_CONTENT_WEIGHT, USE_IDF, ContentIndex, blend_cold
from app.recommender.dataset import COUNT, SKIP, InteractionData
from app.recommender.evaluation import ranking_metrics
from app.recommender.features import WeightParams
from app.recommender.lastfm import describe, load_lastfm, subset_items
from app.recommender.scoring import Recommender
from app.recommender.strategies import DEFAULT_STRATEGY, STRATEGIES, Rules, greedy_fill, select
from app.recommender.training import TrainParams, cores, train

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Protocol:
    test_fraction: float = 0.2
    cold_fraction: float = 0.1
    validation_fraction: float = 0.2
    validation_users: int = 1000   # validation metrics on a user sample: the grid stays fast
    k: int = 10
    group_k: int = 20
    random_groups: int = 300       # only when the data set has no real groups
    seed: int = 0
    strategies: tuple[str, ...] = STRATEGIES
    # LightFM configurations tried for both the pure-CF and the hybrid model
    lightfm_grid: tuple[dict, ...] = (
        {"components": 64, "max_sampled": 10, "epochs": 20},
        {"components": 128, "max_sampled": 100, "epochs": 30},
    )
    # the serving-time mix of each user's recent-taste profile (scoring.py); no retraining
    profile_weights: tuple[float, ...] = (0.0, 0.5)
    als_grid: tuple[dict, ...] = tuple(
        {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f in (32, 64, 128) for r in (0.01, 0.1) for a in (1.0, 4.0))
    # content weights of the blend (1.0 would drop the model; it is reported as its own row)
    blend_weights: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
    idf_options: tuple[bool, ...] = (False, True)

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("strategies", "lightfm_grid", "profile_weights", "als_grid", "blend_weights",
                    "idf_options"):
            d[key] = list(d[key])
        return d


QUICK = Protocol(
    validation_users=300,
    lightfm_grid=({"components": 32, "max_sampled": 10, "epochs": 8},),
    profile_weights=(0.5,),
    als_grid=({"factors": 32, "regularization": 0.1, "alpha": 1.0, "iterations": 8},),
    blend_weights=(0.5, 0.9),
)


# ----- loading -------------------------------------------------------------------------------

def load_dataset(spec: str, *, max_users: int | None = None, seed: int = 0) -> InteractionData:
    """``lastfm:PATH`` | ``export:PATH`` | ``db`` (needs an app context) -> one data set."""
    kind, _, path = spec.partition(":")
    if kind == "lastfm":
        return load_lastfm(path, max_users=max_users, seed=seed)
    if kind == "export":
        from app.recommender.dataset import load_from_export

        return _limit_users(load_from_export(path), max_users, seed)
    if kind in ("db", "database"):
        from app.recommender.dataset import load_from_database

        return _limit_users(load_from_database(), max_users, seed)
    raise ValueError(f"unknown dataset {spec!r}: use lastfm:PATH, export:PATH or db")


def _limit_users(data: InteractionData, max_users: int | None, seed: int) -> InteractionData:
    if max_users is None or max_users >= data.n_users:
        return data
    keep = np.zeros(data.n_users, bool)
    keep[np.random.default_rng(seed).choice(data.n_users, max_users, replace=False)] = True
    return data.with_events(data.events.take(keep[data.events.user]))


# ----- splits --------------------------------------------------------------------------------

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


# ----- models --------------------------------------------------------------------------------

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
    genres = _genre_lists(data)
    return np.vstack([rec.member(int(u), genres[i]).row
                      for i, u in enumerate(data.user_ids)]).astype(np.float32)


def _genre_lists(data: InteractionData) -> list[list[str]]:
    g = sp.csr_matrix(data.user_genres)
    return [[str(data.genre_names[c]) for c in g.indices[g.indptr[u]:g.indptr[u + 1]]]
            for u in range(data.n_users)]


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


# ----- metrics -------------------------------------------------------------------------------

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


# ----- groups --------------------------------------------------------------------------------

# The default strategy is compared, on the same friend groups, with the strategy that was the
# default before the whole-group work: it must leave somebody out less often in groups of LEFT_OUT_SIZES
# (by at least LEFT_OUT_MARGIN) without losing hit rate at any size.
REFERENCE_STRATEGY = "fair"
LEFT_OUT_MARGIN = 0.05
LEFT_OUT_SIZES = (3, 4)
PAIRED_GROUP_METRICS = ("someone_left_out", "hit_rate", "min_precision@20")


def group_eval(rec: Recommender, data: InteractionData, groups: list[np.ndarray],
               history: sp.csr_matrix, test: sp.csr_matrix, p: Protocol,
               popularity: np.ndarray) -> dict:
    """Per group size and strategy, the ``summarise_groups`` table; and per size the default
    strategy against ``fair`` (``REFERENCE_STRATEGY``), paired over the same groups."""
    history = sp.csr_matrix(history)
    test = sp.csr_matrix(test)
    n_test = np.diff(test.indptr)
    rules = Rules(length=p.group_k, max_per_artist=3)
    genres = _genre_lists(data)
    names = list(p.strategies) + ["popularity"]
    acc: dict[int, dict[str, list[dict]]] = {}
    pop_order = np.argsort(-popularity, kind="stable")
    skipped = 0
    for group in groups:
        group = np.asarray(group, dtype=np.int64)
        if len(group) < 2 or (n_test[group] == 0).any():
            skipped += 1
            continue
        members = [rec.member(int(data.user_ids[u]), genres[u]) for u in group]
        rows = np.vstack([m.row for m in members]).astype(np.float32)
        raw = rec.scores(rows)
        z = rec.standardise(rows, raw)
        # the group's known items are not candidates: the playlist is judged on what it adds
        allowed = np.ones(data.n_items, bool)
        allowed[np.unique(history[group].indices)] = False
        member_test = test[group]
        size_acc = acc.setdefault(len(group), {n: [] for n in names})
        for name in names:
            if name == "popularity":
                chosen = greedy_fill(pop_order[allowed[pop_order]][:10 * rules.length],
                                     rec.song, rec.artist, rules, None)
            else:
                chosen, _, _ = select(name, z, raw, rec.song, rec.artist, rules, allowed)
            size_acc[name].append(group_figures(member_test, chosen, rules.length))
    out: dict = {"skipped_groups": skipped, "by_size": {},
                 "paired": {"strategy": DEFAULT_STRATEGY, "reference": REFERENCE_STRATEGY,
                            "by_size": {}}}
    for size in sorted(acc):
        out["by_size"][str(size)] = {name: summarise_groups(per_group)
                                     for name, per_group in acc[size].items()}
        if DEFAULT_STRATEGY in acc[size] and REFERENCE_STRATEGY in acc[size]:
            out["paired"]["by_size"][str(size)] = paired_groups(
                acc[size][DEFAULT_STRATEGY], acc[size][REFERENCE_STRATEGY])
    return out


def group_figures(member_test: sp.csr_matrix, chosen, length: int) -> dict[str, float]:
    """One group's figures for one playlist: ``member_test`` is members x items (held-out
    items), ``chosen`` the playlist's item indices. A member is left out when none of their
    held-out items made the playlist."""
    hits = np.asarray(sp.csr_matrix(member_test)[:, np.asarray(chosen, dtype=np.int64)]
                      .sum(axis=1)).ravel()
    precision = hits / length
    return {"hit_rate": float((hits > 0).mean()),
            "mean_precision@20": float(precision.mean()),
            "min_precision@20": float(precision.min()),
            "members_no_hit": int((hits == 0).sum()), "members": int(len(hits)),
            "someone_left_out": float((hits == 0).any())}


def summarise_groups(per_group: list[dict]) -> dict:
    """Averages over groups (hit rate and precisions per group first, then over groups);
    ``share_members_no_hit`` pools the members of all groups."""
    def mean(key: str) -> float:
        return round(float(np.mean([g[key] for g in per_group])), 4)

    return {"groups": len(per_group), "hit_rate": mean("hit_rate"),
            "mean_precision@20": mean("mean_precision@20"),
            "min_precision@20": mean("min_precision@20"),
            "share_members_no_hit": round(sum(g["members_no_hit"] for g in per_group)
                                          / sum(g["members"] for g in per_group), 4),
            "share_groups_someone_left_out": mean("someone_left_out")}


def paired_groups(ours: list[dict], reference: list[dict]) -> dict:
    """``ours`` minus ``reference`` on the same groups (in the same order), per metric of
    ``PAIRED_GROUP_METRICS``, with a 95 % interval: the gap between two strategies is judged
    against the group-to-group noise, not against two independent samples."""
    if len(ours) != len(reference):
        raise ValueError("paired figures need the same groups")
    return {"groups": len(ours)} | {
        metric: paired_difference([g[metric] for g in ours], [g[metric] for g in reference])
        for metric in PAIRED_GROUP_METRICS}


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of ``a - b`` over the same users (or groups) with a 95% normal interval: whether a
    gap between two models on one split is larger than the user-to-user noise."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    half = 1.96 * d.std(ddof=1) / np.sqrt(max(len(d), 1)) if len(d) > 1 else float("nan")
    return {"difference": round(float(d.mean()), 5), "ci_low": round(float(d.mean() - half), 5),
            "ci_high": round(float(d.mean() + half), 5), "n": int(len(d))}


def random_groups(users: np.ndarray, n: int, sizes: tuple[int, ...], seed: int
                  ) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(users, size=sizes[i % len(sizes)], replace=False) for i in range(n)]


# ----- the whole run -------------------------------------------------------------------------

def run(data: InteractionData, p: Protocol | None = None, *, echo: Echo | None = None) -> dict:
    """Every table of EVALUATION.md as one JSON-ready dict."""
    p = p or Protocol()
    say = echo or (lambda _m: None)
    started = time.perf_counter()
    stage: dict[str, float] = {}
    s = make_splits(data, p)
    say(f"data: {describe(data)}; splits: {s.info}")
    result: dict = {"dataset": data.source, "data": describe(data), "splits": s.info,
                    "protocol": p.as_dict(), "timings_s": stage}
    no_items = np.zeros(data.n_items, bool)

    # -- validation: LightFM grid (pure CF and hybrid), cold blend, ALS grid --
    t0 = time.perf_counter()
    val_users = sample_users(s.val_test, p.validation_users, p.seed)
    val_history = _binary(positive_pairs(data, s.val_train))
    val_drop = s.cold_items | s.val_cold_items
    warm_candidates = ~val_drop
    validation: dict = {"lightfm": [], "als": [], "cold_blend": []}
    best: dict[str, tuple[float, dict]] = {}
    cold_choice: tuple[float, dict] | None = None
    for family in ("cf", "hybrid"):
        for grid_entry in p.lightfm_grid:
            params = lightfm_params(data, grid_entry, family == "hybrid", p.seed)
            trained, secs = fit_lightfm(data, s.val_train, val_drop, params)
            for pw in p.profile_weights:
                config = {**grid_entry, "profile_weight": pw}
                rec = with_profile_weight(trained, pw)
                rows = member_rows(rec, data)
                m = rank_eval(lambda b: rec.scores(rows[b]), s.val_test, p.k,
                              exclude=val_history, candidates=warm_candidates, users=val_users)
                validation["lightfm"].append({"family": family, **config, **m,
                                              "train_s": round(secs, 1)})
                say(f"validation lightfm {family} {config}: {m} ({secs:.0f}s)")
                key = (m[f"precision@{p.k}"], m[f"ndcg@{p.k}"])
                if family not in best or key > best[family][0]:
                    best[family] = (key, config)
                if family == "hybrid":
                    options = [(idf, w) for idf in p.idf_options for w in p.blend_weights]
                    for (idf, w), cm in cold_eval(rec, rows, data, val_history,
                                                  s.val_cold_test, s.val_cold_items, p,
                                                  options).items():
                        validation["cold_blend"].append({**config, "idf": idf, "weight": w,
                                                         **cm})
    val_counts = positive_pairs(data, s.val_train)  # dropped items simply have no pairs
    best_als: tuple[tuple, dict] | None = None
    for config in p.als_grid:
        U, V, secs = fit_als(val_counts, config, p.seed)
        m = rank_eval(lambda b: U[b] @ V.T, s.val_test, p.k, exclude=val_history,
                      candidates=warm_candidates, users=val_users)
        validation["als"].append({**config, **m, "train_s": round(secs, 1)})
        key = (m[f"precision@{p.k}"], m[f"ndcg@{p.k}"])
        if best_als is None or key > best_als[0]:
            best_als = (key, config)
    say(f"validation ALS: best {best_als[1]} {best_als[0]}")
    # the cold blend is chosen for the hybrid configuration that the warm validation chose
    for entry in validation["cold_blend"]:
        if all(entry[key] == value for key, value in best["hybrid"][1].items()):
            ck = (entry[f"precision@{p.k}"], entry[f"ndcg@{p.k}"])
            if cold_choice is None or ck > cold_choice[0]:
                cold_choice = (ck, {"idf": entry["idf"], "weight": entry["weight"]})
    ours = max(("cf", "hybrid"), key=lambda f: best[f][0])
    chosen = {"lightfm_cf": best["cf"][1], "lightfm_hybrid": best["hybrid"][1],
              "als": best_als[1], "our_best": f"lightfm_{ours}", "cold_blend": cold_choice[1],
              "product_cold_blend": {"idf": USE_IDF, "weight": COLD_CONTENT_WEIGHT}}
    result["validation"] = validation
    result["chosen"] = chosen
    stage["validation"] = round(time.perf_counter() - t0, 1)

    # -- warm test --
    t0 = time.perf_counter()
    train_pairs = positive_pairs(data, s.warm_train)
    history = _binary(train_pairs)
    popularity = np.diff(history.tocsc().indptr).astype(np.float64)
    rng = np.random.default_rng(p.seed + 1)
    warm: dict = {}
    warm["random"] = rank_eval(lambda b: rng.random((len(b), data.n_items)), s.warm_test, p.k,
                               exclude=history)
    warm["popularity"] = rank_eval(lambda b: np.broadcast_to(popularity, (len(b), data.n_items)),
                                   s.warm_test, p.k, exclude=history)
    recs: dict[str, Recommender] = {}
    per_user: dict[str, dict] = {}
    for family in ("cf", "hybrid"):
        params = lightfm_params(data, best[family][1], family == "hybrid", p.seed)
        rec, secs = fit_lightfm(data, s.warm_train, no_items, params)
        rows = member_rows(rec, data)
        recs[family] = rec
        name = f"lightfm_{family}"
        warm[name] = rank_eval(lambda b: rec.scores(rows[b]), s.warm_test, p.k, exclude=history,
                               per_user=per_user.setdefault(name, {})) | {
            "train_s": round(secs, 1)}
        say(f"test lightfm {family}: {warm[name]}")
    U, V, secs = fit_als(train_pairs, best_als[1], p.seed)
    warm["als"] = rank_eval(lambda b: U[b] @ V.T, s.warm_test, p.k, exclude=history,
                            per_user=per_user.setdefault("als", {})) | {"train_s": round(secs, 1)}
    say(f"test ALS: {warm['als']}")
    result["warm"] = warm
    result["warm_paired"] = {
        metric: paired_difference(per_user[f"lightfm_{ours}"][metric], per_user["als"][metric])
        for metric in (f"precision@{p.k}", f"ndcg@{p.k}")}
    stage["warm_test"] = round(time.perf_counter() - t0, 1)

    # -- groups on the warm split, served by our best model --
    t0 = time.perf_counter()
    groups = list(data.groups)
    kind = "friend cliques"
    if not groups:
        kind = "random groups (the data set has no friendships)"
        groups = random_groups(np.flatnonzero(np.diff(s.warm_test.indptr) > 0),
                               p.random_groups, (2, 3, 4), p.seed)
    result["groups"] = group_eval(recs[ours], data, groups, history, s.warm_test, p, popularity)
    result["groups"]["kind"] = kind
    result["groups"]["model"] = f"lightfm_{ours}"
    stage["groups"] = round(time.perf_counter() - t0, 1)

    # -- cold test --
    t0 = time.perf_counter()
    cold_train = ~s.cold_items[data.events.item]
    cold_history = _binary(positive_pairs(data, cold_train))
    params = lightfm_params(data, best["hybrid"][1], True, p.seed)
    rec, secs = fit_lightfm(data, cold_train, s.cold_items, params)
    rows = member_rows(rec, data)
    cold: dict = {}
    cold["random"] = _cold_random(s.cold_test, s.cold_items, p, rng)
    plain = ContentIndex.build(data.item_genres, use_idf=False)
    plain_profiles = plain.profiles(cold_history)
    cold["content_reference"] = rank_eval(lambda b: plain.similarity(plain_profiles[b]),
                                          s.cold_test, p.k, exclude=None,
                                          candidates=s.cold_items)
    cb = cold_choice[1]
    chosen_key = (cb["idf"], cb["weight"])
    content_only = (True, 1.0)
    measured = cold_eval(rec, rows, data, cold_history, s.cold_test, s.cold_items, p,
                         list(dict.fromkeys([(USE_IDF, 0.0), content_only, chosen_key])),
                         product=True)
    cold["lightfm_hybrid_features"] = measured[(USE_IDF, 0.0)]
    cold["content_idf"] = measured[content_only]
    cold["our_cold_path"] = measured["product"]
    if chosen_key != (USE_IDF, COLD_CONTENT_WEIGHT):
        cold["validation_chosen_blend"] = measured[chosen_key]
    cold["lightfm_train_s"] = round(secs, 1)
    result["cold"] = cold
    say(f"cold: {cold}")
    stage["cold_test"] = round(time.perf_counter() - t0, 1)

    result["targets"] = check_targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def cold_eval(rec: Recommender, rows: np.ndarray, data: InteractionData,
              history: sp.csr_matrix, test: sp.csr_matrix, cold_items: np.ndarray, p: Protocol,
              options: list[tuple[bool, float]], *, product: bool = False) -> dict:
    """The cold path for each (IDF, content weight): the model's z for every item, the cold
    columns blended with the content z (``content.blend_cold``), ranked among the cold items.
    ``product``: also the product's own ``rec.cold_blend`` (its constants and per-item weights,
    as ``Recommender.recommend`` applies them), under the key "product". The model's z and each
    content z are computed once per batch."""
    indexes = {idf: ContentIndex.build(data.item_genres, use_idf=idf)
               for idf in {idf for idf, _ in options}}
    profiles = {idf: index.profiles(history) for idf, index in indexes.items()}
    blend = rec.cold_blend if product else None
    if product and (blend is None or not np.array_equal(blend.new, cold_items)):
        raise ValueError("the product's cold blend must cover exactly the cold items")
    product_profiles = blend.index.profiles(history) if blend is not None else None

    def scores(b: np.ndarray) -> dict[str, np.ndarray]:
        z = rec.standardise(rows[b], rec.scores(rows[b]))
        content = {idf: indexes[idf].standardised(profiles[idf][b]) for idf in indexes}
        out = {f"{idf}:{w}": blend_cold(z, content[idf], cold_items, w) if w > 0 else z
               for idf, w in options}
        if blend is not None:
            out["product"] = blend.apply(z, [product_profiles[i] for i in b])
        return out

    out = rank_eval_many(scores, test, p.k, exclude=None, candidates=cold_items)
    found: dict = {(idf, w): out[f"{idf}:{w}"] for idf, w in options}
    if blend is not None:
        found["product"] = out["product"]
    return found


def _cold_random(test: sp.csr_matrix, cold_items: np.ndarray, p: Protocol,
                 rng: np.random.Generator) -> dict[str, float]:
    n = test.shape[1]
    return rank_eval(lambda b: rng.random((len(b), n)), test, p.k, exclude=None,
                     candidates=cold_items)


def check_targets(result: dict) -> dict:
    """The issue's targets on this result, with the numbers they compare."""
    k = result["protocol"]["k"]
    w = result["warm"]
    ours = result["chosen"]["our_best"]
    out: dict = {}
    for metric in (f"precision@{k}", f"ndcg@{k}"):
        out[f"warm_{metric}_ours_ge_als"] = {
            "ours": w[ours][metric], "als": w["als"][metric],
            "met": w[ours][metric] >= w["als"][metric]}
    c = result["cold"]
    for metric in (f"precision@{k}", f"ndcg@{k}"):
        out[f"cold_{metric}_ours_ge_content"] = {
            "ours": c["our_cold_path"][metric], "content": c["content_reference"][metric],
            "met": c["our_cold_path"][metric] >= c["content_reference"][metric]}
    out.update(group_targets(result["groups"]))
    return out


def group_targets(groups: dict) -> dict:
    """The friend-group targets on ``group_eval``'s result: the default beats ``mean_rank``
    on hit rate and least-served member; against ``REFERENCE_STRATEGY`` on the same groups it
    leaves somebody out at least ``LEFT_OUT_MARGIN`` less often in groups of
    ``LEFT_OUT_SIZES`` (and by more than the interval) with no lower hit rate at any size."""
    g = groups["by_size"]
    default = DEFAULT_STRATEGY
    out: dict = {}
    for size, table in g.items():
        if default in table and "mean_rank" in table:
            for metric in ("hit_rate", "min_precision@20"):
                out[f"groups_of_{size}_{metric}_default_gt_mean_rank"] = {
                    "default": table[default][metric], "mean_rank": table["mean_rank"][metric],
                    "met": table[default][metric] > table["mean_rank"][metric]}
    for size, pair in groups.get("paired", {}).get("by_size", {}).items():
        ours_t, ref_t = g[size][default], g[size][REFERENCE_STRATEGY]
        if int(size) in LEFT_OUT_SIZES:
            d = pair["someone_left_out"]
            out[f"groups_of_{size}_someone_left_out_default_at_least_{LEFT_OUT_MARGIN}_below_"
                f"{REFERENCE_STRATEGY}"] = {
                "default": ours_t["share_groups_someone_left_out"],
                REFERENCE_STRATEGY: ref_t["share_groups_someone_left_out"], **_interval(d),
                "met": d["difference"] <= -LEFT_OUT_MARGIN and d["ci_high"] < 0}
        d = pair["hit_rate"]
        out[f"groups_of_{size}_hit_rate_default_ge_{REFERENCE_STRATEGY}"] = {
            "default": ours_t["hit_rate"], REFERENCE_STRATEGY: ref_t["hit_rate"],
            **_interval(d), "met": d["difference"] >= 0}
    return out


def _interval(d: dict) -> dict:
    return {"difference": d["difference"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]}


# ----- EVALUATION.md -------------------------------------------------------------------------

LABELS = {"random": "random", "popularity": "popularity (training listeners)",
          "lightfm_cf": "LightFM, pure collaborative filtering",
          "lightfm_hybrid": "LightFM hybrid (identity + tags)",
          "als": "implicit ALS (log-scaled counts), outside reference",
          "content_reference": "content reference: tag cosine (plain)",
          "lightfm_hybrid_features": "LightFM hybrid, tag features only (no blend)",
          "content_idf": "content only, IDF-weighted cosine (the blend's content part)",
          "our_cold_path": "our cold-start path: the product's blend (content.ColdStartBlend)",
          "validation_chosen_blend": "the blend validation chose (differs from the product's)"}


def _table(rows: dict, metrics: list[str], bold: str | None = None) -> list[str]:
    lines = ["| model | " + " | ".join(metrics) + " |",
             "| --- | " + " | ".join("---:" for _ in metrics) + " |"]
    for name, vals in rows.items():
        if not isinstance(vals, dict):
            continue
        label = LABELS.get(name, name)
        if name == bold:
            label = f"**{label}** (our best)"
        lines.append(f"| {label} | " + " | ".join(_cell(m, vals.get(m, "")) for m in metrics)
                     + " |")
    return lines


def _cell(key: str, value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if key.endswith("_s") else f"{value:.4f}"
    return str(value)


def _gap(d: dict) -> str:
    return f"{d['difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def _tick(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write_markdown(result: dict, path: str | Path, *, command: str) -> str:
    """Render the result as EVALUATION.md (returned and written to ``path``)."""
    p = result["protocol"]
    k = p["k"]
    metrics = [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", "auc"]
    d = result["data"]
    sp_ = result["splits"]
    chosen = result["chosen"]
    lastfm = str(result["dataset"]).startswith("lastfm:")
    items, meta = ("artists", "tags") if lastfm else ("tracks", "genres")
    lines = [
        "# Evaluation on real data" if lastfm else "# Evaluation (real-data protocol)",
        "",
        "Generated by a command; do not edit by hand. Regenerate with:",
        "",
        "```",
        command,
        "```",
        "",
        f"- generated: {result['generated']} on {result['machine']}",
        f"- run time: **{result['seconds']:.0f} s** (stages: "
        + ", ".join(f"{k_} {v:.0f} s" for k_, v in result["timings_s"].items()) + ")",
        f"- data set: `{result['dataset']}`: {d['users']:,} users, {d['artists']:,} items "
        f"({items}), {d['pairs']:,} (user, item) pairs, {d['tags']:,} {meta} on "
        f"{d['tagged_artists']:,} items",
        "",
        "## Targets",
        "",
        "| target | ours | reference | paired difference (95% interval) | |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, t in result["targets"].items():
        vals = [v for key, v in t.items() if key != "met"]
        lines.append(f"| {name.replace('_', ' ')} | {vals[0]:.4f} | {vals[1]:.4f} | "
                     f"{_gap(t) if 'difference' in t else ''} | {_tick(t['met'])} |")
    lines += [
        "",
        "## Protocol",
        "",
        f"- **Warm split**: per user, {p['test_fraction']:.0%} of their (user, item) pairs are "
        f"held out (seed {p['seed']}; users with one pair keep it). Candidates: every item "
        f"except the user's own training items (they are excluded from the ranking and from "
        f"AUC's negatives). {sp_['warm_test_pairs']:,} test pairs.",
        f"- **Cold split**: {p['cold_fraction']:.0%} of the items with {meta} that somebody "
        f"listened to ({sp_['cold_items']:,} items, {sp_['cold_test_pairs']:,} pairs) are "
        f"removed from training altogether: they are not in the model's item list, so the "
        f"product scores them from their {meta} exactly as it scores a track imported after "
        f"training. "
        f"Candidates: the cold items. ALS and popularity cannot score them.",
        f"- **Validation** (every hyper-parameter and the cold-start blend): carved from the "
        f"pairs both training sets share (warm training pairs minus the cold items): per user "
        f"{p['validation_fraction']:.0%} held out ({sp_['validation_pairs']:,} pairs; metrics on "
        f"a sample of up to {p['validation_users']} users), and {p['cold_fraction']:.0%} of the "
        f"remaining items with {meta} held out entirely ({sp_['validation_cold_items']:,} items) "
        f"for the cold-start choice. Grid: LightFM {list(p['lightfm_grid'])} x recent-taste "
        f"profile weight {list(p['profile_weights'])}, for pure CF and hybrid alike; "
        f"{len(p['als_grid'])} ALS configurations; content weights "
        f"{list(p['blend_weights'])} x IDF {list(p['idf_options'])}. The test pairs are not "
        f"used for any choice; the final models are retrained on the full training set of each "
        f"split with the chosen configuration.",
        ("- **Interaction weights**: listen counts, log-scaled (`log1p(count)`); LightFM gets "
         "them scaled into (0, 1] (WARP caps each example's loss), ALS as confidence "
         "`1 + alpha * log1p(count)`." if lastfm else
         "- **Interaction weights**: LightFM uses the product's event weights (likes, plays, "
         "skips, time decay); ALS gets `log1p` of each pair's plays and likes as confidence "
         "`1 + alpha * log1p(n)`."),
        "- **Groups**: "
        f"{result['groups']['kind']} on the warm split; every member has held-out items; the "
        f"members' training items are not candidates; playlists of {p['group_k']} items, served "
        f"by our best model through the product's `Recommender` and `strategies.select`. "
        f"Hit rate: share of members with at least one held-out item in the playlist "
        f"(averaged over groups); precision@{p['group_k']}: a member's held-out items in the "
        f"playlist / {p['group_k']}; minimum: the worst-served member of each group, averaged; "
        f"someone left out: the share of groups in which at least one member has none of "
        f"their held-out items in the playlist. The default strategy is compared with "
        f"`{REFERENCE_STRATEGY}` on the same groups: the mean of the per-group differences "
        f"with a 95% normal interval.",
        f"- Metrics: `app/recommender/evaluation.py::ranking_metrics` (precision@{k}, "
        f"recall@{k}, nDCG@{k}, AUC over all candidates).",
        "",
        f"## Warm split (per-user hold-out), {result['warm']['random']['users']:,} users",
        "",
    ]
    lines += _table(result["warm"], metrics + ["train_s"], bold=chosen["our_best"])
    paired = result.get("warm_paired", {})
    if paired:
        gaps = "; ".join(f"{m} {_gap(v)}" for m, v in paired.items())
        lines += ["", f"Our best minus ALS, paired over the same users (95% interval): {gaps}."]
    lines += [
        "",
        "Chosen on validation: "
        f"LightFM CF `{chosen['lightfm_cf']}`, LightFM hybrid `{chosen['lightfm_hybrid']}`, "
        f"ALS `{chosen['als']}`; our best model (by validation precision@{k}): "
        f"`{chosen['our_best']}`.",
        "",
        f"## Cold start ({sp_['cold_items']:,} {items} never seen in training)",
        "",
    ]
    lines += _table(result["cold"], metrics)
    cb = chosen["cold_blend"]
    pb = chosen["product_cold_blend"]
    lines += [
        "",
        f"Our cold-start path is the product's own `Recommender.cold_blend` "
        f"(`app/recommender/content.py::ColdStartBlend`, applied in `Recommender.recommend`): "
        f"the model's standardised score for a new item blended with the standardised cosine "
        f"between the item's {meta} and the member's profile (the {meta} of what they listened "
        f"to), `(1 - w) * z_model + w * z_content`; w = {pb['weight']} for items whose artist "
        f"the model does not know (every cold item here), less for new releases of known "
        f"artists. Validation chose IDF weighting {'on' if cb['idf'] else 'off'} and "
        f"w = {cb['weight']}; the product's constants are IDF {'on' if pb['idf'] else 'off'}, "
        f"w = {pb['weight']}"
        + (" (the same)." if (cb['idf'], cb['weight']) == (pb['idf'], pb['weight'])
           else " (they differ: see the extra row)."),
        "",
        f"## Real friend groups (served by `{result['groups']['model']}`, default strategy "
        f"`{DEFAULT_STRATEGY}`)",
        "",
    ]
    gm = ["groups", "hit_rate", "mean_precision@20", "min_precision@20", "share_members_no_hit",
          "share_groups_someone_left_out"]
    group_pairs = result["groups"].get("paired", {})
    for size, table in result["groups"]["by_size"].items():
        lines += [f"### Groups of {size}", ""]
        lines += _table({(f"{n} (default)" if n == DEFAULT_STRATEGY else n): v
                         for n, v in table.items()}, gm)
        pair = group_pairs.get("by_size", {}).get(size)
        if pair:
            gaps = "; ".join(f"{m.replace('_', ' ')} {_gap(pair[m])}"
                             for m in PAIRED_GROUP_METRICS)
            lines += ["", f"`{group_pairs['strategy']}` minus `{group_pairs['reference']}`, "
                          f"paired over "
                          f"the same {pair['groups']} groups (95% interval): {gaps}."]
        lines.append("")
    if result["groups"]["skipped_groups"]:
        lines += [f"{result['groups']['skipped_groups']} sampled groups were skipped because "
                  f"a member had no held-out items.", ""]
    lines += ["## Validation runs", "", "LightFM (pure CF and hybrid):", ""]
    lines += _dict_table(result["validation"]["lightfm"])
    lines += ["", "Cold-start blend (on the validation cold items):", ""]
    lines += _dict_table(result["validation"]["cold_blend"])
    lines += ["", "implicit ALS:", ""]
    lines += _dict_table(result["validation"]["als"])
    lines.append("")
    text = "\n".join(lines)
    Path(path).write_text(text, encoding="utf-8")
    return text


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _dict_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(none)"]
    keys = list(rows[0].keys())
    out = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(_cell(k, r[k]) for k in keys) + " |")
    return out


def report(spec: str, out: str | Path, *, command: str, protocol: Protocol | None = None,
           max_users: int | None = None, json_path: str | Path | None = None,
           echo: Echo | None = None) -> dict:
    """Load, run, write EVALUATION.md (and optionally the JSON); returns the result."""
    started = time.perf_counter()
    load_before = _load()
    protocol = protocol or Protocol()
    data = load_dataset(spec, max_users=max_users, seed=protocol.seed)
    result = run(data, protocol, echo=echo)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["generated"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["machine"] = (f"{platform.machine()}, {cores()} cores, Python "
                         f"{platform.python_version()}, OPENBLAS_NUM_THREADS="
                         f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; load average "
                         f"{load_before:.1f} at the start, {_load():.1f} at the end (other "
                         f"work on the machine slows the run)")
    result["command"] = command
    write_markdown(result, out, command=command)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result
