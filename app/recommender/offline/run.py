"""The real-data protocol end to end (``protocol.py``): validation chooses every configuration,
then the warm test, the friend groups and the cold test run on the chosen ones; the result is
one JSON-ready dict, every table of EVALUATION.md (``report.py`` renders it)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from app.recommender.content import COLD_CONTENT_WEIGHT, USE_IDF, ContentIndex
from app.recommender.dataset import InteractionData
from app.recommender.offline.cold import cold_eval, cold_random
from app.recommender.offline.fitting import (
    ease_scores,
    fit_als,
    fit_ease,
    fit_lightfm,
    lightfm_params,
    member_rows,
    with_profile_weight,
)
from app.recommender.offline.groups import (
    group_eval,
    group_targets,
    paired_difference,
    random_groups,
)
from app.recommender.offline.lastfm import describe
from app.recommender.offline.protocol import Protocol
from app.recommender.offline.ranking import rank_eval, sample_users
from app.recommender.offline.splits import Splits, _binary, make_splits, positive_pairs
from app.recommender.scoring import Recommender

Say = Callable[[str], None]
FAMILIES = ("cf", "hybrid")


def run(data: InteractionData, p: Protocol | None = None, *,
        echo: Callable[[str], None] | None = None) -> dict:
    """Every table of EVALUATION.md as one JSON-ready dict."""
    p = p or Protocol()
    say = echo or (lambda _m: None)
    started = time.perf_counter()
    stage: dict[str, float] = {}
    s = make_splits(data, p)
    say(f"data: {describe(data)}; splits: {s.info}")
    result: dict = {"dataset": data.source, "data": describe(data), "splits": s.info,
                    "protocol": p.as_dict(), "timings_s": stage}
    with _timed(stage, "validation"):
        result["validation"], result["chosen"] = validate(data, s, p, say)
    chosen = result["chosen"]
    rng = np.random.default_rng(p.seed + 1)  # one stream for the warm and cold random rows
    with _timed(stage, "warm_test"):
        train_pairs = positive_pairs(data, s.warm_train)
        history = _binary(train_pairs)
        popularity = np.diff(history.tocsc().indptr).astype(np.float64)
        result["warm"], result["warm_paired"], ours = warm_test(
            data, s, p, chosen, train_pairs, popularity, rng, say)
    with _timed(stage, "groups"):
        result["groups"] = friend_groups(ours, data, s, p, history, popularity,
                                         chosen["our_best"])
    with _timed(stage, "cold_test"):
        result["cold"] = cold_test(data, s, p, chosen, rng)
        say(f"cold: {result['cold']}")
    result["targets"] = check_targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


@contextmanager
def _timed(stage: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    stage[name] = round(time.perf_counter() - t0, 1)


# ----- validation ------------------------------------------------------------------------------

class _Validation:
    """The validation split's shared parts (user sample, history, dropped items) and the runs
    recorded so far, one list per model family as EVALUATION.md's last tables show them."""

    def __init__(self, data: InteractionData, s: Splits, p: Protocol, say: Say) -> None:
        self.data, self.s, self.p, self.say = data, s, p, say
        self.users = sample_users(s.val_test, p.validation_users, p.seed)
        self.history = _binary(positive_pairs(data, s.val_train))
        self.drop = s.cold_items | s.val_cold_items
        self.runs: dict = {"lightfm": [], "als": [], "ease": [], "cold_blend": []}

    def score(self, fn) -> dict:
        return rank_eval(fn, self.s.val_test, self.p.k, exclude=self.history,
                         candidates=~self.drop, users=self.users)

    def key(self, m: dict) -> tuple[float, float]:
        return m[f"precision@{self.p.k}"], m[f"ndcg@{self.p.k}"]

    def lightfm(self, family: str) -> tuple[tuple, dict]:
        """The grid x profile weights for one family; the best (key, config). The hybrid
        family also records the cold-start blends of each configuration."""
        data, s, p = self.data, self.s, self.p
        best: tuple[tuple, dict] | None = None
        for grid_entry in p.lightfm_grid:
            params = lightfm_params(data, grid_entry, family == "hybrid", p.seed)
            trained, secs = fit_lightfm(data, s.val_train, self.drop, params)
            for pw in p.profile_weights:
                config = {**grid_entry, "profile_weight": pw}
                rec = with_profile_weight(trained, pw)
                rows = member_rows(rec, data)
                m = self.score(lambda b: rec.scores(rows[b]))
                self.runs["lightfm"].append({"family": family, **config, **m,
                                             "train_s": round(secs, 1)})
                self.say(f"validation lightfm {family} {config}: {m} ({secs:.0f}s)")
                if best is None or self.key(m) > best[0]:
                    best = (self.key(m), config)
                if family == "hybrid":
                    self.blends(rec, rows, config)
        return best

    def blends(self, rec: Recommender, rows: np.ndarray, config: dict) -> None:
        options = [(idf, w) for idf in self.p.idf_options for w in self.p.blend_weights]
        for (idf, w), cm in cold_eval(rec, rows, self.data, self.history, self.s.val_cold_test,
                                      self.s.val_cold_items, self.p, options).items():
            self.runs["cold_blend"].append({**config, "idf": idf, "weight": w, **cm})

    def als(self) -> tuple[tuple, dict]:
        counts = positive_pairs(self.data, self.s.val_train)  # dropped items have no pairs
        best: tuple[tuple, dict] | None = None
        for config in self.p.als_grid:
            U, V, secs = fit_als(counts, config, self.p.seed)
            m = self.score(lambda b: U[b] @ V.T)
            self.runs["als"].append({**config, **m, "train_s": round(secs, 1)})
            if best is None or self.key(m) > best[0]:
                best = (self.key(m), config)
        self.say(f"validation ALS: best {best[1]} {best[0]}")
        return best

    def ease(self) -> tuple[tuple, dict]:
        counts = positive_pairs(self.data, self.s.val_train)
        n = self.data.n_items
        best: tuple[tuple, dict] | None = None
        for config in self.p.ease_grid:
            fitted = fit_ease(counts, config)
            m = self.score(lambda b: ease_scores(fitted, b, n))
            self.runs["ease"].append({**config, **m, "train_s": round(fitted[3], 1)})
            if best is None or self.key(m) > best[0]:
                best = (self.key(m), config)
        self.say(f"validation EASE: best {best[1]} {best[0]}")
        return best

    def cold_blend(self, hybrid: dict) -> dict:
        """The blend is chosen for the hybrid configuration that the warm validation chose."""
        choice: tuple[tuple, dict] | None = None
        for entry in self.runs["cold_blend"]:
            if all(entry[key] == value for key, value in hybrid.items()):
                if choice is None or self.key(entry) > choice[0]:
                    choice = (self.key(entry), {"idf": entry["idf"], "weight": entry["weight"]})
        return choice[1]


