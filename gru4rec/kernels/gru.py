"""GRU cell kernels: dropout masks, the element-wise part of a cell's backward pass, and the
one-layer training step's forward (item gather to scores) and backward passes."""

from __future__ import annotations

import numpy as np

from .blas import _live_rows_grad, _live_rows_product, _mm
from .jit import _AHEAD, _jit, _jit_inline, _prefetch_row
from .losses import _xent_column_bias
from .scalar import _sigmoid, _tanh


@_jit
def _dropout_mask(bits, threshold, scale, out):  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        out[i] = scale if bits[i] >= threshold else 0.0


def dropout_mask(bits: np.ndarray, threshold: int, scale: float, out: np.ndarray) -> None:
    """Inverted-dropout keep mask from 16-bit uniform integers: ``out[i] = scale`` where
    ``bits[i] >= threshold``, else 0."""
    _dropout_mask(bits, np.int16(threshold), out.dtype.type(scale), out)


@_jit
def _gru_backward(grad, mask, h, rz, n, gh_n, d_gi, d_gh, b_ih, b_hh):  # pragma: no cover
    b, k = grad.shape
    masked = mask.shape[0] > 0
    b_ih[:] = 0.0
    b_hh[:] = 0.0
    for i in range(b):
        gi = d_gi[i]
        gh = d_gh[i]
        for j in range(k):
            g = grad[i, j] * mask[i, j] if masked else grad[i, j]
            r = rz[i, j]
            z = rz[i, k + j]
            nn = n[i, j]
            dn = (1.0 - nn * nn) * g
            dn = dn - dn * z
            dr = dn * gh_n[i, j]
            dr = dr * r - dr * r * r
            dz = (h[i, j] - nn) * g
            dz = dz * z - dz * z * z
            gi[j] = dr
            gi[k + j] = dz
            gi[2 * k + j] = dn
            gh[j] = dr
            gh[k + j] = dz
            gh[2 * k + j] = dn * r
        for j in range(3 * k):
            b_ih[j] += gi[j]
            b_hh[j] += gh[j]


def gru_backward(
    grad: np.ndarray,
    mask: np.ndarray | None,
    h: np.ndarray,
    rz: np.ndarray,
    n: np.ndarray,
    gh_n: np.ndarray,
    d_gi: np.ndarray,
    d_gh: np.ndarray,
    grad_bias_ih: np.ndarray,
    grad_bias_hh: np.ndarray,
) -> None:
    """The element-wise part of a GRU cell's backward pass in one loop: from the gradient of
    the output (times the dropout ``mask`` when given) and the forward pass's ``h``, ``rz``
    (the reset and update gates), ``n`` and ``gh_n``, fill the gradients of the input-side and
    hidden-side pre-activations ``d_gi``, ``d_gh`` (gate order: reset, update, new) and their
    column sums (the bias gradients)."""
    empty = np.empty((0, 0), grad.dtype)
    _gru_backward(
        grad,
        empty if mask is None else mask,
        h,
        rz,
        n,
        gh_n,
        d_gi,
        d_gh,
        grad_bias_ih,
        grad_bias_hh,
    )


@_jit_inline
def _gather_rows(table, rows):  # pragma: no cover - compiled
    """``table[rows]``, prefetching the scattered rows ahead."""
    n, dim = rows.shape[0], table.shape[1]
    out = np.empty((n, dim), table.dtype)
    for j in range(n):
        if j + _AHEAD < n:
            _prefetch_row(table, rows[j + _AHEAD])
        c = rows[j]
        for d in range(dim):  # element loops: a row view per item costs more than the copy
            out[j, d] = table[c, d]
    return out


@_jit_inline
def _dropped_rows(table, rows, bits, thr, keep):  # pragma: no cover - compiled
    """``table[rows]`` times the dropout mask of ``bits`` (none where ``bits`` is empty)."""
    b, e = rows.shape[0], table.shape[1]
    out = np.empty((b, e), table.dtype)
    for i in range(b):
        r = rows[i]
        if bits.shape[0] > 0:
            for d in range(e):
                keep_d = keep if bits[i * e + d] >= thr else np.float32(0.0)
                out[i, d] = table[r, d] * keep_d
        else:
            for d in range(e):
                out[i, d] = table[r, d]
    return out


