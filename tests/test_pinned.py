"""Pinned predictions: small fixed-seed fits must keep giving the same top-20 lists and scores.

The expected arrays in ``tests/data/pinned_predictions.npz`` were produced by this module's
``_pinned()`` (run ``python tests/test_pinned.py`` to rewrite them, only after a deliberate
change of the training or scoring arithmetic). The data are synthetic with distinct session
start times, so the order of sessions in an epoch is fully determined by the seed.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec.datasets import last_item_split, make_synthetic_sessions

PINNED = pathlib.Path(__file__).parent / "data" / "pinned_predictions.npz"

COMMON = dict(hidden_size=16, batch_size=24, max_epochs=3, seed=7, device="cpu")
CONFIGS = {
    # The default loss, dropout and momentum, best epoch picked on validation data.
    "bpr": (GRU4RecNegSampling, dict(num_negatives=16, dropout=0.1, momentum=0.2)),
    # Sampled softmax with popularity sampling and the logq correction, bptt windows.
    "ce_logq": (
        GRU4RecNegSampling,
        dict(loss_fn="cross-entropy", logq=1.0, sample_alpha=0.5, num_negatives=20, bptt=2),
    ),
    "bpr_max_sgd": (
        GRU4RecNegSampling,
        dict(loss_fn="bpr-max", optimization_algorithm="sgd", learning_rate=0.05, elu_param=0.5),
    ),
    "top1_max_shared": (GRU4RecNegSampling, dict(loss_fn="top1-max", constrained_embedding=True)),
    "full_ce": (GRU4RecCrossEntropy, dict(num_layers=2, dropout_hidden=0.05)),
}


def _data():
    df = make_synthetic_sessions(400, 60, seed=11)
    assert df.groupby("session_id")["timestamp"].min().is_unique  # no tied start times
    X = InteractionMatrix.from_events(df)
    return X, df


def _pinned() -> dict[str, np.ndarray]:
    X, df = _data()
    val_in, val_out = last_item_split(X)
    # The first events of 25 sessions, 1 to 4 of them (prefixes of different lengths).
    groups = [g.to_numpy() for _, g in df.groupby("session_id", sort=True)["item_id"]][:25]
    sessions = [g[: 1 + i % 4].tolist() for i, g in enumerate(groups)]
    out = {}
    for name, (cls, params) in CONFIGS.items():
        est = cls(**COMMON, **params).fit(X, validation_data=(val_in, val_out))
        ids, scores = est.recommend(sessions, k=20)
        out[f"{name}_ids"] = np.asarray(ids)
        out[f"{name}_scores"] = np.asarray(scores, dtype=np.float32)
        out[f"{name}_best_epoch"] = np.asarray(est.best_epoch_)
        pred = est.predict(val_in)
        out[f"{name}_predict_row0"] = pred[pred.getnnz(axis=1).argmax()].toarray().ravel()
    return out


@pytest.fixture(scope="module")
def pinned():
    return _pinned()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fixed_seed_fit_gives_the_pinned_predictions(pinned, name):
    expected = np.load(PINNED)
    np.testing.assert_array_equal(pinned[f"{name}_best_epoch"], expected[f"{name}_best_epoch"])
    np.testing.assert_array_equal(pinned[f"{name}_ids"], expected[f"{name}_ids"])
    np.testing.assert_allclose(
        pinned[f"{name}_scores"], expected[f"{name}_scores"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        pinned[f"{name}_predict_row0"], expected[f"{name}_predict_row0"], rtol=1e-5, atol=1e-6
    )


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    np.savez_compressed(PINNED, **_pinned())
    print(f"wrote {PINNED}")
