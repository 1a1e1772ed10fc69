"""A bounded map for values kept per process: the A/B arms a worker has seen, users'
histories, the rows of members the model knows by their genres.

Plain Python with no Flask, so the recommender can keep one too.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


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
