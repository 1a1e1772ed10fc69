"""The group direction's best tracks from an int8 copy of the catalogue (numba).

Why: candidate retrieval needs the top of one flat direction (the members' standardised tastes
averaged) over the whole catalogue, which graph search finds poorly. Scanning the float32 item
rows reads the whole matrix on every request and partial-sorting a catalogue-sized score array
costs as much again. Here the scan reads a quarter of the bytes (one signed byte per feature,
each feature scaled by its own largest magnitude), keeps a running top-k while it goes (a
buffer partitioned whenever it fills, so the threshold only rises), and never writes a
catalogue-sized array.

The scores are approximate (rounding each entry to 1/254 of its feature's range), so the top-k
may differ from the exact one at its lower edge; it only chooses candidates, which the
recommender then scores exactly. Results are deterministic: the same rows, query and k give the
same indices, in ascending order.
"""
from __future__ import annotations

import numpy as np

import app.recommender.kernels  # noqa: F401  (sets NUMBA_CACHE_DIR before numba is imported)
from numba import njit  # noqa: E402

# tracks per block: one block of the int8 matrix (features x BLOCK bytes) and its float32
# accumulator stay in the core's cache while every feature is added in
BLOCK = 4096


@njit(cache=True, nogil=True, fastmath=True)
def _block_scores(block, q, acc):
    """acc = q . block (``block``: features x BLOCK)."""
    for i in range(BLOCK):
        acc[i] = 0.0
    for j in range(block.shape[0]):
        qj = q[j]
        row = block[j]
        for i in range(BLOCK):
            acc[i] += qj * row[i]


@njit("int64[::1](int8[:, :, ::1], float32[::1], int64, int64)", cache=True, nogil=True)
def _scan_top(x, q, n, k):
    """Indices of the ``k`` largest approximate scores ``q . x`` over ``n`` tracks, ascending."""
    k = min(k, n)
    out = np.empty(0, np.int64)
    if k <= 0:
        return out
    cap = 4 * k + BLOCK
    idx = np.empty(cap, np.int64)
    val = np.empty(cap, np.float32)
    acc = np.empty(BLOCK, np.float32)
    cnt = 0
    thr = -np.inf
    for blk in range(x.shape[0]):
        _block_scores(x[blk], q, acc)
        start = blk * BLOCK
        m = min(BLOCK, n - start)
        if cnt + m > cap:
            # keep the best k seen so far: all above the k-th score, then ties at it in
            # index order; later tracks must beat it, as an equal score ranks after them
            thr = np.partition(val[:cnt], cnt - k)[cnt - k]
            ties = k
            for t in range(cnt):
                if val[t] > thr:
                    ties -= 1
            kept = 0
            for t in range(cnt):
                v = val[t]
                if v > thr or (v == thr and ties > 0):
                    if v == thr:
                        ties -= 1
                    val[kept] = v
                    idx[kept] = idx[t]
                    kept += 1
            cnt = kept
        for i in range(m):
            if acc[i] > thr:
                val[cnt] = acc[i]
                idx[cnt] = start + i
                cnt += 1
    # the best k by (score descending, index ascending): a stable order, whatever the ties
    order = np.argsort(-val[:cnt], kind="mergesort")[:k]
    out = np.sort(idx[:cnt][order])
    return out


class GroupScan:
    """An int8, block-wise feature-major copy of ``items_t`` (features x tracks, float32)."""

    def __init__(self, items_t: np.ndarray):
        d, n = items_t.shape
        self.d, self.n = d, n
        peak = np.maximum(items_t.max(axis=1), -items_t.min(axis=1)).astype(np.float64)
        self.scale = np.where(peak > 0, peak / 127.0, 1.0)
        n_blocks = -(-n // BLOCK)
        packed = np.zeros((n_blocks, d, BLOCK), np.int8)
        for b in range(n_blocks):  # block by block: no catalogue-sized float temporary
            cols = items_t[:, b * BLOCK:(b + 1) * BLOCK].astype(np.float64) / self.scale[:, None]
            packed[b, :, :cols.shape[1]] = np.rint(cols).astype(np.int8)
        self.packed = packed

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)

    def top(self, q: np.ndarray, k: int) -> np.ndarray:
        """Approximately the ``k`` tracks with the largest ``q . items``, ascending indices."""
        scaled = np.ascontiguousarray(np.asarray(q, np.float64) * self.scale, np.float32)
        return _scan_top(self.packed, scaled, self.n, int(k))
