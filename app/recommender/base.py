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
        h = _sorted_unique(h)  # sorted: the seed alone fixes the order
        if rules.exclude_explicit and len(h):
            h = h[~meta.explicit[h]]
        queues.append(_Queue(rng.permutation(h), rules.length))
    chosen: list[int] = []
    taken = Taken(rules.max_per_artist)

    def take(i: int) -> bool:
        s, a = int(meta.song[i]), int(meta.artist[i])
        if not taken.allows(s, a):
            return False
        chosen.append(i)
        taken.take(s, a)
        return True

    while len(chosen) < rules.length and any(q.left() for q in queues):
        for q in queues:  # one track per member per round
            while q.left():
                if take(q.next()):
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


def _sorted_unique(h) -> np.ndarray:
    """``np.unique`` of a member's history as int64, skipped when the history is already sorted
    and free of repeats (the service's cached histories are): the hash-based unique was half of
    a base playlist's time."""
    h = np.asarray(h, dtype=np.int64)
    if len(h) > 1 and not (h[1:] > h[:-1]).all():
        h = np.unique(h)
    return h


class _Queue:
    """A member's shuffled history, read front to back. Only the head a playlist can use is
    turned into Python ints (one round takes one track per member, and a playlist of L tracks
    rarely needs more than L from one member); the rest is converted if it is reached."""

    __slots__ = ("order", "items", "pos")

    def __init__(self, order: np.ndarray, head: int):
        self.order = order
        self.items: list[int] = order[:head].tolist()
        self.pos = 0

    def left(self) -> bool:
        return self.pos < len(self.order)

    def next(self) -> int:
        if self.pos == len(self.items):
            self.items += self.order[len(self.items):].tolist()
        i = self.items[self.pos]
        self.pos += 1
        return i