@_jit
def _step_forward(
    x_idx,
    y,
    negs,
    log_mult,
    keep,
    hidden,
    in_table,
    out_table,
    bias,
    log_counts,
    alpha,
    logq,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    e_bits,
    e_thr,
    e_keep,
    h_bits,
    h_thr,
    h_keep,
):  # pragma: no cover - compiled
    dtype = out_table.dtype
    b = x_idx.shape[0]
    k = w_hh.shape[1]
    m = negs.shape[0]
    n_cols = b + m
    cols = np.empty(n_cols, np.int64)
    cols[:b] = y
    cols[b:] = negs
    weights = _gather_rows(out_table, cols)
    col_bias = np.empty(n_cols, dtype)
    _xent_column_bias(bias, log_counts, y, negs, log_mult, alpha, logq, col_bias)
    x_in = _dropped_rows(in_table, x_idx, e_bits, e_thr, e_keep)
    h = np.empty((b, k), dtype)
    for i in range(b):
        for d in range(k):
            h[i, d] = hidden[i, d] * keep[i]
    gi = np.empty((b, w_ih.shape[0]), dtype)
    _mm(x_in, False, w_ih, True, gi)
    gh = _live_rows_product(h, w_hh, keep)
    rz = np.empty((b, 2 * k), dtype)
    n = np.empty((b, k), dtype)
    gh_n = np.empty((b, k), dtype)
    out = np.empty((b, k), dtype)
    h_mask = np.empty((b if h_bits.shape[0] > 0 else 0, k), dtype)
    for i in range(b):
        for j in range(2 * k):
            v = (gi[i, j] + b_ih[j]) + (gh[i, j] + b_hh[j])
            rz[i, j] = _sigmoid(v)
        for j in range(k):
            ghn = gh[i, 2 * k + j] + b_hh[2 * k + j]
            gh_n[i, j] = ghn
            nv = _tanh((gi[i, 2 * k + j] + b_ih[2 * k + j]) + rz[i, j] * ghn)
            n[i, j] = nv
            out[i, j] = (h[i, j] - nv) * rz[i, k + j] + nv
    if h_bits.shape[0] > 0:
        for i in range(b):
            for j in range(k):
                mv = h_keep if h_bits[i * k + j] >= h_thr else np.float32(0.0)
                h_mask[i, j] = mv
                out[i, j] *= mv
    # Transposed, (columns, rows): this product shape runs about twice as fast in BLAS.
    logits_t = np.empty((n_cols, b), dtype)
    _mm(weights, False, out, True, logits_t)
    for j in range(n_cols):
        for i in range(b):
            logits_t[j, i] += col_bias[j]
    return cols, weights, x_in, h, rz, n, gh_n, out, h_mask, logits_t


@_jit
def _step_backward(
    logits_t, weights, out, h_mask, x_in, h, keep, rz, n, gh_n, e_bits, e_thr, e_keep, w_ih, *grads
):  # pragma: no cover - compiled
    g_w_ih, g_w_hh, g_b_ih, g_b_hh = grads
    dtype = out.dtype
    b, k = out.shape
    e = x_in.shape[1]
    # The output layer: the gradients of its input and of the scored rows.
    grad = np.empty((b, k), dtype)
    _mm(logits_t, True, weights, False, grad)
    g_weights = np.empty((weights.shape[0], k), dtype)
    _mm(logits_t, False, out, False, g_weights)
    d_gi = np.empty((b, 3 * k), dtype)
    d_gh = np.empty((b, 3 * k), dtype)
    _gru_backward(grad, h_mask, h, rz, n, gh_n, d_gi, d_gh, g_b_ih, g_b_hh)
    _mm(d_gi, True, x_in, False, g_w_ih)
    _live_rows_grad(d_gh, h, keep, g_w_hh)
    g_in = np.empty((b, e), dtype)
    _mm(d_gi, False, w_ih, False, g_in)
    if e_bits.shape[0] > 0:
        for i in range(b):
            for d in range(e):
                g_in[i, d] *= e_keep if e_bits[i * e + d] >= e_thr else np.float32(0.0)
    return g_in, g_weights


def step_forward(*args):
    """The forward pass of a one-layer GRU step under a sampled loss, from the item gather to
    the scores (column biases included: the output bias and, for cross-entropy, -logq log q
    and the log multiplicities), in one compiled call (argument order: see
    :func:`gru4rec.step.compiled.train_epoch`). Returns the arrays the backward pass
    needs: ``cols, weights, x_in, h, rz, n, gh_n, out, h_mask, logits_t``, the scores
    transposed to ``(columns, rows)``."""
    return _step_forward(*args)


def step_backward(*args):
    """The backward pass matching :func:`step_forward`, from the scores' gradient (transposed):
    fills the GRU weight and bias gradients (the last four arguments) and returns the
    gradients of the input rows and of the scored rows."""
    return _step_backward(*args)
