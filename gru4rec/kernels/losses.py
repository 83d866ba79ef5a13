"""Loss kernels: each sampled loss's value, its gradient with respect to the scores and the
column sums of that gradient (the column biases' gradient) in one or two passes, and the
column biases of sampled cross-entropy. The ``*_step_loss`` functions work on the transposed
score layout of :func:`gru4rec.kernels.gru.step_forward`."""

from __future__ import annotations

import math

import numpy as np

from .blas import _row_sums
from .jit import _F, _jit, _max32
from .scalar import _exp, _log1p_unit, _sigmoid


@_jit
def _positive_loss(p, row, i):  # pragma: no cover - compiled
    """-log p, the cross-entropy of a row whose positive (column ``i``) has softmax
    probability ``p``; from the row's logits when ``p`` underflowed."""
    if p > 1e-30:
        return -math.log(p)
    top = row[0]
    for j in range(row.shape[0]):
        top = max(top, row[j])
    s = 0.0
    for j in range(row.shape[0]):
        s += math.exp(row[j] - top)
    return top + math.log(s) - row[i]


@_jit
def _softmax_xent_finish(logits, probs, scale, col_sums):  # pragma: no cover - compiled
    b, m = probs.shape
    total = 0.0
    for i in range(b):
        total += _positive_loss(probs[i, i], logits[i], i)
        probs[i, i] -= 1.0
    col_sums[:] = 0.0
    for i in range(b):
        row = probs[i]
        for j in range(m):
            g = row[j] * scale
            row[j] = g
            col_sums[j] += g
    return total * scale


def softmax_xent_finish(
    logits: np.ndarray, probs: np.ndarray, scale: float, col_sums: np.ndarray
) -> float:
    """Sampled cross-entropy with the positives on the diagonal, from the row softmax
    ``probs`` of ``logits``: returns ``scale * sum_i -log probs[i, i]``, turns ``probs``
    into the loss's gradient with respect to the logits, ``scale * (probs - I)``, and
    writes that gradient's column sums (the gradient of the column biases) to ``col_sums``."""
    return float(_softmax_xent_finish(logits, probs, probs.dtype.type(scale), col_sums))


@_jit
def _xent_column_bias(
    bias, log_counts, targets, negatives, log_mult, alpha, logq, out
):  # pragma: no cover - compiled
    nb = targets.shape[0]
    for j in range(nb):
        t = targets[j]
        out[j] = bias[t, 0] + (-logq) * log_counts[t]
    weighted = log_mult.shape[0] > 0
    for j in range(negatives.shape[0]):
        c = negatives[j]
        v = bias[c, 0] + (-logq) * (log_counts[c] * alpha)
        out[nb + j] = v + log_mult[j] if weighted else v


def xent_column_bias(
    bias: np.ndarray,
    log_counts: np.ndarray,
    targets: np.ndarray,
    negatives: np.ndarray,
    log_mult: np.ndarray | None,
    alpha: float,
    logq: float,
    out: np.ndarray,
) -> None:
    """The column biases of sampled cross-entropy in one pass: the output bias of every
    scored item, minus ``logq`` times its log sampling probability (``log_counts`` for the
    in-batch ``targets``, ``alpha * log_counts`` for the ``negatives``), plus the log
    multiplicity of each distinct negative."""
    dtype = bias.dtype
    _xent_column_bias(
        bias,
        log_counts,
        targets,
        negatives,
        np.empty(0, dtype) if log_mult is None else log_mult,
        dtype.type(alpha),
        dtype.type(logq),
        out,
    )


