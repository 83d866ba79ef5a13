"""Tests of gru4rec.inference: scoring in bounded blocks (batch x chunk, never users x items)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import (
    dense,
    many_sessions,
    neg,
)

from gru4rec import estimator as est_module
from gru4rec.model import GRU4RecNet


def _record_scoring(monkeypatch) -> list[tuple[str, int, int]]:
    """Record (method, rows, items) of every score product the model computes."""
    shapes: list[tuple[str, int, int]] = []
    real = GRU4RecNet.score

    def recording(out, weights, bias):
        shapes.append(("score", out.shape[0], weights.shape[0]))
        return real(out, weights, bias)

    monkeypatch.setattr(GRU4RecNet, "score", staticmethod(recording))
    return shapes


@pytest.mark.parametrize("loss_fn", ["bpr", "cross-entropy"])
def test_training_scores_only_batch_by_batch_plus_negatives(monkeypatch, loss_fn):
    df = many_sessions()
    shapes = _record_scoring(monkeypatch)
    neg(loss_fn=loss_fn, batch_size=4, num_negatives=3).fit(df)
    assert shapes
    assert max(r for _, r, _ in shapes) <= 4
    assert max(c for _, _, c in shapes) <= 4 + 3  # never the 40-item catalogue


def test_next_item_ranks_scores_one_batch_and_chunk_at_a_time(monkeypatch):
    est = neg().fit(many_sessions())
    monkeypatch.setattr(est_module, "_EVAL_SLOTS", 8)
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", 16)
    shapes = _record_scoring(monkeypatch)
    ranks = est.next_item_ranks(many_sessions())
    assert len(ranks) == 80
    assert max(r for _, r, _ in shapes) <= 8
    assert max(c for _, _, c in shapes) <= 16


def test_predict_topk_scores_one_batch_and_chunk_at_a_time(monkeypatch):
    est = neg(predict_topK=3).fit(many_sessions())
    reference = dense(est.predict(many_sessions()))  # one block, one chunk
    monkeypatch.setattr(est_module, "_EVAL_SLOTS", 8)
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", 16)
    shapes = _record_scoring(monkeypatch)
    pred = est.predict(many_sessions())
    assert pred.nnz == 40 * 3
    assert max(c for _, _, c in shapes) <= 16
    assert max(r for _, r, _ in shapes) <= 8
    # Blocks of rows and chunks of items change nothing in the result.
    np.testing.assert_allclose(dense(pred), reference, rtol=1e-6, atol=1e-6)
