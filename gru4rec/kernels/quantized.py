"""Int8 item vectors for one event's scoring pass over a large catalogue.

Scoring a session state against every item reads the whole item table, so on a large
catalogue an event's cost is the table's size. Stored as int8 with one float32 scale per item
it is a quarter of the float32 table; :func:`first_pass` scores every item from it and finds
each row's best ``m`` from the maximum of every run of 32 items (only the runs whose maximum
reaches the m-th best maximum are looked into: no top-k over all scores), and
:func:`exact_top_k` scores those candidates again from the float32 table.

:class:`Int8Table` picks the layout of the fastest pass the CPU has. With AVX2 (x86), items come
in groups of :data:`GROUP`, each dimension pair of an item in two adjacent bytes, so that one
multiply-add instruction (``vpmaddwd``) takes two dimensions of eight items against an int16
copy of the query, and a group is one sequential read. Elsewhere, the portable pass lays items
out in blocks of :data:`BLOCK`, dimension-major inside a block, so that its inner loop runs over
items in float32 (contiguous loads, no horizontal sums, accumulators in the first-level cache).
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


__all__ = ["BLOCK", "GROUP", "PAIRED", "Int8Table", "exact_top_k", "first_pass", "pack_int8"]

#: Items per block of the portable pass's table.
BLOCK = 256

#: Items per group of the paired (AVX2) pass's table.
GROUP = 32


def _host_has_avx2() -> bool:
    """Whether numba compiles for this machine's CPU and that CPU has AVX2."""
    if numba is None or getattr(numba.config, "DISABLE_JIT", False):
        return False  # the intrinsic exists only in compiled code
    if getattr(numba.config, "CPU_NAME", None) not in (None, "host"):
        return False  # compiled for another CPU (a portable cache): no host instructions
    try:
        import llvmlite.binding as llvm

        return "+avx2" in llvm.get_host_cpu_features().flatten().split(",")
    except Exception:  # pragma: no cover - a llvmlite without the query
        return False


#: Whether :class:`Int8Table` uses the paired pass (AVX2's ``vpmaddwd``).
PAIRED = _host_has_avx2()


class Int8Table:
    """An item table as int8 with one float32 scale per item, in the layout of the first pass
    this CPU runs fastest, and that pass.

    Parameters
    ----------
    weights : ndarray of shape (n_items, d)
        The float32 item vectors (copied).
    paired : bool, optional
        Use the paired pass (needs AVX2); by default where the CPU has it (:data:`PAIRED`).
    """

    def __init__(self, weights: np.ndarray, paired: bool | None = None) -> None:
        self.paired = PAIRED if paired is None else bool(paired)
        self.n_items, self.dims = np.shape(weights)
        pack = pack_pairs if self.paired else pack_int8
        self.table, self.scale = pack(weights)

    def padded_bias(self, bias: np.ndarray, blocked: np.ndarray | None = None) -> np.ndarray:
        """``bias`` padded to the table's items with ``-inf``, which also marks ``blocked``."""
        padded = np.full(len(self.scale), -np.inf, dtype=np.float32)
        padded[: self.n_items] = bias
        if blocked is not None:
            padded[: self.n_items][blocked] = -np.inf
        return padded

    def first_pass(self, bias: np.ndarray, queries: np.ndarray, m: int) -> np.ndarray:
        """:func:`first_pass` (or :func:`first_pass_pairs`) over this table, with ``bias``
        from :meth:`padded_bias`."""
        run = first_pass_pairs if self.paired else first_pass
        return run(self.table, self.scale, bias, queries, m)


