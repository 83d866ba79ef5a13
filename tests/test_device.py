"""Tests of gru4rec.device (device choice, the CUDA-less fallbacks) and gru4rec.cpu (the BLAS
choice, torch's and the BLAS's thread counts)."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from tiny import (
    dense,
    events,
    neg,
    xent,
)

import gru4rec.inference as inference
from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec.datasets import last_item_split, make_synthetic_sessions, time_split
from gru4rec.stopping import StoppingCriterion


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
    from gru4rec import cpu

    monkeypatch.setattr(cpu, "_numpy_blas", lambda: blas == "numpy")
    m, k, n = shape
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
    bias = torch.randn(n, generator=g)
    ref = a.double() @ b.double().t() + bias.double()
    out = cpu.matmul(a, b.t(), bias)
    assert out.shape == (m, n) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    ref = ref - bias.double()
    torch.testing.assert_close(cpu.matmul(a, b.t()).double(), ref, rtol=1e-4, atol=1e-4)


def test_blas_choice_can_be_forced_by_the_environment(monkeypatch):
    from gru4rec import cpu

    for value, expected in (("numpy", True), ("torch", False)):
        monkeypatch.setenv("GRU4REC_BLAS", value)
        cpu._numpy_blas.cache_clear()
        assert cpu._numpy_blas() is expected
    cpu._numpy_blas.cache_clear()


# -- threads: num_threads while the estimator works, torch's setting restored after -------------


@pytest.fixture
def outer_threads():
    """torch set to 3 threads around the test (not 1, not torch's default: a change shows)."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def _recording_criterion(seen: list[int]) -> StoppingCriterion:
    def recall_recording_threads(ranks):
        seen.append(torch.get_num_threads())
        return float(np.mean(ranks <= 20))

    return StoppingCriterion(recall_recording_threads, needs="ranks", name="rec")


@pytest.mark.parametrize(
    "cls, num_threads",
    [
        (GRU4RecNegSampling, 1),
        (GRU4RecNegSampling, None),
        (GRU4RecCrossEntropy, 1),
        (GRU4RecCrossEntropy, 2),  # one case with 2 threads: slow on a busy CI machine
    ],
)
def test_fit_and_inference_run_with_num_threads_and_restore(
    cls, num_threads, outer_threads, monkeypatch
):
    seen: list[int] = []
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=0, device="cpu")
    est = cls(num_threads=num_threads, stopping_criterion=_recording_criterion(seen), **small)
    # Tiny data: several threads on a busy machine make every step wait (what this is about).
    tiny = make_synthetic_sessions(n_sessions=80, n_items=15, seed=2)
    train, test = time_split(tiny, test_days=0.02)
    X = InteractionMatrix.from_events(train)
    V = InteractionMatrix.from_events(test, item_vocabulary=X.item_vocabulary)
    est.fit(X, validation_data=last_item_split(V))
    expected = outer_threads if num_threads is None else num_threads
    assert seen == [expected]
    assert torch.get_num_threads() == outer_threads

    topk = inference.Scorer.top_k
    during: list[int] = []

    def recording(*args, **kwargs):
        during.append(torch.get_num_threads())
        return topk(*args, **kwargs)

    monkeypatch.setattr(inference.Scorer, "top_k", recording)
    est.recommend([1, 2])
    est.set_params(predict_topK=5)
    est.predict(V)
    assert during == [expected, expected]
    assert torch.get_num_threads() == outer_threads
    with pytest.raises(ValueError):  # an error inside still restores the setting
        est.predict(pd.DataFrame({"x": [1]}))
    assert torch.get_num_threads() == outer_threads


@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_fit_and_inference_leave_torch_thread_settings_alone(make):
    before = torch.get_num_threads()
    interop = torch.get_num_interop_threads()
    torch.set_num_threads(2)  # not 1, not the module's setting: a reset would show
    try:
        est = make(max_epochs=1)
        est.fit(events(), validation_data=(events(), events()))
        assert torch.get_num_threads() == 2
        est.predict(events())
        est.next_item_ranks(events())
        est.recommend([10, 11])
        est.score(events())
        assert torch.get_num_threads() == 2
        assert torch.get_num_interop_threads() == interop
    finally:
        torch.set_num_threads(before)


def test_overlapping_blas_limits_restore_the_original_when_the_last_one_ends():
    from threadpoolctl import threadpool_info, threadpool_limits

    from gru4rec import cpu

    def blas_threads_now():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    if not blas_threads_now():
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpool_limits(limits=2, user_api="blas"):
        original = blas_threads_now()
        first, second = cpu.blas_threads(), cpu.blas_threads()
        first.__enter__()  # two fits in two threads: entered in turn...
        second.__enter__()
        first.__exit__(None, None, None)  # ...and the first to start ends first
        assert blas_threads_now() == {torch.get_num_threads()} or not cpu.kernels.AVAILABLE
        second.__exit__(None, None, None)
        assert blas_threads_now() == original