def validate(data: InteractionData, s: Splits, p: Protocol, say: Say) -> tuple[dict, dict]:
    """Every validation run, and the configurations they choose (the test pairs unseen)."""
    v = _Validation(data, s, p, say)
    best = {family: v.lightfm(family) for family in FAMILIES}
    best_als = v.als()
    best_ease = v.ease()
    ours = max(FAMILIES, key=lambda f: best[f][0])
    chosen = {"lightfm_cf": best["cf"][1], "lightfm_hybrid": best["hybrid"][1],
              "als": best_als[1], "ease": best_ease[1], "our_best": f"lightfm_{ours}",
              "cold_blend": v.cold_blend(best["hybrid"][1]),
              "product_cold_blend": {"idf": USE_IDF, "weight": COLD_CONTENT_WEIGHT}}
    return v.runs, chosen


# ----- test stages -----------------------------------------------------------------------------

def warm_test(data: InteractionData, s: Splits, p: Protocol, chosen: dict,
              train_pairs: sp.csr_matrix, popularity: np.ndarray, rng: np.random.Generator,
              say: Say) -> tuple[dict, dict, Recommender]:
    """The per-user hold-out: baselines, both LightFM families retrained with their chosen
    configuration, ALS; our best against ALS paired over the same users. Also returns our best
    model, which serves the friend groups."""
    history = _binary(train_pairs)
    warm: dict = {}
    warm["random"] = rank_eval(lambda b: rng.random((len(b), data.n_items)), s.warm_test, p.k,
                               exclude=history)
    warm["popularity"] = rank_eval(lambda b: np.broadcast_to(popularity, (len(b), data.n_items)),
                                   s.warm_test, p.k, exclude=history)
    recs: dict[str, Recommender] = {}
    per_user: dict[str, dict] = {}
    for family in FAMILIES:
        name = f"lightfm_{family}"
        params = lightfm_params(data, chosen[name], family == "hybrid", p.seed)
        rec, secs = fit_lightfm(data, s.warm_train, np.zeros(data.n_items, bool), params)
        rows = member_rows(rec, data)
        recs[name] = rec
        warm[name] = rank_eval(lambda b: rec.scores(rows[b]), s.warm_test, p.k, exclude=history,
                               per_user=per_user.setdefault(name, {})) | {
            "train_s": round(secs, 1)}
        say(f"test lightfm {family}: {warm[name]}")
    U, V, secs = fit_als(train_pairs, chosen["als"], p.seed)
    warm["als"] = rank_eval(lambda b: U[b] @ V.T, s.warm_test, p.k, exclude=history,
                            per_user=per_user.setdefault("als", {})) | {"train_s": round(secs, 1)}
    say(f"test ALS: {warm['als']}")
    if "ease" in chosen:
        fitted = fit_ease(train_pairs, chosen["ease"])
        warm["ease"] = rank_eval(lambda b: ease_scores(fitted, b, data.n_items), s.warm_test,
                                 p.k, exclude=history,
                                 per_user=per_user.setdefault("ease", {})) | {
            "train_s": round(fitted[3], 1)}
        say(f"test EASE: {warm['ease']}")
    ours = chosen["our_best"]
    paired = {metric: paired_difference(per_user[ours][metric], per_user["als"][metric])
              for metric in (f"precision@{p.k}", f"ndcg@{p.k}")}
    if "ease" in warm:
        paired |= {f"{metric} vs EASE": paired_difference(per_user[ours][metric],
                                                          per_user["ease"][metric])
                   for metric in (f"precision@{p.k}", f"ndcg@{p.k}")}
    return warm, paired, recs[ours]


