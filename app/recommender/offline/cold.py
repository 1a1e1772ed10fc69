"""The cold-start path in the real-data protocol: items the model never saw, ranked by the
model's feature-only score blended with the content score (``content.blend_cold``)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from app.recommender.content import ContentIndex, blend_cold
from app.recommender.dataset import InteractionData
from app.recommender.offline.protocol import Protocol
from app.recommender.offline.ranking import rank_eval, rank_eval_many
from app.recommender.scoring import Recommender

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


def cold_random(test: sp.csr_matrix, cold_items: np.ndarray, p: Protocol,
                rng: np.random.Generator) -> dict[str, float]:
    n = test.shape[1]
    return rank_eval(lambda b: rng.random((len(b), n)), test, p.k, exclude=None,
                     candidates=cold_items)
