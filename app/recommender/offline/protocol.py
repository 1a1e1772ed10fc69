"""The real-data protocol (Last.fm HetRec 2011, or any loader's ``InteractionData``).

Why a second protocol next to ``evaluation.py``'s time split: Last.fm has no listening times,
and the question here is different: does the product hold up on data nobody here made, against
an outside reference (``implicit``'s ALS), for new items (cold start) and for real friend groups?

Protocol (also written into EVALUATION.md by ``report.write_markdown``):

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

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from app.recommender.dataset import InteractionData
from app.recommender.offline.lastfm import load_lastfm
from app.recommender.strategies import STRATEGIES


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
    # EASE (outside reference): L2 strengths tried on validation; items with fewer training
    # users than min_users are left out of its dense inverse
    ease_grid: tuple[dict, ...] = tuple({"lambda": lam, "min_users": 3}
                                        for lam in (50.0, 200.0, 800.0))
    # content weights of the blend (1.0 would drop the model; it is reported as its own row)
    blend_weights: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95)
    idf_options: tuple[bool, ...] = (False, True)

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("strategies", "lightfm_grid", "profile_weights", "als_grid", "ease_grid",
                    "blend_weights", "idf_options"):
            d[key] = list(d[key])
        return d


QUICK = Protocol(
    validation_users=300,
    lightfm_grid=({"components": 32, "max_sampled": 10, "epochs": 8},),
    profile_weights=(0.5,),
    als_grid=({"factors": 32, "regularization": 0.1, "alpha": 1.0, "iterations": 8},),
    blend_weights=(0.5, 0.9),
    ease_grid=({"lambda": 200.0, "min_users": 3},),
)


def load_dataset(spec: str, *, max_users: int | None = None, seed: int = 0,
                 database: Callable[[], InteractionData] | None = None) -> InteractionData:
    """``lastfm:PATH`` | ``export:PATH`` | ``db`` -> one data set.

    ``database`` reads the ``db`` spec (``app.modelstore.loaders.load_interactions`` under an app
    context): the recommender itself never touches the database."""
    kind, _, path = spec.partition(":")
    if kind == "lastfm":
        return load_lastfm(path, max_users=max_users, seed=seed)
    if kind == "export":
        from app.recommender.dataset import load_from_export

        return _limit_users(load_from_export(path), max_users, seed)
    if kind in ("db", "database"):
        if database is None:
            raise ValueError("the db dataset needs the application's database loader")
        return _limit_users(database(), max_users, seed)
    raise ValueError(f"unknown dataset {spec!r}: use lastfm:PATH, export:PATH or db")


def _limit_users(data: InteractionData, max_users: int | None, seed: int) -> InteractionData:
    if max_users is None or max_users >= data.n_users:
        return data
    keep = np.zeros(data.n_users, bool)
    keep[np.random.default_rng(seed).choice(data.n_users, max_users, replace=False)] = True
    return data.with_events(data.events.take(keep[data.events.user]))
