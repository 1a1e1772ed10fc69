"""Values that are read on many requests: one way to keep them for a while, one to keep many.

``cached``: a single value, recomputed after its time to live. ``LRU``: many values by key,
the least recently used dropped past a size (the A/B arms a worker has seen, users' histories).

Each app keeps its own ``cached`` values (``app.extensions``), so two apps in one process (tests, the
benchmarks) never see each other's. A value is recomputed by the request that finds it older
than its time to live; concurrent requests at that moment may each recompute it, which costs a
query and nothing else.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

from flask import current_app

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
_KEY = "pozytywka_cache"


def cached(name: str, ttl: float, load: Callable[[], T]) -> T:
    store = current_app.extensions.setdefault(_KEY, {})
    hit = store.get(name)
    now = time.monotonic()
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = load()
    store[name] = (now, value)
    return value


def forget(name: str) -> None:
    """Drop ``name`` so the next read recomputes it (after this process changed its source)."""
    current_app.extensions.get(_KEY, {}).pop(name, None)


class LRU(Generic[K, T]):
    """A thread-safe map that keeps at most ``size`` entries, dropping the least recently used."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[K, T] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> T | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: T) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
