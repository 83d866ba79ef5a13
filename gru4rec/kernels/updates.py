"""Optimiser updates: row-sparse and dense SGD / Adagrad with momentum, one pass each
(what :class:`gru4rec.optim.RowSparseOptimizer` computes with torch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .jit import _AHEAD, _jit, _jit_inline, _prefetch_row


@_jit_inline
def _distinct_rows(owner, uniq, gsum, bsum, rows, g0, g1, g_bias):  # pragma: no cover
    """Find the distinct ``rows`` (into ``uniq``, in order of first appearance) and sum the
    gradients of repeated ones (into ``gsum``; the bias gradients into ``bsum``). Returns
    ``(k, first, dup, has_bias)``: the number of distinct rows, where each first occurs, its
    row in ``gsum`` where it repeats (else -1), and whether it has a bias gradient."""
    n0 = g0.shape[0]
    n = rows.shape[0]
    dim = gsum.shape[1]
    n_bias = g_bias.shape[0]
    first = np.empty(n, np.int64)
    dup = np.empty(n, np.int64)
    has_bias = np.zeros(n, np.bool_)
    k = 0
    n_dup = 0
    # Most rows occur once: their gradient is read in place. Repeated rows get their
    # gradients summed in gsum, in order of appearance (as index_add_ does).
    for i in range(n):
        r = rows[i]
        o = owner[r]
        if o < 0:
            o = k
            owner[r] = k
            uniq[k] = r
            first[k] = i
            dup[k] = -1
            k += 1
        else:
            # Element loops throughout: a row view per row costs more than its update.
            if dup[o] < 0:
                dup[o] = n_dup
                f = first[o]
                if f < n0:
                    for d in range(dim):
                        gsum[n_dup, d] = g0[f, d]
                else:
                    for d in range(dim):
                        gsum[n_dup, d] = g1[f - n0, d]
                n_dup += 1
            q = dup[o]
            if i < n0:
                for d in range(dim):
                    gsum[q, d] += g0[i, d]
            else:
                for d in range(dim):
                    gsum[q, d] += g1[i - n0, d]
        if i < n_bias:
            if has_bias[o]:
                bsum[o] += g_bias[i, 0]
            else:
                bsum[o] = g_bias[i, 0]
                has_bias[o] = True
    return k, first, dup, has_bias


@_jit
def _rows_update(
    table,
    acc,
    vel,
    owner,
    uniq,
    gsum,
    bsum,
    rows,
    g0,
    g1,
    bias,
    bias_acc,
    bias_vel,
    g_bias,
    lr,
    mom,
):  # pragma: no cover - compiled
    n0 = g0.shape[0]
    dim = table.shape[1]
    use_acc = acc.shape[0] > 0
    use_vel = vel.shape[0] > 0
    step = np.empty(dim, table.dtype)
    k, first, dup, has_bias = _distinct_rows(owner, uniq, gsum, bsum, rows, g0, g1, g_bias)
    for j in range(k):
        r = uniq[j]
        owner[r] = -1
        if j + _AHEAD < k:  # the rows are scattered: ask for a later row's lines early
            _prefetch_row(table, uniq[j + _AHEAD])
            if use_acc:
                _prefetch_row(acc, uniq[j + _AHEAD])
            if use_vel:
                _prefetch_row(vel, uniq[j + _AHEAD])
        q = dup[j]
        f = first[j]
        if q >= 0:
            for d in range(dim):
                step[d] = gsum[q, d]
        elif f < n0:
            for d in range(dim):
                step[d] = g0[f, d]
        else:
            for d in range(dim):
                step[d] = g1[f - n0, d]
        if use_acc:
            for d in range(dim):
                g = step[d]
                a = acc[r, d] + g * g
                acc[r, d] = a
                step[d] = g / np.sqrt(a)
        if use_vel:
            for d in range(dim):
                v = vel[r, d] * mom + lr * step[d]
                vel[r, d] = v
                table[r, d] -= v
        else:
            for d in range(dim):
                table[r, d] -= lr * step[d]
        if has_bias[j]:
            g = bsum[j]
            if use_acc:
                a = bias_acc[r, 0] + g * g
                bias_acc[r, 0] = a
                g = g / np.sqrt(a)
            if use_vel:
                v = bias_vel[r, 0] * mom + lr * g
                bias_vel[r, 0] = v
                bias[r, 0] -= v
            else:
                bias[r, 0] -= lr * g
    return k


def rows_updater(
    table: np.ndarray,
    acc: np.ndarray | None,
    vel: np.ndarray | None,
    owner: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
    lr: float,
    momentum: float,
    bias: tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None = None,
) -> Callable[..., int]:
    """A row-sparse SGD/Adagrad(+momentum) update of ``table``, in place, with everything but
    the step's rows and gradients bound once: ``update(rows, g0, g1=None, g_bias=None)``.

    ``g0`` and ``g1`` (when given) stacked align with ``rows``; the gradients of repeated
    rows are summed, then every distinct row is updated once:
    ``acc += g**2; d = g / sqrt(acc); vel = momentum * vel + lr * d; table -= vel``
    (``acc``/``vel`` None: no Adagrad scaling / no momentum). ``bias`` is ``(table, acc,
    vel)`` of a one-column table updated the same way from ``g_bias`` (shape ``(k, 1)``) at
    the first ``k`` entries of ``rows``. ``owner`` is an int64 scratch array of the table's
    length, all -1, and left so; ``scratch`` an int64 ``(n,)``, a ``(n, dim)`` and an
    ``(n,)`` array of the table's dtype with ``n`` at least the number of rows of any call,
    reused between calls (a fresh buffer of that size costs more in page faults than the
    update). ``update`` returns the number of distinct rows.
    """
    dtype = table.dtype
    uniq, gsum, bsum = scratch
    empty = np.empty((0, table.shape[1]), dtype)
    col = np.empty((0, 1), dtype)
    acc = empty if acc is None else acc
    vel = empty if vel is None else vel
    if bias is None:
        b_table, b_acc, b_vel = col, col, col
    else:
        b_table, b_acc, b_vel = (col if a is None else a for a in bias)
    lr, momentum = dtype.type(lr), dtype.type(momentum)

    def update(rows, g0, g1=None, g_bias=None):
        return _rows_update(
            table, acc, vel, owner, uniq, gsum, bsum, rows, g0,
            empty if g1 is None else g1, b_table, b_acc, b_vel,
            col if g_bias is None else g_bias, lr, momentum,
        )  # fmt: skip

    return update


@_jit
def _dense_update(p, g, acc, vel, lr, mom):  # pragma: no cover - compiled
    n = p.shape[0]
    if acc.shape[0] > 0:
        if vel.shape[0] > 0:
            for i in range(n):
                a = acc[i] + g[i] * g[i]
                acc[i] = a
                v = vel[i] * mom + lr * (g[i] / np.sqrt(a))
                vel[i] = v
                p[i] -= v
        else:
            for i in range(n):
                a = acc[i] + g[i] * g[i]
                acc[i] = a
                p[i] -= lr * (g[i] / np.sqrt(a))
    elif vel.shape[0] > 0:
        for i in range(n):
            v = vel[i] * mom + lr * g[i]
            vel[i] = v
            p[i] -= v
    else:
        for i in range(n):
            p[i] -= lr * g[i]


def dense_updater(
    views: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
    lr: float,
    momentum: float,
) -> Callable[[Sequence[np.ndarray]], None]:
    """The update of :func:`rows_updater` for every element of flat parameters, one pass
    over the four arrays each: ``views`` holds each parameter's ``(param, acc, vel)``, and
    the returned ``update(grads)`` takes the gradients in that order."""
    bound = []
    for p, acc, vel in views:
        empty = np.empty(0, p.dtype)
        bound.append(
            (p, empty if acc is None else acc, empty if vel is None else vel, p.dtype.type(lr))
        )
    mom = views[0][0].dtype.type(momentum) if views else np.float32(momentum)

    def update(grads):
        for (p, acc, vel, lr_), g in zip(bound, grads, strict=True):
            _dense_update(p, g.reshape(-1), acc, vel, lr_, mom)

    return update
