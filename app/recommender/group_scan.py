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
# tracks compared with the running threshold at once: a chunk whose best is below it (most of
# them, once the threshold has risen) is skipped after one vectorised maximum
CHUNK = 64
# the strided sample that sets the scan's starting floor, and how many times k tracks that
# floor lets through (on average; a misjudged sample only costs a second scan)
SAMPLE_SIZE = 4096
SAMPLE_MARGIN = 8


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


@njit(cache=True, nogil=True, fastmath=True)
def _chunk_max(acc, c0, c1):
    m = acc[c0]
    for i in range(c0 + 1, c1):
        m = max(m, acc[i])
    return m


@njit(cache=True, nogil=True)
def _keep_best(val, idx, cnt, k):
    """Compact the buffer to its best ``k`` (all above the k-th score, then ties at it in
    buffer order, which is index order); returns the k-th score."""
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
    return thr


@njit("int64[::1](int8[:, :, ::1], float32[::1], int64, int64, float64)", cache=True,
      nogil=True)
def _scan_top(x, q, n, k, floor):
    """Indices of the ``k`` largest approximate scores ``q . x`` over ``n`` tracks, ascending;
    only scores above ``floor`` are considered (fewer than ``k`` may come back)."""
    k = min(k, n)
    if k <= 0:
        return np.empty(0, np.int64)
    cap = 4 * k + BLOCK
    idx = np.empty(cap, np.int64)
    val = np.empty(cap, np.float32)
    acc = np.empty(BLOCK, np.float32)
    cnt = 0
    thr = floor
    for blk in range(x.shape[0]):
        _block_scores(x[blk], q, acc)
        start = blk * BLOCK
        m = min(BLOCK, n - start)
        if cnt + m > cap:
            # keep the best k seen so far; later tracks must beat the k-th, as an equal
            # score ranks after the ones kept (a higher index)
            thr = max(thr, _keep_best(val, idx, cnt, k))
            cnt = k
        for c0 in range(0, m, CHUNK):  # most chunks hold no track above the threshold
            c1 = min(c0 + CHUNK, m)
            if _chunk_max(acc, c0, c1) > thr:
                for i in range(c0, c1):
                    if acc[i] > thr:
                        val[cnt] = acc[i]
                        idx[cnt] = start + i
                        cnt += 1
    if cnt > k:
        _keep_best(val, idx, cnt, k)
        cnt = k
    return np.sort(idx[:cnt])


class GroupScan:
    """An int8, block-wise feature-major copy of ``items_t`` (features x tracks, float32)."""

    def __init__(self, items_t: np.ndarray):
        d, n = items_t.shape
        self.d, self.n = d, n
        peak = np.maximum(items_t.max(axis=1, initial=0.0),
                          -items_t.min(axis=1, initial=0.0)).astype(np.float64)
        self.scale = np.where(peak > 0, peak / 127.0, 1.0)
        n_blocks = -(-n // BLOCK)
        packed = np.zeros((n_blocks, d, BLOCK), np.int8)
        for b in range(n_blocks):  # block by block: no catalogue-sized float temporary
            cols = items_t[:, b * BLOCK:(b + 1) * BLOCK].astype(np.float64) / self.scale[:, None]
            packed[b, :, :cols.shape[1]] = np.rint(cols).astype(np.int8)
        self.packed = packed
        # the sample's int8 rows as float32 (tracks x features), scored as the scan scores
        stride = max(1, n // SAMPLE_SIZE)
        cols = np.arange(0, n, stride)
        self.sample = np.ascontiguousarray(
            packed[cols // BLOCK, :, cols % BLOCK].astype(np.float32))

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)

    def top(self, q: np.ndarray, k: int) -> np.ndarray:
        """Approximately the ``k`` tracks with the largest ``q . items``, ascending indices.

        The scan starts from a floor read off a fixed strided sample of the tracks, set so
        that about ``SAMPLE_MARGIN * k`` tracks pass it: fewer passes of the buffer, fewer
        comparisons. Where fewer than ``k`` pass (a sample that misjudged), the scan runs
        again without one, so the answer is always the same top-k."""
        k = int(k)
        if self.n == 0 or k <= 0:
            return np.zeros(0, np.int64)
        scaled = np.ascontiguousarray(np.asarray(q, np.float64) * self.scale, np.float32)
        floor = -np.inf
        s = len(self.sample)
        r = -(-SAMPLE_MARGIN * k * s // self.n)  # the sample's r-th best: ~margin * k pass
        if r < s // 2:
            floor = float(np.partition(self.sample @ scaled, s - r)[s - r])
        found = _scan_top(self.packed, scaled, self.n, k, floor)
        if len(found) < min(k, self.n):
            found = _scan_top(self.packed, scaled, self.n, k, -np.inf)
        return found
