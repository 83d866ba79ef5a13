"""Int8 item vectors for one event's scoring pass over a large catalogue.

Scoring a session state against every item reads the whole item table, so on a large
catalogue an event's cost is the table's size. Stored as int8 with one float32 scale per item
it is a quarter of the float32 table; :func:`first_pass` scores every item from it and keeps
each row's best ``m`` on the fly (no score array, no separate top-k pass), and
:func:`exact_top_k` scores those candidates again from the float32 table.

The int8 table is laid out in blocks of :data:`BLOCK` items, dimension-major inside a block,
so that the inner loop runs over items: contiguous int8 loads, no horizontal sums, and the
block's accumulators stay in the first-level cache.
"""

from __future__ import annotations

import numpy as np

from .jit import numba

if numba is not None:
    # Sums in any order: the dot products and running maxima vectorise. Not the flags that
    # assume no NaN or infinity: a -inf bias is how an item is kept out.
    _jit_fast = numba.njit(
        cache=True,
        nogil=True,
        error_model="numpy",
        fastmath={"reassoc", "nsz", "arcp", "contract", "afn"},
    )
    _jit_fast_inline = numba.njit(
        cache=True,
        inline="always",
        error_model="numpy",
        fastmath={"reassoc", "nsz", "arcp", "contract", "afn"},
    )
else:  # pragma: no cover

    def _jit_fast(fn):
        return fn

    _jit_fast_inline = _jit_fast


__all__ = ["BLOCK", "exact_top_k", "first_pass", "pack_int8"]

#: Items per block of the int8 table.
BLOCK = 256


