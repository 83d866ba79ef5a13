"""Sampler draws: sorted inverse-CDF draws from exponential spacings, and their compaction
into each step's distinct items with multiplicities (what
:class:`gru4rec.samplers.NegativeSampler` computes with torch, draw for draw)."""

from __future__ import annotations

import numpy as np

from .jit import _jit


def inverse_cdf_table(cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lookup structure of :func:`sorted_draws` for a sorted float64 ``cdf`` ending in 1.

    Returns ``cdf`` followed by four ``inf`` sentinels, and a guide table of ``B + 1``
    entries (``B = 4 * len(cdf)``): ``guide[b]`` counts the ``cdf`` entries ``<= (b - 1) / B``.
    A value ``x`` with ``floor(x * B) = b`` is at least ``b / B`` up to one rounding, so
    ``guide[b]`` never passes ``searchsorted(cdf, x, side='right')`` and a short scan from it
    lands exactly there.
    """
    cdf = np.asarray(cdf, dtype=np.float64)
    n_guide = 4 * len(cdf)
    guide = np.searchsorted(cdf, np.arange(-1, n_guide) / n_guide, side="right")
    padded = np.concatenate([cdf, np.full(4, np.inf)])
    return padded, guide.astype(np.int64)


@_jit
def _sorted_draws(spacings, cdf, guide, n_items, out, unique, mult, bounds):  # pragma: no cover
    rows, n = out.shape
    n_guide = guide.shape[0] - 1  # 0: uniform draws
    compact = bounds.shape[0] > 0
    last = n_items - 1
    k = 0
    for r in range(rows):
        # torch's cumsum_ adds left to right in float64: the same sums, bit for bit.
        s = 0.0
        for i in range(n + 1):
            s += spacings[r, i]
            spacings[r, i] = s
        total = spacings[r, n]
        for i in range(n):
            x = spacings[r, i] / total
            if n_guide > 0:
                # Four comparisons without branches (cdf is sorted: they count the entries
                # <= x from the guide's start), then a scan in the rare case of more.
                pos = guide[np.int64(x * n_guide)]
                c = (np.int64(cdf[pos] <= x) + np.int64(cdf[pos + 1] <= x)) + (
                    np.int64(cdf[pos + 2] <= x) + np.int64(cdf[pos + 3] <= x)
                )
                pos += c
                if c == 4:
                    while cdf[pos] <= x:
                        pos += 1
                item = pos
            else:
                item = np.int64(x * n_items)
            out[r, i] = min(item, last)
        if compact:
            # The row's runs without branches (its first draw always starts one): entry k
            # holds the current run, k moves on where the next draw differs.
            bounds[r] = k
            if n == 0:
                continue
            unique[k] = out[r, 0]
            start = 0
            for i in range(1, n):
                item = out[r, i]
                mult[k] = np.float32(i - start)  # the run's length so far
                new = np.int64(item != out[r, i - 1])
                k += new
                start += new * (i - start)
                unique[k] = item
            mult[k] = np.float32(n - start)
            k += 1
    if compact:
        bounds[rows] = k
    return k


def sorted_draws(
    spacings: np.ndarray,
    table: tuple[np.ndarray, np.ndarray] | None,
    n_items: int,
    out: np.ndarray,
    compact: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> int:
    """Sorted inverse-CDF draws per row from exponential spacings, optionally compacted.

    Row by row: the cumulative sums of the ``n + 1`` float64 ``spacings`` (overwritten with
    them, as ``cumsum_`` would), each of the first ``n`` divided by the row's total, give
    ``n`` sorted uniforms ``u``; ``out`` (int64, ``(rows, n)``) gets
    ``searchsorted(cdf, u, side='right')`` with ``table = inverse_cdf_table(cdf)``, or
    ``floor(u * n_items)`` when ``table`` is None, clamped to ``n_items - 1``.

    ``compact`` is ``(unique, mult, bounds)``: int64 and float32 arrays of at least
    ``rows * n`` entries and an int64 array of ``rows + 1``. Each row's runs of equal
    adjacent draws become one entry of ``unique`` with its length in ``mult`` (a row's
    first draw always starts a run); row ``r``'s runs are ``[bounds[r], bounds[r + 1])``.
    Returns the number of runs (0 without ``compact``).
    """
    if compact is None:
        unique = bounds = np.empty(0, np.int64)
        mult = np.empty(0, np.float32)
    else:
        unique, mult, bounds = compact
    if table is None:
        cdf, guide = np.empty(0, np.float64), np.empty(1, np.int64)
    else:
        cdf, guide = table
    return _sorted_draws(spacings, cdf, guide, np.int64(n_items), out, unique, mult, bounds)
