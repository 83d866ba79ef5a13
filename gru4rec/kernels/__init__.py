"""Fused CPU kernels for the training step, compiled with numba when it is installed.

A training step of GRU4Rec is made of a few matrix products and many small element-wise
passes (optimiser updates of the touched item rows and of the GRU weights, the loss
gradient). With one torch operator per pass, the per-operator overhead and the repeated
trips through memory cost several times the arithmetic. Each kernel does one such group of
passes in a single loop over the data, on NumPy views of the (CPU) tensors, so nothing is
copied. One module per domain:

- :mod:`~gru4rec.kernels.jit`: how kernels are compiled, the LLVM intrinsics they share;
- :mod:`~gru4rec.kernels.scalar`: float32 ``exp``, ``sigmoid``, ``tanh``, ``log1p`` inlined
  into the loops;
- :mod:`~gru4rec.kernels.blas`: matrix products through NumPy's BLAS;
- :mod:`~gru4rec.kernels.updates`: optimiser updates (row-sparse and dense);
- :mod:`~gru4rec.kernels.losses`: loss values and score gradients;
- :mod:`~gru4rec.kernels.gru`: dropout masks, the GRU cell's backward pass and the one-layer
  step's forward and backward passes;
- :mod:`~gru4rec.kernels.sampling`: the sampler's sorted draws;
- :mod:`~gru4rec.kernels.quantized`: serving's int8 item table, its scoring pass with a
  running top-k, and the exact top-k of the candidates;
- :mod:`~gru4rec.kernels.live`: one GRU step of live sessions.

Every kernel computes what the torch code of :mod:`gru4rec.optim`, :mod:`gru4rec.losses`,
:mod:`gru4rec.model`, :mod:`gru4rec.samplers` and :mod:`gru4rec.step` computes; results agree
to float32 rounding (tests compare both: the kernels' own ``exp``, fused multiply-adds and sums
in another order differ in the last bits; the sampler's draws are identical). Without numba,
:data:`AVAILABLE` is False and the callers use their torch code. Setting the environment
variable ``GRU4REC_DISABLE_KERNELS=1`` forces the torch code. Compiled code is cached on disk,
so only the first use after installing pays for compilation.

Callers reach the kernels through this package's attributes (``kernels.step_forward``), read
at call time, so that tests and profilers can wrap them.
"""

from __future__ import annotations

import os

from .blas import SGEMM_BACKEND, _live_rows_grad, _live_rows_product, _mm, _numpy_sgemm_address  # noqa: F401
from .gru import dropout_mask, gru_backward, step_backward, step_forward
from .jit import numba
from .losses import (
    bpr_max_step_loss,
    bpr_step_loss,
    softmax_xent_finish,
    xent_column_bias,
    xent_step_softmax_loss,
)
from .sampling import inverse_cdf_table, sorted_draws
from .updates import _dense_update, _rows_update, dense_updater, rows_updater

__all__ = [
    "AVAILABLE",
    "SGEMM_BACKEND",
    "bpr_max_step_loss",
    "bpr_step_loss",
    "dense_updater",
    "dropout_mask",
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
