"""How the kernels are compiled, and the LLVM intrinsics they share.

:func:`_jit` compiles a kernel (cached on disk, no GIL, numpy's error model so that loops
vectorise, fused multiply-adds allowed); :func:`_jit_inline` a helper inlined into its callers.
Without numba both return the Python function unchanged.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency where it installs; the torch code is the fallback
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None


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


#: Rows ahead whose cache lines a scattered-row loop requests.
_AHEAD = 4


@_jit_inline
def _prefetch_row(arr, row):  # pragma: no cover - compiled
    for d in range(0, arr.shape[1], 16):  # one hint per 64-byte line of float32
        _prefetch_lines(arr, row, d)
