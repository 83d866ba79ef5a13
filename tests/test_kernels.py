"""Tests of gru4rec.kernels' own parts: when the kernels run, their float32 scalar functions,
their matrix products and the BLAS they bind.

Each kernel is tested against the torch code it replaces in the tests of that code's module
(test_optim, test_losses, test_model, test_samplers, test_step).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

numba = pytest.importorskip("numba")

from gru4rec import kernels  # noqa: E402
from gru4rec.device import fused_kernels  # noqa: E402


def test_kernels_are_used_on_the_cpu_only(monkeypatch):
    monkeypatch.setattr(kernels, "AVAILABLE", True)
    assert fused_kernels(torch.device("cpu"))
    assert not fused_kernels(torch.device("cuda"))
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert not fused_kernels(torch.device("cpu"))


def _compiled_map(fn):
    import numba

    @numba.njit(cache=False)
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return apply


def _elementwise(name: str, x: np.ndarray) -> np.ndarray:
    """The kernels' own float32 ``exp``, ``sigmoid``, ``tanh`` or ``log1p_unit`` of a 1-D
    array, as the compiled loops inline them."""
    from gru4rec.kernels import scalar

    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _compiled_map(getattr(scalar, f"_{name}"))(x, out)
    return out


@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_the_kernels_elementwise_functions_are_float32_accurate(name):
    x = np.concatenate(
        [np.linspace(-95, 95, 40001), np.linspace(-0.3, 0.3, 6001), [0.0, 88.7, -87.3]]
    ).astype(np.float32)
    ref = {"exp": np.exp, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}[name](
        x.astype(np.float64)
    )
    with np.errstate(over="ignore"):
        out = _elementwise(name, x)
        expected = ref.astype(np.float32)
    normal = np.isfinite(expected) & (np.abs(expected) >= np.finfo(np.float32).tiny)
    np.testing.assert_allclose(out[normal], ref[normal], rtol=6e-7, atol=0)
    # Overflow gives inf, values below float32's normal range give 0 or a denormal.
    assert np.array_equal(np.isinf(out), np.isinf(expected))
    tiny = np.finfo(np.float32).tiny
    assert np.all(np.abs(out[~normal & np.isfinite(expected)]) < tiny)
    special = _elementwise(name, np.array([np.inf, -np.inf, np.nan], np.float32))
    expected = {"exp": [np.inf, 0.0], "sigmoid": [1.0, 0.0], "tanh": [1.0, -1.0]}[name]
    assert special[:2].tolist() == expected and np.isnan(special[2])


def test_the_kernels_log1p_on_the_unit_interval_is_float32_accurate():
    # What the bpr kernel's softplus needs: log(1 + y) for y = exp(-|d|) in [0, 1].
    y = np.concatenate([np.linspace(0, 1, 100001), np.geomspace(1e-45, 1e-3, 2001)])
    y = y.astype(np.float32)
    out = _elementwise("log1p_unit", y)
    ref = np.log1p(y.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=2.5e-7, atol=0)
    assert out[0] == 0.0 and out[-1] > 0.0


@pytest.mark.parametrize("keep", [[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
def test_products_skip_the_zero_hidden_rows_of_starting_sessions(keep):
    rng = np.random.default_rng(0)
    keep = np.array(keep, np.float32)
    h = rng.standard_normal((4, 5), dtype=np.float32) * keep[:, None]
    w = rng.standard_normal((6, 5), dtype=np.float32)
    d = rng.standard_normal((4, 6), dtype=np.float32)
    np.testing.assert_allclose(kernels._live_rows_product(h, w, keep), h @ w.T, rtol=1e-6)
    out = np.full((6, 5), np.nan, np.float32)
    kernels._live_rows_grad(d, h, keep, out)
    np.testing.assert_allclose(out, d.T @ h, rtol=1e-5, atol=1e-6)


@numba.njit(cache=False)
def _mm_call(a, trans_a, b, trans_b, out):
    kernels._mm(a, trans_a, b, trans_b, out)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 40),
    k=st.integers(0, 40),
    n=st.integers(0, 40),
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_kernel_matrix_product_equals_numpy(m, k, n, trans_a, trans_b, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)  # every entry is written, k == 0 included
    _mm_call(a, trans_a, b, trans_b, out)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_kernel_matrix_product_takes_strided_operands_and_propagates_nan():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 10), dtype=np.float32)[:, ::2]  # not contiguous
    b = rng.standard_normal((5, 7), dtype=np.float32)
    out = np.empty((6, 7), np.float32)
    _mm_call(a, False, b, False, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    a = np.ascontiguousarray(a)
    a[2, 3] = np.nan
    _mm_call(a, False, b, False, out)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, axis=0)).all()


def test_kernels_bind_their_products_to_numpys_blas_when_it_has_one():
    import os

    if os.environ.get("GRU4REC_KERNEL_BLAS") == "numba":
        pytest.skip("the fallback was asked for")
    has_numpys = kernels._numpy_sgemm_address() != 0
    assert kernels.SGEMM_BACKEND == ("numpy" if has_numpys else "numba")


def test_kernels_without_numpys_blas_train_the_same_model(tmp_path):
    """GRU4REC_KERNEL_BLAS=numba binds the products to numba's np.dot, as where NumPy's BLAS
    has no 64-bit-integer sgemm: the same model up to float32 rounding."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, numpy as np; sys.path.insert(0, 'tests')\n"
        "from tiny import longer_events, neg\n"
        "from gru4rec import kernels\n"
        "df = longer_events()\n"
        "est = neg(max_epochs=2, loss_fn='bpr-max', num_negatives=6).fit(df)\n"
        "np.save(sys.argv[1], est.predict(df).toarray())\n"
        "print(kernels.SGEMM_BACKEND)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = {}
    for choice in ("", "numba"):
        env = {**os.environ, "GRU4REC_KERNEL_BLAS": choice, "PYTHONPATH": root}
        path = tmp_path / f"pred{choice}.npy"
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        runs[choice] = (done.stdout.strip().splitlines()[-1], np.load(path))
    assert runs["numba"][0] == "numba"
    assert runs[""][0] == kernels.SGEMM_BACKEND
    np.testing.assert_allclose(runs["numba"][1], runs[""][1], rtol=1e-3, atol=1e-4)
