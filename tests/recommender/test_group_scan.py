"""The int8 group scan returns the top of a direction over the whole catalogue.

Rows whose entries are whole multiples of their feature's step (largest magnitude / 127, here
a power of two) are represented exactly in int8 and scored exactly, so there the scan must
return the exact top-k, ties broken by the lower index; on ordinary float rows only the lower
edge of the top-k may differ.
"""
from __future__ import annotations

import numpy as np
import pytest

from app.recommender.group_scan import BLOCK, GroupScan


def _exact_top(items_t: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = q.astype(np.float64) @ items_t.astype(np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))  # best first, ties: lower index
    return np.sort(order[:k])


@pytest.mark.parametrize("n", [1, 7, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17])
@pytest.mark.parametrize("k", [1, 5, 300])
def test_exactly_representable_rows_give_the_exact_top_with_ties_by_index(n, k):
    rng = np.random.default_rng(n * 1000 + k)
    d = 6
    step = np.float32(2.0 ** -5)  # every feature's peak is 127 steps: its int8 scale is ``step``
    # few distinct values: many tied scores, each entry a whole number of steps
    items_t = rng.integers(-3, 4, (d, n)).astype(np.float32) * step
    items_t[:, 0] = 127 * step
    scan = GroupScan(items_t)
    assert np.all(scan.scale == step)
    q = rng.integers(-2, 3, d).astype(np.float32)  # every product and partial sum is exact
    got = scan.top(q, k)
    want = _exact_top(items_t, q, k)
    assert got.dtype == np.int64
    assert np.array_equal(got, want)


def test_float_rows_find_nearly_all_of_the_exact_top():
    rng = np.random.default_rng(3)
    n, d, k = 5 * BLOCK + 123, 50, 400
    items_t = rng.normal(0, 0.4, (d, n)).astype(np.float32)
    items_t[-2] = rng.normal(0, 0.3, n)  # the bias row
    items_t[-1] = 1.0
    scan = GroupScan(items_t)
    for seed in range(5):
        q = np.random.default_rng(seed).normal(0, 1, d).astype(np.float32)
        got = scan.top(q, k)
        assert len(got) == k and np.all(np.diff(got) > 0)
        exact = _exact_top(items_t, q, k)
        assert len(np.intersect1d(got, exact)) >= 0.97 * k
        # and the very top is always there: quantisation moves scores by far less than the
        # gap between the best tracks and the k-th
        assert np.isin(_exact_top(items_t, q, k // 4), got).all()


def test_edges_of_k():
    items_t = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    scan = GroupScan(items_t)
    q = np.ones(4, np.float32)
    assert scan.top(q, 0).size == 0
    assert np.array_equal(scan.top(q, 50), np.arange(10))  # more than the catalogue: all
    assert scan.nbytes == 4 * BLOCK  # one block, int8
    assert GroupScan(np.zeros((4, 0), np.float32)).top(q, 5).size == 0  # an empty catalogue


def test_the_sampled_floor_never_changes_the_answer():
    """The scan starts from a floor read off a strided sample; where the sample misjudges the
    catalogue (here: every sampled track scores far above the rest), fewer than k tracks pass
    it, and the scan must still return the exact top-k."""
    from app.recommender import group_scan

    n, d, k = 40 * BLOCK, 3, 100
    step = np.float32(2.0 ** -5)
    rng = np.random.default_rng(1)
    items_t = rng.integers(-3, 4, (d, n)).astype(np.float32) * step
    items_t[:, 0] = 127 * step
    sampled = np.arange(0, n, max(1, n // group_scan.SAMPLE_SIZE))
    items_t[0, sampled[1:]] = 100 * step
    scan = GroupScan(items_t)
    q = np.array([1, 0, 0], np.float32)
    assert np.array_equal(scan.top(q, k), _exact_top(items_t, q, k))
    # and where the sample judges well, the floor is used and the answer is the same
    for seed in range(3):
        q = np.random.default_rng(seed).integers(-2, 3, d).astype(np.float32)
        assert np.array_equal(scan.top(q, k), _exact_top(items_t, q, k))
