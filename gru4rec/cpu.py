"""The CPU's arithmetic: which BLAS multiplies large matrices, and how many threads torch and
the BLAS libraries use while the package works.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch

from . import kernels
from .checks import is_int

__all__ = ["blas_threads", "matmul", "torch_threads", "with_threads"]

_THREADS = threading.local()  # OpenMP thread counts are per OS thread, so is this flag
_Method = TypeVar("_Method", bound=Callable[..., Any])


@functools.cache
def _numpy_blas() -> bool:
    """Whether CPU matrix products go to NumPy's BLAS instead of torch's.

    torch's CPU wheels link Intel's MKL, which runs well below its Intel speed on other
    x86 processors; NumPy's OpenBLAS picks kernels for the processor it runs on. Measured
    with one thread on an AMD EPYC, for the products of a 512-unit GRU layer and its
    output scores: OpenBLAS 1.2x to 1.9x faster alone, equal for 100 units. The rule is fixed
    per machine (never timed at run time), so that a seed gives the same model every run.
    ``GRU4REC_BLAS=torch`` or ``=numpy`` overrides it.
    """
    choice = os.environ.get("GRU4REC_BLAS", "").lower()
    if choice in ("torch", "numpy"):
        return choice == "numpy"
    if "mkl" not in torch.__config__.show().lower() or not _numpy_has_openblas():
        return False
    return _cpu_vendor() not in ("", "GenuineIntel")


def _numpy_has_openblas() -> bool:
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26 prints only
        return False
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return "openblas" in str(blas.get("name", "")).lower()


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


# Below this many multiply-adds the conversions cost more than the faster kernel saves
# (measured: 100-unit products were 10% slower through NumPy, 512-unit ones 10% faster).
_NUMPY_BLAS_MIN_MACS = 16_000_000


def matmul(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` (plus a broadcast ``bias``) with the faster BLAS of this machine
    (:func:`_numpy_blas`); autograd does not see the NumPy path, so it is for tensors
    outside any graph."""
    big = a.shape[0] * a.shape[1] * b.shape[1] >= _NUMPY_BLAS_MIN_MACS
    if big and a.device.type == "cpu" and a.dtype == b.dtype and _numpy_blas():
        out = torch.empty(a.shape[0], b.shape[1], dtype=a.dtype)
        np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.numpy())
        return out if bias is None else out.add_(bias)
    return a @ b if bias is None else torch.addmm(bias, a, b)


@contextlib.contextmanager
def blas_threads() -> Iterator[None]:
    """Run the block with NumPy's and SciPy's BLAS limited to torch's thread count, when
    :func:`matmul` or the compiled kernels use them (OpenBLAS would start a thread per core)."""
    if not (_numpy_blas() or kernels.AVAILABLE):
        yield
        return
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency; costs ~ms

    # The BLAS pools are the process's: overlapping blocks (fits in threads) share one limit,
    # set by the first to enter and lifted by the last to leave. Restoring per block would let
    # a later block restore the limit an earlier one set, for good.
    with _BLAS_LOCK:
        if _BLAS["depth"] == 0:
            _BLAS["limiter"] = threadpool_limits(limits=torch.get_num_threads(), user_api="blas")
        _BLAS["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS["depth"] -= 1
            if _BLAS["depth"] == 0:
                _BLAS.pop("limiter").restore_original_limits()


_BLAS_LOCK = threading.Lock()
_BLAS: dict[str, Any] = {"depth": 0}


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)``, restoring the count after.

    None leaves torch alone. Nested calls (fit -> validation ranks) keep the outer setting.
    """
    if num_threads is None or getattr(_THREADS, "active", False):
        yield
        return
    if not is_int(num_threads):
        raise ValueError(f"num_threads must be an integer >= 1 or None; got {num_threads!r}")
    before = torch.get_num_threads()
    if before != num_threads:
        torch.set_num_threads(num_threads)
    _THREADS.active = True
    try:
        yield
    finally:
        _THREADS.active = False
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def with_threads(method: _Method) -> _Method:
    """Decorator: run an estimator method under the estimator's ``num_threads``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(getattr(self, "num_threads", None)):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
