"""The base model (the A/B control): random tracks from the members' own listening history.

Round-robin over members so that every member contributes even when one of them has listened
to far more than the others; de-duplicated by song; padded with the catalogue's most popular
tracks when the histories together are too short. Reproducible for a seed.
"""
from __future__ import annotations

import numpy as np

from app.recommender.catalogue import Catalogue
from app.recommender.strategies import NotEnoughSongs, Rules, Taken


def base_playlist(histories: list[np.ndarray], catalogue: Catalogue, rules: Rules,
                  seed: int | None = None) -> tuple[list[int], list[str]]:
    """``histories``: per member, catalogue indices of tracks they played or liked."""
    rng = np.random.default_rng(seed)
    meta = catalogue.meta
    queues = []
    for h in histories:
        h = np.unique(np.asarray(h, dtype=np.int64))  # sorted: the seed alone fixes the order
        if rules.exclude_explicit and len(h):
            h = h[~meta.explicit[h]]
        queues.append(rng.permutation(h).tolist())
    chosen: list[int] = []
    taken = Taken(rules.max_per_artist)

    def take(i: int) -> bool:
        s, a = int(meta.song[i]), int(meta.artist[i])
        if not taken.allows(s, a):
            return False
        chosen.append(i)
        taken.take(s, a)
        return True

    cursors = [0] * len(queues)
    while len(chosen) < rules.length and any(c < len(q) for c, q in zip(cursors, queues)):
        for j, q in enumerate(queues):  # one track per member per round
            while cursors[j] < len(q):
                i = q[cursors[j]]
                cursors[j] += 1
                if take(i):
                    break
            if len(chosen) >= rules.length:
                break
    notes: list[str] = []
    if len(chosen) < rules.length:
        before = len(chosen)
        for i in catalogue.popular_order.tolist():
            if len(chosen) >= rules.length:
                break
            if rules.exclude_explicit and meta.explicit[i]:
                continue
            take(i)
        notes.append(f"padded with {len(chosen) - before} popular tracks: the members' history "
                     f"was too short")
    if len(chosen) < rules.length:  # tiny catalogues: the artist cap gives way
        for i in catalogue.popular_order.tolist():
            if len(chosen) >= rules.length:
                break
            if (rules.exclude_explicit and meta.explicit[i]) or int(meta.song[i]) in taken.songs:
                continue
            chosen.append(i)
            taken.songs.add(int(meta.song[i]))
    if len(chosen) < rules.length:
        raise NotEnoughSongs(f"the catalogue holds only {len(chosen)} distinct songs that pass the "
                         f"filters; asked for {rules.length}")
    return chosen, notes
