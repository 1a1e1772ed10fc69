"""How often a member's "favourite" is a true favourite, per source of evidence and combined,
by history length, on a generated demo export (its hidden taste, ``GroundTruth.affinity``).

    OPENBLAS_NUM_THREADS=1 INSTANCE_DIR=... MODEL_DIR=... \
        python bench/measure_favourites.py --users 600 [--split 0.8]

True favourites: a member's top 2 % of the catalogue by the hidden taste (``promise.masks``).
Sources, each a ranked list per member: the served model's z (skips pushed down, as served);
the member's own history (``evidence.known_tracks``: plays, likes, repeats, no skips, decayed
as training decays); and combinations. ``--split``: train a fresh model on the events before
that time quantile and take the history from those events only (the honest setting of
``model evaluate``); without it, the active model and every event (``--served``).
Precision@k is the share of a list's first k that are true favourites; each figure comes with
a 95 % interval over members.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

BUCKETS = ((0, 0, "none"), (1, 49, "few (1-49)"), (50, 199, "some (50-199)"),
           (200, 10**9, "many (200+)"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=600)
    ap.add_argument("--split", type=float, default=None)
    ap.add_argument("--ground-truth", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from app import create_app
    from app.data.generator.ground_truth import GroundTruth
    from app.modelstore.loaders import load_interactions
    from app.playlists.holder import get_holder
    from app.recommender import promise
    from app.recommender.catalogue import Catalogue
    from app.recommender.evidence import known_by_user
    from app.recommender.offline.evaluation import _member_scores, user_genre_lists
    from app.recommender.scoring import Recommender
    from app.recommender.training import train

    app = create_app()
    with app.app_context():
        data = load_interactions()
        gt_path = args.ground_truth or str(Path(app.config.get("INSTANCE_DIR", app.instance_path))
                                           / "demo_data" / "ground_truth.npz")
        gt = GroundTruth.load(os.environ.get("GROUND_TRUTH", gt_path))
        if args.split is None:
            rec = get_holder().current().recommender
            events = data.events
        else:
            cutoff = data.time_quantile(args.split)
            train_data, _ = data.split_by_time(cutoff)
            params = get_holder().current().recommender.model.params
            model = train(train_data, params)
            rec = Recommender(model, Catalogue.from_data(train_data), version="measure")
            events = train_data.events
            assert float(events.time.max()) < cutoff
        params = rec.model.params.weights
        now = float(events.time.max())
        known = known_by_user(events.user, events.item, events.kind, events.time, params, now,
                              events.value)
        n_events = np.bincount(events.user, minlength=data.n_users)
        rng = np.random.default_rng(args.seed)
        users = np.sort(rng.choice(data.n_users, min(args.users, data.n_users), replace=False))
        genres = user_genre_lists(data)
        rows: dict[str, dict[str, list[float]]] = {}
        pos = rec.catalogue.item_ids
        assert list(pos) == list(data.item_ids)
        for u in users:
            member = rec.member(int(data.user_ids[u]), genres[u])
            z = _member_scores(rec, [member])[0]
            true = gt.affinity([int(data.user_ids[u])], data.item_ids)
            fav = promise.masks(true)[0][0]
            kn = known.get(int(u))
            bucket = next(name for lo, hi, name in BUCKETS if lo <= n_events[u] <= hi)
            lists = source_lists(z, kn)
            for name, ranked in lists.items():
                for k in (3, 20):
                    if len(ranked) >= k:
                        rows.setdefault(f"{name} @{k}", {}).setdefault(bucket, []).append(
                            float(fav[ranked[:k]].mean()))
        print(f"{len(users)} members; split {args.split}; favourites: top 2 % by hidden taste")
        names = [b[2] for b in BUCKETS]
        print(f"{'source':<44}" + "".join(f"{n:>24}" for n in names))
        for name, by in rows.items():
            cells = []
            for b in names:
                v = np.asarray(by.get(b, []))
                cells.append(f"{v.mean():.3f}±{1.96 * v.std(ddof=1) / np.sqrt(len(v)):.3f} "
                             f"({len(v)})" if len(v) > 1 else "-")
            print(f"{name:<44}" + "".join(f"{c:>24}" for c in cells))
    return 0


def source_lists(z: np.ndarray, kn) -> dict[str, np.ndarray]:
    """Each source's ranked list for one member."""
    model = np.argsort(-z, kind="stable")[:200]
    out = {"model": model}
    if kn is None or len(kn) == 0:
        return out
    hist = kn.top(len(kn))
    out["history (evidence)"] = hist
    top100 = set(hist[:100].tolist())
    top50 = model[:50]
    both = np.array([i for i in top50 if i in top100], np.int64)
    out["model top 50 in history top 100"] = both
    out["model top 50 not in history"] = np.array([i for i in top50 if i not in top100],
                                                  np.int64)
    e = np.zeros(len(z))
    e[kn.items] = kn.weight
    for beta in (0.25, 0.5, 1.0):
        out[f"combined z + {beta} log1p(evidence)"] = np.argsort(
            -(z + beta * np.log1p(e)), kind="stable")[:50]
    out["model top 50 reranked by evidence"] = top50[np.lexsort((np.arange(50),
                                                                  -e[top50]))]
    return out


if __name__ == "__main__":
    sys.exit(main())
