"""Tiny estimators, event logs and weight helpers shared by the test modules.

Every fit with these is tiny (a handful of sessions, hidden size 8, one torch thread).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec.optim import RowSparseOptimizer

TINY = dict(hidden_size=8, num_components=8, batch_size=4, num_negatives=4, max_epochs=1)


def neg(**kw) -> GRU4RecNegSampling:
    return GRU4RecNegSampling(**{**TINY, "device": "cpu", "seed": 0, **kw})


def xent(**kw) -> GRU4RecCrossEntropy:
    params = {k: v for k, v in TINY.items() if k != "num_negatives"}
    return GRU4RecCrossEntropy(**{**params, "device": "cpu", "seed": 0, **kw})


def events() -> pd.DataFrame:
    """Four sessions over five items (raw ids 10..14), ordered by session and time."""
    return pd.DataFrame(
        {
            "session_id": [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3],
            "item_id": [10, 11, 12, 11, 12, 12, 10, 11, 13, 14, 10, 11],
            "timestamp": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        }
    )


def longer_events(n_sessions: int = 12, n_items: int = 9, seed: int = 0) -> pd.DataFrame:
    """Enough sessions for several training steps per epoch (batch_size 4)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 6, size=n_sessions)
    sessions = np.repeat(np.arange(n_sessions), lengths)
    return pd.DataFrame(
        {
            "session_id": sessions,
            "item_id": rng.integers(0, n_items, size=len(sessions)),
            "timestamp": np.arange(len(sessions)),
        }
    )


def index_matrix(shape=None) -> InteractionMatrix:
    df = events()
    df = df.assign(item_id=df["item_id"] - 10)
    return InteractionMatrix(df, "item_id", "session_id", "timestamp", shape=shape)


def dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def weights(est) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in est.model_.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def initial_weights(est) -> dict[str, torch.Tensor]:
    """The weights a fit with ``est``'s parameters starts from (before any epoch)."""
    model = est._build_model()
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def all_finite(est) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in est.model_.state_dict().values())


REAL_STEP_ROWS = RowSparseOptimizer.step_rows


def accelerator_step_rows(self, *args, **kwargs):
    """RowSparseOptimizer.step_rows with the accelerator branch taken on any device."""
    self.compact = False
    return REAL_STEP_ROWS(self, *args, **kwargs)


def many_sessions(n_sessions: int = 40, n_items: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "session_id": np.repeat(np.arange(n_sessions), 3),
            "item_id": np.concatenate([np.arange(n_items), rng.integers(0, n_items, 80)]),
            "timestamp": np.arange(3 * n_sessions),
        }
    )
