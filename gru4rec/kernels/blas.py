"""Matrix products of the kernels: NumPy's own BLAS bound as an external symbol.

:func:`_mm` is ``out[...] = op(a) @ op(b)`` inside compiled code; on float32 contiguous
operands it calls ``cblas_sgemm`` of NumPy's BLAS (:func:`_numpy_sgemm_address`;
``GRU4REC_KERNEL_BLAS=numba``, or its absence, sends it to numba's ``np.dot``). Also the
products that skip the zero hidden rows of sessions that start at a step.
"""

from __future__ import annotations

import os

import numpy as np

from .jit import _jit_inline, numba

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


@_jit_inline
def _row_sums(a, out):  # pragma: no cover - compiled
    """``out[:, 0] = a.sum(1)`` as a BLAS matrix-vector product: a sum carried along a row
    keeps the loop that computes ``a`` from vectorising."""
    out[:, 0] = np.dot(a, np.ones(a.shape[1], a.dtype))


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
