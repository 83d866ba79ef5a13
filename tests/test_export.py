"""The exported one-step network gives the package's top-k, step after step (onnxruntime and
torch.export as the runtimes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.export import export_onnx, one_step

SESSIONS = [[1, 2, 3, 2], [7], [4, 9]]


@pytest.fixture(scope="module", params=["two layers", "constrained"])
def model(request):
    events = make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)
    if request.param == "two layers":
        est = GRU4RecNegSampling(hidden_size=8, num_layers=2, num_negatives=8, seed=0)
    else:
        est = GRU4RecCrossEntropy(hidden_size=8, constrained_embedding=True, seed=0)
    return est.set_params(batch_size=16, max_epochs=1, device="cpu").fit(events)


def _steps(model, run, k):
    """Walk the (equal-length-padded) sessions through ``run`` event by event, batched."""
    vocab = model.item_vocabulary_
    net = model.model_
    state = np.zeros((net.num_layers, len(SESSIONS), net.hidden_size), np.float32)
    results = [None] * len(SESSIONS)
    for t in range(max(map(len, SESSIONS))):
        rows = [s for s, items in enumerate(SESSIONS) if t < len(items)]
        item = vocab.index_of([SESSIONS[s][t] for s in rows])
        items, scores, nxt = run(item, np.ascontiguousarray(state[:, rows]))
        state[:, rows] = nxt
        for j, s in enumerate(rows):
            results[s] = (vocab.to_raw(items[j]), scores[j])
    return results


def _check(model, results, k):
    ids, scores = model.recommend(SESSIONS, k=k)
    for s, (got_ids, got_scores) in enumerate(results):
        np.testing.assert_array_equal(got_ids, ids[s])
        np.testing.assert_allclose(got_scores, scores[s], rtol=1e-5, atol=1e-6)


def test_onnx_one_step_in_onnxruntime_gives_the_packages_top_k(model, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the export test runs in onnxruntime")
    pytest.importorskip("onnx", reason="torch.onnx needs the onnx package")
    path = tmp_path / "step.onnx"
    export_onnx(model, path, k=6)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ["items", "scores", "next_state"]
    run = lambda item, state: session.run(None, {"item": item, "state": state})  # noqa: E731
    _check(model, _steps(model, run, 6), 6)


def test_torch_export_of_the_one_step_module(model):
    net = model.model_
    example = (torch.zeros(2, dtype=torch.int64), torch.zeros(net.num_layers, 2, net.hidden_size))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        one_step(model, k=6), example, dynamic_shapes=({0: batch}, {1: batch})
    ).module()

    def run(item, state):
        with torch.no_grad():
            out = program(torch.as_tensor(item), torch.as_tensor(state))
        return [t.numpy() for t in out]

    _check(model, _steps(model, run, 6), 6)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="k must be"):
        one_step(model, k=0)
    with pytest.raises(ValueError, match="fitted"):
        one_step(GRU4RecNegSampling())