def _symmetric(
    values: np.ndarray, limit: int, rows: int, width: int, dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (``n x d``) as integers of magnitude at most ``limit`` with one float32 scale
    per row (its largest magnitude maps to ``limit``), in a zeroed ``rows x width`` array; the
    scales padded with zeros to ``rows``. A row with a NaN has a NaN scale: it never scores."""
    values = np.asarray(values, dtype=np.float32)
    n, d = values.shape
    peak = np.abs(values).max(axis=1) if d else np.zeros(n, dtype=np.float32)
    scale = (peak / limit).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    out = np.zeros((rows, width), dtype=dtype)
    with np.errstate(invalid="ignore"):
        out[:n, :d] = np.clip(np.rint(values / safe[:, None]), -limit, limit)
    padded = np.zeros(rows, dtype=np.float32)
    padded[:n] = scale
    return out, padded


def pack_int8(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int8 table of the float32 item vectors ``weights`` (``n x d``) and its scales.

    Returns ``blocks`` of shape ``(ceil(n / BLOCK), d4, BLOCK)`` (``d`` rounded up to a
    multiple of 4 with zero dimensions; item ``i`` is ``blocks[i // BLOCK, :, i % BLOCK]``)
    and ``scale`` (float32, zero beyond ``n``) with ``weights[i] ~= scale[i] * int8 row i``.
    Each item's largest magnitude maps to 127, so every item keeps its own relative precision.
    """
    n, d = np.shape(weights)
    n_blocks, d4 = -(-n // BLOCK), -(-d // 4) * 4
    table, scale = _symmetric(weights, 127, n_blocks * BLOCK, d4, np.int8)
    blocks = table.reshape(n_blocks, BLOCK, d4).transpose(0, 2, 1)
    return np.ascontiguousarray(blocks), scale


def pack_pairs(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pack_int8` in the paired layout: ``pairs`` of shape ``(ceil(n / GROUP), d2,
    2 * GROUP)`` (``d2 = ceil(d / 2)``) with item ``i``'s dimensions ``2j`` and ``2j + 1`` at
    ``pairs[i // GROUP, j, 2 * (i % GROUP)]`` and the byte after it."""
    n, d = np.shape(weights)
    n_groups, d2 = -(-n // GROUP), -(-d // 2)
    table, scale = _symmetric(weights, 127, n_groups * GROUP, 2 * d2, np.int8)
    pairs = table.reshape(n_groups, GROUP, d2, 2).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(pairs.reshape(n_groups, d2, 2 * GROUP)), scale


def int16_queries(queries: np.ndarray, d2: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row of float32 ``queries`` as int16 pairs (one int32 per dimension pair, ``d2`` of
    them) and its scale: ``queries[r] ~= scales[r] * int16 row r``. The largest magnitude
    maps to the widest value whose sums against int8 items cannot overflow int32."""
    limit = min(32767, (2**31 - 1) // (127 * 2 * max(d2, 1)))
    wide, scales = _symmetric(queries, limit, len(queries), 2 * d2, np.int16)
    return wide.view(np.int32), scales


def first_pass_pairs(
    pairs: np.ndarray, scale: np.ndarray, bias: np.ndarray, queries: np.ndarray, m: int
) -> np.ndarray:
    """:func:`first_pass` over a :func:`pack_pairs` table (AVX2 only: see :data:`PAIRED`)."""
    rows = queries.shape[0]
    out = np.full((rows, m), -1, dtype=np.int64)
    if m > 0 and pairs.shape[0]:
        words, scales = int16_queries(np.asarray(queries, dtype=np.float32), pairs.shape[1])
        _first_pass_pairs(pairs, scale, bias, words, scales, out)
    return out


if numba is not None:
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _madd_group(typingctx, pairs, g, words, acc):  # pragma: no cover - compile-time
        """``acc[t] = sum_j pairs[g, j, 2t:2t+2] . words[j]`` for the group's 32 items, as int32:
        the int8 pairs widened to int16, one ``vpmaddwd`` per eight items and pair of
        dimensions, four running sums."""
        sig = numba.types.void(pairs, g, words, acc)

        def codegen(context, builder, signature, args):
            table = context.make_array(signature.args[0])(context, builder, args[0])
            query = context.make_array(signature.args[2])(context, builder, args[2])
            out = context.make_array(signature.args[3])(context, builder, args[3])
            _, d2, width = _cgutils.unpack_tuple(builder, table.shape)
            i8, i16, i32 = _ir.IntType(8), _ir.IntType(16), _ir.IntType(32)
            v16i8, v16i16 = _ir.VectorType(i8, 16), _ir.VectorType(i16, 16)
            v8i32, v2i16 = _ir.VectorType(i32, 8), _ir.VectorType(i16, 2)
            intp = context.get_value_type(numba.types.intp)
            fnty = _ir.FunctionType(v8i32, [v16i16, v16i16])
            madd = _cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pmadd.wd")
            start = builder.mul(builder.mul(args[1], d2), width)
            base = builder.gep(builder.bitcast(table.data, i8.as_pointer()), [start])
            qdata = builder.bitcast(query.data, i32.as_pointer())
            spread = _ir.Constant(_ir.VectorType(i32, 16), [0, 1] * 8)
            sums = [_cgutils.alloca_once(builder, v8i32) for _ in range(4)]
            for s in sums:
                builder.store(_ir.Constant(v8i32, None), s)
            with _cgutils.for_range(builder, d2) as loop:
                j = loop.index
                pair = builder.bitcast(builder.load(builder.gep(qdata, [j])), v2i16)
                wide = builder.shuffle_vector(pair, _ir.Constant(v2i16, _ir.Undefined), spread)
                row = builder.mul(j, width)
                for q, s in enumerate(sums):
                    at = builder.gep(base, [builder.add(row, _ir.Constant(intp, 16 * q))])
                    x = builder.load(builder.bitcast(at, v16i8.as_pointer()), align=1)
                    product = builder.call(madd, [builder.sext(x, v16i16), wide])
                    builder.store(builder.add(builder.load(s), product), s)
            dst = builder.bitcast(out.data, v8i32.as_pointer())
            for q, s in enumerate(sums):
                builder.store(builder.load(s), builder.gep(dst, [_ir.Constant(intp, q)]), align=4)
            return context.get_dummy_value()

        return sig, codegen

else:  # pragma: no cover

    def _madd_group(pairs, g, words, acc):
        raise RuntimeError("the paired pass needs numba")


@_jit_fast
def _first_pass_pairs(pairs, scale, bias, words, scales, out):  # pragma: no cover - compiled
    n_groups = pairs.shape[0]
    n = n_groups * GROUP
    rows = words.shape[0]
    acc = np.empty(GROUP, dtype=np.int32)
    scores = np.empty((_ROWS, n), dtype=np.float32)
    peaks = np.empty((_ROWS, n_groups), dtype=np.float32)
    vals = np.empty(n, dtype=np.float32)
    idx = np.empty(n, dtype=np.int64)
    for first in range(0, rows, _ROWS):
        group = min(_ROWS, rows - first)
        for g in range(n_groups):  # each group read once for the rows, from the first cache
            base = g * GROUP
            for r in range(group):
                _madd_group(pairs, g, words[first + r], acc)
                qs = scales[first + r]
                peak = -np.inf
                for t in range(GROUP):
                    v = np.float32(acc[t]) * (scale[base + t] * qs) + bias[base + t]
                    scores[r, base + t] = v
                    peak = max(peak, v)
                peaks[r, g] = peak
        for r in range(group):
            _best(scores[r], peaks[r], vals, idx, out[first + r])


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
_RUN = GROUP  # one per group in the paired pass

#: Rows scored together: each int8 value is read (and in the portable pass converted) once for
#: all of them. The portable pass's ``_block_of_four`` is written for four.
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
