"""Fused CPU kernels for the training step, compiled with numba when it is installed.

A training step of GRU4Rec is made of a few matrix products and many small element-wise
passes (optimiser updates of the touched item rows and of the GRU weights, the loss
gradient). With one torch operator per pass, the per-operator overhead and the repeated
trips through memory cost several times the arithmetic. Each function here does one such
group of passes in a single loop over the data, on NumPy views of the (CPU) tensors, so
nothing is copied.

Every kernel computes what the torch code of :mod:`gru4rec.optim`, :mod:`gru4rec.losses`,
:mod:`gru4rec.model`, :mod:`gru4rec.samplers` and :mod:`gru4rec.training` computes; results
agree to float32 rounding (tests compare both: the kernels' own ``exp``, fused multiply-adds and
sums in another order differ in the last bits; the sampler's draws are identical). Without numba,
:data:`AVAILABLE` is False and the callers use their torch code. Setting the environment
variable ``GRU4REC_DISABLE_KERNELS=1`` forces the torch code. Compiled code is cached on disk,
so only the first use after installing pays for compilation. The float32 matrix products call
NumPy's own BLAS (:func:`_numpy_sgemm_address`; ``GRU4REC_KERNEL_BLAS=numba`` or its absence
sends them to numba's ``np.dot``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np

try:  # numba is a dependency where it installs; the torch code is the fallback
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

__all__ = [
    "AVAILABLE",
    "bpr_max_step_loss",
    "bpr_step_loss",
    "dense_updater",
    "dropout_mask",
    "elementwise",
    "gru_backward",
    "inverse_cdf_table",
    "rows_updater",
    "softmax_xent_finish",
    "sorted_draws",
    "step_backward",
    "step_forward",
    "will_compile",
    "xent_column_bias",
    "xent_step_softmax_loss",
]

#: Whether the compiled kernels can be used (numba imports and they are not disabled).
AVAILABLE = numba is not None and os.environ.get("GRU4REC_DISABLE_KERNELS", "") in ("", "0")


def will_compile() -> bool:
    """Whether the next compiled fit of this process compiles kernels first (seconds): none
    of the optimiser's kernels, which every compiled fit runs, has run in this process, and
    the disk cache lacks one of them. False where that cannot be told."""
    if not AVAILABLE:
        return False
    probes = (_dense_update, _rows_update)
    if any(d.signatures for d in probes):
        return False
    try:
        return not all(os.path.exists(d._cache._cache_file._index_path) for d in probes)
    except AttributeError:  # another numba's cache layout: say nothing
        return False


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    # error_model='numpy': no zero-division checks, which would keep the loops scalar.
    # contract: multiply-adds may fuse (one rounding instead of two).
    return numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})(fn)


def _jit_inline(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})(fn)


if numba is not None:
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _bits_to_float32(typingctx, bits):  # pragma: no cover - compile-time
        """The float32 whose bit pattern is the int32 ``bits`` (a register move)."""
        sig = numba.types.float32(numba.types.int32)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.FloatType())

        return sig, codegen

    @_intrinsic
    def _max32(typingctx, a, b):  # pragma: no cover - compile-time
        """``max(a, b)`` of two float32 (either one where an operand is NaN), for running
        maxima kept in an array.

        Written as ``a if a > b else b`` (or as a NaN-aware maximum), the update becomes a
        store that skips some lanes, which vectorises to a masked store (``vmaskmovps``):
        microcoded on AMD cores and slower than scalar code. Declared NaN-free, it is a
        plain ``vmaxps`` and store. Used only for the shift of a softmax, where a NaN
        score makes the loss NaN whatever the shift.
        """
        sig = numba.types.float32(numba.types.float32, numba.types.float32)

        def codegen(context, builder, signature, args):
            f32 = _ir.FloatType()
            fnty = _ir.FunctionType(f32, [f32, f32])
            fn = _cgutils.get_or_insert_function(builder.module, fnty, "llvm.maxnum.f32")
            return builder.call(fn, args, fastmath=("nnan",))

        return sig, codegen

else:  # pragma: no cover

    def _bits_to_float32(bits):
        return np.array(bits, np.int32).view(np.float32)[()]

    def _max32(a, b):
        return b if a != a else (a if a > b or b != b else b)


_F = np.float32

if numba is not None:

    @_intrinsic
    def _prefetch_lines(typingctx, arr, row, start):  # pragma: no cover - compile-time
        """Prefetch hint (for writing) for the cache line of ``arr[row, start]``."""
        sig = numba.types.void(arr, row, start)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = _cgutils.get_item_pointer2(
                context,
                builder,
                ary.data,
                _cgutils.unpack_tuple(builder, ary.shape),
                _cgutils.unpack_tuple(builder, ary.strides),
                aryty.layout,
                [args[1], args[2]],
                wraparound=False,
            )
            i8p, i32 = _ir.IntType(8).as_pointer(), _ir.IntType(32)
            fnty = _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32])
            fn = _cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

else:  # pragma: no cover

    def _prefetch_lines(arr, row, start):
        pass


#: The symbol the compiled kernels call for float32 matrix products: a ``cblas_sgemm`` with
#: 64-bit integers, bound when this module loads (:func:`_bind_sgemm`).
_SGEMM_SYMBOL = "gru4rec_cblas_sgemm64"
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _numpy_sgemm_address() -> int:
    """The address of NumPy's own BLAS's ``cblas_sgemm`` with 64-bit integers, or 0.

    numba's ``np.dot`` calls SciPy's BLAS. NumPy's wheels bring a newer OpenBLAS whose kernels
    run the small products of a training step (32 to 128 rows) up to 25% faster (measured
    with one thread on an AMD EPYC, on the shapes of a 100-unit layer)."""
    import ctypes

    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath
    try:
        lib = ctypes.CDLL(umath.__file__)  # its symbols and those of the libraries it links
    except OSError:  # pragma: no cover
        return 0
    for name in ("scipy_cblas_sgemm64_", "cblas_sgemm64_", "cblas_sgemm_64"):
        fn = getattr(lib, name, None)
        if fn is not None:
            return int(ctypes.cast(fn, ctypes.c_void_p).value or 0)
    return 0  # pragma: no cover - NumPy built on another BLAS


if numba is not None:
    _i32, _i64, _f32 = numba.types.int32, numba.types.int64, numba.types.float32
    _fptr = numba.types.CPointer(_f32)
    _SGEMM_SIG = numba.types.void(
        _i32, _i32, _i32, _i64, _i64, _i64, _f32, _fptr, _i64, _fptr, _i64, _f32, _fptr, _i64
    )
    _sgemm = numba.types.ExternalFunction(_SGEMM_SYMBOL, _SGEMM_SIG)

    def _sgemm_fallback(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        """``_sgemm`` through numba's ``np.dot``, where NumPy's BLAS has no such function;
        for the calls of :func:`_mm` only (row-major, alpha 1, beta 0, each leading dimension
        the width of its operand as stored)."""  # pragma: no cover - compiled
        a_st = numba.carray(a, (k, m) if trans_a == _TRANS else (m, k))
        b_st = numba.carray(b, (n, k) if trans_b == _TRANS else (k, n))
        out = numba.carray(c, (m, n))
        if trans_a == _TRANS and trans_b == _TRANS:  # one layout per call: no 'A' arrays
            np.dot(a_st.T, b_st.T, out)
        elif trans_a == _TRANS:
            np.dot(a_st.T, b_st, out)
        elif trans_b == _TRANS:
            np.dot(a_st, b_st.T, out)
        else:
            np.dot(a_st, b_st, out)

    def _bind_sgemm(force_fallback: bool = False) -> str:
        """Point :data:`_SGEMM_SYMBOL` at NumPy's BLAS, else at the compiled fallback; returns
        which (``"numpy"`` or ``"numba"``). The kernels name the symbol, not the address, so
        their disk cache holds in every process."""
        from llvmlite import binding

        address = 0 if force_fallback else _numpy_sgemm_address()
        backend = "numpy"
        if not address:
            compiled = numba.cfunc(_SGEMM_SIG, cache=True)(_sgemm_fallback)
            address, backend = compiled.address, "numba"
        binding.add_symbol(_SGEMM_SYMBOL, address)
        return backend

    #: Where the kernels' float32 products go: ``"numpy"`` (NumPy's BLAS) or ``"numba"``.
    SGEMM_BACKEND = _bind_sgemm(os.environ.get("GRU4REC_KERNEL_BLAS", "") == "numba")

    from numba.extending import overload as _overload

    @numba.njit(inline="always", cache=True)
    def _dot_into(a, trans_a, b, trans_b, out):  # pragma: no cover - compiled
        if trans_a and trans_b:  # one layout per call: no 'A' arrays
            np.dot(a.T, b.T, out)
        elif trans_a:
            np.dot(a.T, b, out)
        elif trans_b:
            np.dot(a, b.T, out)
        else:
            np.dot(a, b, out)

    def _mm(a, trans_a, b, trans_b, out):
        """``out[...] = op(a) @ op(b)``, op transposing where ``trans_a`` / ``trans_b``."""
        out[...] = np.dot(a.T if trans_a else a, b.T if trans_b else b)

    @_overload(_mm)
    def _mm_impl(a, trans_a, b, trans_b, out):  # pragma: no cover - compile-time
        f32 = numba.types.float32
        if not (a.dtype == f32 and b.dtype == f32 and out.dtype == f32):

            def generic(a, trans_a, b, trans_b, out):
                _dot_into(a, trans_a, b, trans_b, out)

            return generic

        def sgemm(a, trans_a, b, trans_b, out):
            m, n = out.shape
            k = a.shape[0] if trans_a else a.shape[1]
            if m == 0 or n == 0:
                return
            if k == 0:
                out[...] = 0.0
                return
            if not (a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous):
                _dot_into(a, trans_a, b, trans_b, out)
                return
            _sgemm(
                _ROW_MAJOR,
                _TRANS if trans_a else _NO_TRANS,
                _TRANS if trans_b else _NO_TRANS,
                m,
                n,
                k,
                np.float32(1.0),
                a.ctypes,
                a.shape[1],
                b.ctypes,
                b.shape[1],
                np.float32(0.0),
                out.ctypes,
                n,
            )

        return sgemm

else:  # pragma: no cover
    SGEMM_BACKEND = "none"

    def _mm(a, trans_a, b, trans_b, out):
        out[...] = np.dot(a.T if trans_a else a, b.T if trans_b else b)


#: Rows ahead whose cache lines a scattered-row loop requests.
_AHEAD = 4


@_jit_inline
def _prefetch_row(arr, row):  # pragma: no cover - compiled
    for d in range(0, arr.shape[1], 16):  # one hint per 64-byte line of float32
        _prefetch_lines(arr, row, d)


@_jit_inline
def _exp(x):  # pragma: no cover - compiled
    """float32 exp within 1 ulp, in plain arithmetic so that loops calling it vectorise
    (numba's ``np.exp`` is a scalar library call, several times slower than the loop).

    exp(x) = 2**k * exp(r) with k = round(x / ln 2), |r| <= ln 2 / 2, ln 2 split in two
    for an exact reduction, and a degree-7 polynomial for exp(r)."""
    xc = x if x < _F(88.75) else _F(88.75)  # also sends NaN here: the result stays NaN
    xc = xc if xc > _F(-87.4) else _F(-87.4)
    k = np.floor(xc * _F(1.44269504) + _F(0.5))  # in [-126, 128]
    r = x - k * _F(0.693359375)
    r = r - k * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    p = p * r * r + r + _F(1.0)
    # 2**k in two halves: 2**128 (for x just below the overflow) is not a float32.
    k1 = np.int32(k) >> np.int32(1)
    k2 = np.int32(k) - k1
    scaled = p * _bits_to_float32((k1 + np.int32(127)) << np.int32(23))
    scaled = scaled * _bits_to_float32((k2 + np.int32(127)) << np.int32(23))
    return _F(0.0) if x < _F(-87.33654) else scaled


@_jit_inline
def _sigmoid(x):  # pragma: no cover - compiled
    return _F(1.0) / (_F(1.0) + _exp(-x))


@_jit_inline
def _tanh(x):  # pragma: no cover - compiled
    """float32 tanh: a series near 0 (where 1 - 2 / (e**2x + 1) would cancel), else that."""
    x2 = x * x
    series = x + x * x2 * (
        _F(-1.0 / 3.0) + x2 * (_F(2.0 / 15.0) + x2 * (_F(-17.0 / 315.0) + x2 * _F(62.0 / 2835.0)))
    )
    far = _F(1.0) - _F(2.0) / (_exp(_F(2.0) * x) + _F(1.0))
    return series if x2 < _F(0.0625) else far


@_jit_inline
def _log1p_unit(y):  # pragma: no cover - compiled
    """float32 ``log(1 + y)`` for ``y`` in [0, 1] (what a softplus needs), in plain arithmetic.

    ``1 + y = 2**e (1 + f)`` with ``f`` in [sqrt(1/2) - 1, sqrt(2) - 1]: ``f = y`` (exact, so
    tiny ``y`` keep their precision) or ``f = (y - 1) / 2`` with ``e = 1``; then a degree-9
    polynomial for ``log(1 + f)`` and ln 2 split in two, as in the classic single-precision
    ``log``."""
    big = y > _F(0.41421356)
    f = (y - _F(1.0)) * _F(0.5) if big else y
    e = _F(1.0) if big else _F(0.0)
    z = f * f
    p = _F(7.0376836292e-2)
    p = p * f - _F(1.1514610310e-1)
    p = p * f + _F(1.1676998740e-1)
    p = p * f - _F(1.2420140846e-1)
    p = p * f + _F(1.4249322787e-1)
    p = p * f - _F(1.6668057665e-1)
    p = p * f + _F(2.0000714765e-1)
    p = p * f - _F(2.4999993993e-1)
    p = p * f + _F(3.3333331174e-1)
    p = p * f * z
    p = p + e * _F(-2.12194440e-4)
    p = p - _F(0.5) * z
    return (f + p) + e * _F(0.693359375)


@_jit
def _log1p_unit_into(x, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        out[i] = _log1p_unit(x[i])


@_jit
def _exp_into(x, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        out[i] = _exp(x[i])


@_jit
def _sigmoid_into(x, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        out[i] = _sigmoid(x[i])


@_jit
def _tanh_into(x, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        out[i] = _tanh(x[i])


def elementwise(name: str, x: np.ndarray) -> np.ndarray:
    """The kernels' own float32 ``exp``, ``sigmoid``, ``tanh`` or ``log1p_unit`` (``log(1 +
    x)`` for ``x`` in [0, 1]) of a 1-D array (what the compiled steps compute; exposed for
    tests)."""
    fn = {
        "exp": _exp_into,
        "sigmoid": _sigmoid_into,
        "tanh": _tanh_into,
        "log1p_unit": _log1p_unit_into,
    }[name]
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    fn(x, out)
    return out


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
    n = rows.shape[0]
    dim = table.shape[1]
    use_acc = acc.shape[0] > 0
    use_vel = vel.shape[0] > 0
    n_bias = g_bias.shape[0]
    first = np.empty(n, np.int64)  # where each distinct row first occurs
    dup = np.empty(n, np.int64)  # its row in gsum when it repeats, else -1
    has_bias = np.zeros(n, np.bool_)
    step = np.empty(dim, table.dtype)
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
def _live_rows(keep):  # pragma: no cover - compiled
    n = 0
    for i in range(keep.shape[0]):
        if keep[i] != 0:
            n += 1
    live = np.empty(n, np.int64)
    n = 0
    for i in range(keep.shape[0]):
        if keep[i] != 0:
            live[n] = i
            n += 1
    return live


@_jit_inline
def _live_rows_product(h, w, keep):  # pragma: no cover - compiled
    """``h @ w.T`` where the rows of ``h`` with ``keep`` 0 (sessions starting: a zero hidden
    state) are zero: only the other rows are multiplied (a quarter of the rows on session
    data with four events per session)."""
    live = _live_rows(keep)
    if live.shape[0] == h.shape[0]:
        full = np.empty((h.shape[0], w.shape[0]), h.dtype)
        _mm(h, False, w, True, full)
        return full
    out = np.zeros((h.shape[0], w.shape[0]), h.dtype)
    if live.shape[0] > 0:
        part = np.empty((live.shape[0], w.shape[0]), h.dtype)
        _mm(h[live], False, w, True, part)
        for j in range(live.shape[0]):
            out[live[j]] = part[j]
    return out


@_jit_inline
def _live_rows_grad(d, h, keep, out):  # pragma: no cover - compiled
    """``out = d.T @ h`` where the rows of ``h`` with ``keep`` 0 are zero (and add nothing)."""
    live = _live_rows(keep)
    if live.shape[0] == h.shape[0]:
        _mm(d, True, h, False, out)
    elif live.shape[0] == 0:
        out[:] = 0.0
    else:
        _mm(d[live], True, h[live], False, out)


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
    e = w_ih.shape[1]
    m = negs.shape[0]
    n_cols = b + m
    cols = np.empty(n_cols, np.int64)
    cols[:b] = y
    cols[b:] = negs
    dim = out_table.shape[1]
    weights = np.empty((n_cols, dim), dtype)
    for j in range(n_cols):
        if j + _AHEAD < n_cols:
            _prefetch_row(out_table, cols[j + _AHEAD])
        c = cols[j]
        for d in range(dim):  # element loops: a row view per item costs more than the copy
            weights[j, d] = out_table[c, d]
    col_bias = np.empty(n_cols, dtype)
    _xent_column_bias(bias, log_counts, y, negs, log_mult, alpha, logq, col_bias)
    x_in = np.empty((b, e), dtype)
    for i in range(b):
        r = x_idx[i]
        if e_bits.shape[0] > 0:
            for d in range(e):
                keep_d = e_keep if e_bits[i * e + d] >= e_thr else np.float32(0.0)
                x_in[i, d] = in_table[r, d] * keep_d
        else:
            for d in range(e):
                x_in[i, d] = in_table[r, d]
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


@_jit_inline
def _row_sums(a, out):  # pragma: no cover - compiled
    """``out[:, 0] = a.sum(1)`` as a BLAS matrix-vector product: a sum carried along a row
    keeps the loop that computes ``a`` from vectorising."""
    out[:, 0] = np.dot(a, np.ones(a.shape[1], a.dtype))


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
    ``_train_epoch_fused`` in :mod:`gru4rec.training`). Returns the arrays the backward pass
    needs: ``cols, weights, x_in, h, rz, n, gh_n, out, h_mask, logits_t``, the scores
    transposed to ``(columns, rows)``."""
    return _step_forward(*args)


def step_backward(*args):
    """The backward pass matching :func:`step_forward`, from the scores' gradient (transposed):
    fills the GRU weight and bias gradients (the last four arguments) and returns the
    gradients of the input rows and of the scored rows."""
    return _step_backward(*args)


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
