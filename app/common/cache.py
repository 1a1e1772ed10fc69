"""Values that are read on many requests and may be a little stale: one way to keep them
(``cached``: a single value, recomputed after its time to live). Many values by key, bounded:
``app/common/lru.py``.

Each app keeps its own ``cached`` values (``app.extensions``), so two apps in one process (tests, the
benchmarks) never see each other's. A value is recomputed by the request that finds it older
than its time to live; concurrent requests at that moment may each recompute it, which costs a
query and nothing else.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from flask import current_app

T = TypeVar("T")
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