def pack_int8(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int8 table of the float32 item vectors ``weights`` (``n x d``) and its scales.

    Returns ``blocks`` of shape ``(ceil(n / BLOCK), d4, BLOCK)`` (``d`` rounded up to a
    multiple of 4 with zero dimensions; item ``i`` is ``blocks[i // BLOCK, :, i % BLOCK]``)
    and ``scale`` (float32, zero beyond ``n``) with ``weights[i] ~= scale[i] * int8 row i``.
    Each item's largest magnitude maps to 127, so every item keeps its own relative precision.
    """
    weights = np.asarray(weights, dtype=np.float32)
    n, d = weights.shape
    peak = np.abs(weights).max(axis=1) if d else np.zeros(n, dtype=np.float32)
    scale = (peak / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    n_blocks, d4 = -(-n // BLOCK), -(-d // 4) * 4
    table = np.zeros((n_blocks * BLOCK, d4), dtype=np.int8)
    table[:n, :d] = np.clip(np.rint(weights / safe[:, None]), -127, 127)
    blocks = np.ascontiguousarray(table.reshape(n_blocks, BLOCK, d4).transpose(0, 2, 1))
    padded = np.zeros(n_blocks * BLOCK, dtype=np.float32)
    padded[:n] = scale
    return blocks, padded


def first_pass(
    blocks: np.ndarray, scale: np.ndarray, bias: np.ndarray, queries: np.ndarray, m: int
) -> np.ndarray:
    """The ``m`` best items of each row of ``queries`` by their int8 scores, best first.

    ``queries`` is ``(rows, d)`` float32; ``scale`` and ``bias`` are float32 per item, padded
    to the table's ``blocks.shape[0] * BLOCK`` items, with a ``-inf`` bias for the padding and
    for any item never to return. Returns ``(rows, m)`` item indices; a row with fewer than
    ``m`` finite scores ends in ``-1``.
    """
    rows, d = queries.shape
    padded = np.zeros((rows, blocks.shape[1]), dtype=np.float32)
    padded[:, :d] = queries
    out = np.full((rows, m), -1, dtype=np.int64)
    if m > 0 and blocks.shape[0]:
        _first_pass(blocks, scale, bias, padded, out)
    return out


#: Items that share one running maximum in :func:`_first_pass`.
_RUN = 32

#: Rows scored together: each int8 value is converted to float once for all of them.
_ROWS = 4


@_jit_fast
def _first_pass(blocks, scale, bias, queries, out):  # pragma: no cover - compiled
    n_blocks, d4, width = blocks.shape
    n = n_blocks * width
    rows = queries.shape[0]
    acc = np.empty((_ROWS, width), dtype=np.float32)
    scores = np.empty((_ROWS, n), dtype=np.float32)
    peaks = np.empty((_ROWS, n // _RUN), dtype=np.float32)
    vals = np.empty(n, dtype=np.float32)
    idx = np.empty(n, dtype=np.int64)
    for first in range(0, rows, _ROWS):
        group = min(_ROWS, rows - first)
        for b in range(n_blocks):
            if group == _ROWS:
                _block_of_four(blocks[b], queries, first, acc)
            else:
                for g in range(group):
                    _block_of_one(blocks[b], queries[first + g], acc[g])
            for g in range(group):
                _finish_block(acc[g], scale, bias, b * width, scores[g], peaks[g])
        for g in range(group):
            _best(scores[g], peaks[g], vals, idx, out[first + g])


@_jit_fast_inline
def _block_of_one(block, q, acc):  # pragma: no cover - compiled
    acc[:] = 0.0
    for j in range(0, block.shape[0], 4):
        w0, w1, w2, w3 = q[j], q[j + 1], q[j + 2], q[j + 3]
        for t in range(block.shape[1]):
            pair = np.float32(block[j, t]) * w0 + np.float32(block[j + 1, t]) * w1
            acc[t] += pair + (np.float32(block[j + 2, t]) * w2 + np.float32(block[j + 3, t]) * w3)


@_jit_fast_inline
def _block_of_four(block, queries, first, acc):  # pragma: no cover - compiled
    acc[:] = 0.0
    a, b, c, e = queries[first], queries[first + 1], queries[first + 2], queries[first + 3]
    for j in range(0, block.shape[0], 2):
        a0, a1, b0, b1 = a[j], a[j + 1], b[j], b[j + 1]
        c0, c1, e0, e1 = c[j], c[j + 1], e[j], e[j + 1]
        for t in range(block.shape[1]):
            x0 = np.float32(block[j, t])
            x1 = np.float32(block[j + 1, t])
            acc[0, t] += x0 * a0 + x1 * a1
            acc[1, t] += x0 * b0 + x1 * b1
            acc[2, t] += x0 * c0 + x1 * c1
            acc[3, t] += x0 * e0 + x1 * e1


@_jit_fast_inline
def _finish_block(acc, scale, bias, base, scores, peaks):  # pragma: no cover - compiled
    """Scale and bias a block's sums into ``scores``, and the maximum of each run of items."""
    for run in range(acc.shape[0] // _RUN):
        peak = -np.inf
        for t in range(run * _RUN, (run + 1) * _RUN):
            v = acc[t] * scale[base + t] + bias[base + t]
            scores[base + t] = v
            peak = max(peak, v)
        peaks[base // _RUN + run] = peak


@_jit_fast_inline
def _best(scores, peaks, vals, idx, out):  # pragma: no cover - compiled
    """The best ``len(out)`` finite ``scores``, best first, into ``out``."""
    m = out.shape[0]
    # The m-th best run peak is a score that m items reach: only runs whose peak reaches it
    # can hold one of the best m.
    floor = -np.inf
    if peaks.shape[0] > m:
        floor = np.partition(peaks, peaks.shape[0] - m)[peaks.shape[0] - m]
    count = 0
    for p in range(peaks.shape[0]):
        if peaks[p] >= floor and peaks[p] > -np.inf:
            for i in range(p * _RUN, (p + 1) * _RUN):
                if scores[i] >= floor and scores[i] > -np.inf:
                    vals[count] = scores[i]
                    idx[count] = i
                    count += 1
    order = np.argsort(-vals[:count], kind="mergesort")[:m]
    for c in range(order.shape[0]):
        out[c] = idx[order[c]]


def exact_top_k(
    weights: np.ndarray,
    bias: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    seen: tuple[np.ndarray, np.ndarray] | None = None,
    seen_score: float = float(np.finfo(np.float32).min),
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's ``candidates`` (``-1``: none) by their exact float32
    scores ``queries[r] . weights[c] + bias[c]``, best first: ``(scores, items)``.

    ``seen``, ``(items, offsets)`` aligned with the rows, scores each row's own items
    ``seen_score`` (they come last) and returns them as ``-inf``.
    """
    rows = candidates.shape[0]
    if seen is None:
        items, offsets = np.zeros(0, dtype=np.int64), np.zeros(rows + 1, dtype=np.int64)
    else:
        items = np.asarray(seen[0], dtype=np.int64)
        offsets = np.asarray(seen[1], dtype=np.int64)
    values = np.empty((rows, k), dtype=np.float32)
    chosen = np.empty((rows, k), dtype=np.int64)
    floor = np.float32(seen_score)
    _exact_top_k(weights, bias, queries, candidates, items, offsets, floor, values, chosen)
    return values, chosen


@_jit_fast
def _exact_top_k(
    weights, bias, queries, candidates, items, offsets, seen_score, values, chosen
):  # pragma: no cover - compiled
    d = weights.shape[1]
    m = candidates.shape[1]
    k = values.shape[1]
    exact = np.empty(m, dtype=np.float32)
    for r in range(candidates.shape[0]):
        for c in range(m):
            i = candidates[r, c]
            if i < 0:
                exact[c] = -np.inf
                continue
            s = np.float32(0.0)
            for j in range(d):
                s += queries[r, j] * weights[i, j]
            exact[c] = s + bias[i]
        for p in range(offsets[r], offsets[r + 1]):
            for c in range(m):
                if candidates[r, c] == items[p] and candidates[r, c] >= 0:
                    exact[c] = seen_score
        order = np.argsort(-exact, kind="mergesort")
        for c in range(k):
            v = exact[order[c]]
            values[r, c] = -np.inf if v <= seen_score else v
            chosen[r, c] = candidates[r, order[c]]
