"""Friend groups in the real-data protocol: playlists for real groups on the warm split, their
figures, and the default strategy against the previous default paired over the same groups."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from app.recommender.dataset import InteractionData
from app.recommender.offline.evaluation import user_genre_lists
from app.recommender.offline.protocol import Protocol
from app.recommender.scoring import Recommender
from app.recommender.strategies import DEFAULT_STRATEGY, Pick, Rules, greedy_fill, select

# The default strategy is compared, on the same friend groups, with the strategy that was the
# default before the whole-group work: it must leave somebody out less often in groups of
# LEFT_OUT_SIZES (by at least LEFT_OUT_MARGIN) without losing hit rate at any size.
REFERENCE_STRATEGY = "fair"
LEFT_OUT_MARGIN = 0.05
LEFT_OUT_SIZES = (3, 4)
# The published bar the default is also compared with, paired over the same groups.
OUTSIDE_STRATEGY = "gfar"
PAIRED_GROUP_METRICS = ("someone_left_out", "hit_rate", "min_precision@20")


def group_eval(rec: Recommender, data: InteractionData, groups: list[np.ndarray],
               history: sp.csr_matrix, test: sp.csr_matrix, p: Protocol,
               popularity: np.ndarray) -> dict:
    """Per group size and strategy, the ``summarise_groups`` table; and per size the default
    strategy against ``fair`` (``REFERENCE_STRATEGY``), paired over the same groups."""
    history = sp.csr_matrix(history)
    test = sp.csr_matrix(test)
    n_test = np.diff(test.indptr)
    rules = Rules(length=p.group_k)
    genres = user_genre_lists(data)
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
                chosen, _, _ = select(Pick(name, z, raw, rec.song, rec.artist, rules, allowed))
            size_acc[name].append(group_figures(member_test, chosen, rules.length))
    out: dict = {"skipped_groups": skipped, "by_size": {},
                 "paired": {"strategy": DEFAULT_STRATEGY, "reference": REFERENCE_STRATEGY,
                            "by_size": {}}}
    out["paired_outside"] = {"strategy": DEFAULT_STRATEGY, "reference": OUTSIDE_STRATEGY,
                             "by_size": {}}
    for size in sorted(acc):
        out["by_size"][str(size)] = {name: summarise_groups(per_group)
                                     for name, per_group in acc[size].items()}
        for key, ref in (("paired", REFERENCE_STRATEGY), ("paired_outside", OUTSIDE_STRATEGY)):
            if DEFAULT_STRATEGY in acc[size] and ref in acc[size] and ref != DEFAULT_STRATEGY:
                out[key]["by_size"][str(size)] = paired_groups(
                    acc[size][DEFAULT_STRATEGY], acc[size][ref])
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
    # the published bar: nobody left out more often than under GFAR, no lower hit rate
    for size, pair in groups.get("paired_outside", {}).get("by_size", {}).items():
        ours_t, ref_t = g[size][default], g[size][OUTSIDE_STRATEGY]
        d = pair["someone_left_out"]
        out[f"groups_of_{size}_someone_left_out_default_le_{OUTSIDE_STRATEGY}"] = {
            "default": ours_t["share_groups_someone_left_out"],
            OUTSIDE_STRATEGY: ref_t["share_groups_someone_left_out"], **_interval(d),
            "met": d["difference"] <= 0}
        d = pair["hit_rate"]
        out[f"groups_of_{size}_hit_rate_default_ge_{OUTSIDE_STRATEGY}"] = {
            "default": ours_t["hit_rate"], OUTSIDE_STRATEGY: ref_t["hit_rate"],
            **_interval(d), "met": d["difference"] >= 0}
    return out


def _interval(d: dict) -> dict:
    return {"difference": d["difference"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]}