def friend_groups(rec: Recommender, data: InteractionData, s: Splits, p: Protocol,
                  history: sp.csr_matrix, popularity: np.ndarray, model: str) -> dict:
    """The data set's friend cliques (random groups when it has none), served by ``rec``."""
    groups = list(data.groups)
    kind = "friend cliques"
    if not groups:
        kind = "random groups (the data set has no friendships)"
        groups = random_groups(np.flatnonzero(np.diff(s.warm_test.indptr) > 0),
                               p.random_groups, (2, 3, 4), p.seed)
    result = group_eval(rec, data, groups, history, s.warm_test, p, popularity)
    result["kind"] = kind
    result["model"] = model
    return result


def cold_test(data: InteractionData, s: Splits, p: Protocol, chosen: dict,
              rng: np.random.Generator) -> dict:
    """The held-out items: the hybrid model's features alone, content alone, the product's
    blend (and the blend validation chose, when it differs) against a content reference."""
    cold_train = ~s.cold_items[data.events.item]
    cold_history = _binary(positive_pairs(data, cold_train))
    params = lightfm_params(data, chosen["lightfm_hybrid"], True, p.seed)
    rec, secs = fit_lightfm(data, cold_train, s.cold_items, params)
    rows = member_rows(rec, data)
    cold: dict = {}
    cold["random"] = cold_random(s.cold_test, s.cold_items, p, rng)
    plain = ContentIndex.build(data.item_genres, use_idf=False)
    plain_profiles = plain.profiles(cold_history)
    cold["content_reference"] = rank_eval(lambda b: plain.similarity(plain_profiles[b]),
                                          s.cold_test, p.k, exclude=None,
                                          candidates=s.cold_items)
    cb = chosen["cold_blend"]
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
    return cold


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