@_jit
def _softmax_xent_t(logits_t, scale, col_sums):  # pragma: no cover - compiled
    n_cols, b = logits_t.shape
    dtype = logits_t.dtype
    top = np.empty(b, dtype)
    total = np.zeros(b, dtype)
    for i in range(b):
        top[i] = logits_t[0, i]
    for j in range(n_cols):
        for i in range(b):
            v = logits_t[j, i]
            top[i] = _max32(v, top[i])
    loss = 0.0
    for i in range(b):
        loss += top[i] - logits_t[i, i]
    for j in range(n_cols):
        for i in range(b):
            e = _exp(logits_t[j, i] - top[i])
            logits_t[j, i] = e
            total[i] += e
    for i in range(b):
        loss += math.log(total[i])
        total[i] = scale / total[i]
    for j in range(n_cols):
        for i in range(b):
            logits_t[j, i] *= total[i]
    for i in range(b):
        logits_t[i, i] -= scale
    _row_sums(logits_t, col_sums)
    return loss * scale


def xent_step_softmax_loss(logits_t: np.ndarray, scale: float, col_grad: np.ndarray) -> float:
    """Sampled cross-entropy on the transposed layout of :func:`step_forward`, softmax
    included: returns ``scale * sum_i -log softmax_i[i]`` (the softmax of row ``i`` runs
    over the column axis of ``logits_t``, whose first rows are the positives), turns
    ``logits_t`` into the gradient with respect to it and writes the gradient's sums over
    the rows (the column biases' gradient, shape ``(columns, 1)``) to ``col_grad``."""
    return float(_softmax_xent_t(logits_t, logits_t.dtype.type(scale), col_grad))


@_jit
def _bpr_max_t(scores_t, log_mult, bpreg, elu_param, scale, col_sums, work):  # pragma: no cover
    n_cols, b = scores_t.shape
    dtype = scores_t.dtype
    weighted = log_mult.shape[0] > 0
    use_elu = elu_param > 0
    if use_elu:
        flat = scores_t.reshape(-1)
        for k in range(flat.shape[0]):
            # max(x, 0) + elu(min(x, 0)): both branches as arithmetic (a select that keeps
            # x would store only some lanes: a masked store, see _max32).
            x = flat[k]
            neg = x if x < 0 else _F(0.0)
            flat[k] = (x - neg) + elu_param * (_exp(neg) - _F(1.0))
    top = np.full(b, -np.inf, dtype)
    for j in range(b):  # the targets' columns: a row's own positive is not its negative
        for i in range(j):
            top[i] = _max32(scores_t[j, i], top[i])
        for i in range(j + 1, b):
            top[i] = _max32(scores_t[j, i], top[i])
    for j in range(b, n_cols):
        lw = log_mult[j - b] if weighted else _F(0.0)
        for i in range(b):
            top[i] = _max32(scores_t[j, i] + lw, top[i])
    pos = np.empty(b, dtype)
    for i in range(b):
        pos[i] = scores_t[i, i]
    total = np.zeros(b, dtype)
    reg = np.zeros(b, dtype)
    z = np.zeros(b, dtype)
    zq = np.zeros(b, dtype)
    for j in range(n_cols):
        lw = log_mult[j - b] if weighted and j >= b else _F(0.0)
        for i in range(b):
            e = scores_t[j, i]
            s = _exp(e + lw - top[i])
            s = _F(0.0) if j == i else s  # (computed before the choice: keeps the loop vector)
            q = _sigmoid(pos[i] - e)
            sq = s * q
            work[0, j, i] = s
            work[1, j, i] = q
            total[i] += s
            reg[i] += e * e * s
            z[i] += sq
            zq[i] += sq * q
    loss = 0.0
    for i in range(b):
        inv = _F(1.0) / total[i]
        total[i] = inv
        reg[i] *= inv
        z[i] *= inv
        zq[i] = (zq[i] * inv - z[i]) / z[i]  # the positive's gradient
        if not z[i] > 1e-30:
            return np.nan  # the closed form does not hold: the caller takes the long way
        loss += bpreg * reg[i] - math.log(z[i])
        z[i] = _F(1.0) / z[i]
    for j in range(n_cols):
        for i in range(b):
            e = scores_t[j, i]
            s = work[0, j, i] * total[i]
            q = work[1, j, i]
            g = s - s * q * q * z[i]
            g = (g + bpreg * (((e + _F(2.0)) * e - reg[i]) * s)) * scale
            if use_elu:
                g = g if e > 0 else g * (e + elu_param)
            scores_t[j, i] = g
    for i in range(b):  # the positives
        e = pos[i]
        g = zq[i] * scale
        if use_elu:
            g = g if e > 0 else g * (e + elu_param)
        scores_t[i, i] = g
    _row_sums(scores_t, col_sums)
    return loss * scale


