"""Tests of gru4rec.device: device choice, the CUDA-less fallbacks."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from tiny import (
    dense,
    events,
    neg,
    xent,
)

from gru4rec import GRU4RecNegSampling


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less fallback")
def test_device_auto_resolves_to_cpu_without_cuda():
    est = neg(device="auto").fit(events())
    assert est.device_ == torch.device("cpu")
    assert all(v.device.type == "cpu" for v in est.model_.state_dict().values())
    ref = neg(device="cpu").fit(events())
    np.testing.assert_array_equal(dense(est.predict(events())), dense(ref.predict(events())))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less error")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_device_cuda_without_cuda_raises_value_error(device, make):
    est = make(device=device)
    with pytest.raises(ValueError, match="CUDA is not available"):
        est.fit(events())
    assert not hasattr(est, "model_")
    with pytest.raises(ValueError, match="CUDA is not available"):
        make(device=torch.device(device)).fit(events())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less fallback")
def test_model_trained_on_cuda_unpickles_on_the_cpu():
    est = neg().fit(events())
    state = est.__getstate__()
    state["device_"] = "cuda:0"  # as a pickle from a GPU machine says
    clone = GRU4RecNegSampling.__new__(GRU4RecNegSampling)
    with pytest.warns(UserWarning, match="not available.*CPU"):
        clone.__setstate__(copy.copy(state))
    assert clone.device_ == torch.device("cpu")
    np.testing.assert_array_equal(dense(clone.predict(events())), dense(est.predict(events())))
    # And a normal round trip keeps the CPU silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(dense(again.predict(events())), dense(est.predict(events())))


@pytest.mark.parametrize("shape", [(3, 4, 5), (300, 300, 200)], ids=["small", "large"])
@pytest.mark.parametrize("blas", ["numpy", "torch"])
def test_matmul_gives_the_product_with_either_blas(monkeypatch, shape, blas):
    from gru4rec import device

    monkeypatch.setattr(device, "_numpy_blas", lambda: blas == "numpy")
    m, k, n = shape
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
    bias = torch.randn(n, generator=g)
    ref = a.double() @ b.double().t() + bias.double()
    out = device.matmul(a, b.t(), bias)
    assert out.shape == (m, n) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    ref = ref - bias.double()
    torch.testing.assert_close(device.matmul(a, b.t()).double(), ref, rtol=1e-4, atol=1e-4)


def test_blas_choice_can_be_forced_by_the_environment(monkeypatch):
    from gru4rec import device

    for value, expected in (("numpy", True), ("torch", False)):
        monkeypatch.setenv("GRU4REC_BLAS", value)
        device._numpy_blas.cache_clear()
        assert device._numpy_blas() is expected
    device._numpy_blas.cache_clear()
