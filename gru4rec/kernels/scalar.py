"""float32 scalar functions in plain arithmetic, inlined into the kernels' loops.

numba's ``np.exp`` and ``math.log`` are scalar library calls that keep a loop from vectorising;
these are polynomials within an ulp or two of the library functions.
"""

from __future__ import annotations

import numpy as np

from .jit import _F, _bits_to_float32, _jit_inline


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