def bpr_max_step_loss(
    scores_t: np.ndarray,
    log_mult: np.ndarray | None,
    bpreg: float,
    elu_param: float,
    scale: float,
    col_grad: np.ndarray,
) -> float:
    """:func:`gru4rec.losses.bpr_max_value_grad` on the transposed layout of
    :func:`step_forward` (columns: the rows' targets, then the negatives, whose log
    multiplicities are ``log_mult``), ``scale`` per element: returns the loss, turns
    ``scores_t`` into its gradient and writes the gradient's sums over the rows to
    ``col_grad``. Returns NaN, with ``scores_t`` left as the ELU of the scores, where the
    closed form does not hold (some row's sigmoids all underflow)."""
    dtype = scores_t.dtype
    return float(
        _bpr_max_t(
            scores_t,
            np.empty(0, dtype) if log_mult is None else log_mult,
            dtype.type(bpreg),
            dtype.type(elu_param),
            dtype.type(scale),
            col_grad,
            np.empty((2, *scores_t.shape), dtype),
        )
    )


@_jit
def _bpr_t(scores_t, log_mult, scale, col_sums):  # pragma: no cover - compiled
    n_cols, b = scores_t.shape
    dtype = scores_t.dtype
    weighted = log_mult.shape[0] > 0
    n_neg = 0.0
    for j in range(b, n_cols):
        n_neg += math.exp(log_mult[j - b]) if weighted else 1.0
    # The terms of the duplicated score matrix: every row against every column but itself.
    c = dtype.type(scale / (b * max(b + n_neg - 1.0, 1.0)))
    pos = np.empty(b, dtype)
    for i in range(b):
        pos[i] = scores_t[i, i]
    terms = np.zeros(b, dtype)
    grads = np.zeros(b, dtype)
    for j in range(n_cols):
        w = _exp(log_mult[j - b]) if weighted and j >= b else _F(1.0)
        wc = w * c
        for i in range(b):
            d = pos[i] - scores_t[j, i]
            # -log sigmoid(d) = max(-d, 0) + log(1 + e) and 1 - sigmoid(d), from one
            # e = exp(-|d|): exact for any d, no overflow.
            a = d if d > 0 else -d
            e = _exp(-a)
            neg_part = -d if d < 0 else _F(0.0)
            terms[i] += w * (neg_part + _log1p_unit(e))
            g = wc * ((e if d > 0 else _F(1.0)) / (_F(1.0) + e))
            scores_t[j, i] = g
            grads[i] += g
    total = 0.0
    for i in range(b):
        total += terms[i]
        scores_t[i, i] -= grads[i]  # the positive: minus its row's gradients
    _row_sums(scores_t, col_sums)
    # Each row's own column adds -log sigmoid(0) = log 2 to the sum.
    return (total - b * math.log(2.0)) * c


def bpr_step_loss(
    scores_t: np.ndarray, log_mult: np.ndarray | None, scale: float, col_grad: np.ndarray
) -> float:
    """:func:`gru4rec.losses.bpr_value_grad` on the transposed layout of :func:`step_forward`
    (columns: the rows' targets, then the negatives, each standing for ``exp(log_mult)``
    draws): returns ``scale`` times the mean of ``-log sigmoid(r_i - r_ij)`` over every row's
    other columns, turns ``scores_t`` into its gradient and writes the gradient's sums over
    the rows to ``col_grad``."""
    dtype = scores_t.dtype
    mult = np.empty(0, dtype) if log_mult is None else log_mult
    return float(_bpr_t(scores_t, mult, float(scale), col_grad))
