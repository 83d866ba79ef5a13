"""The estimators' session order in training: sessions visited by start time, tied sessions
in a seeded random draw (never by id), ``session_order="random"``, and ``time_col=None``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.matrix import InteractionMatrix
from gru4rec.metrics import mrr_at_k


def _drift_sessions(seed: int, n_per_group: int = 400, n_items: int = 30) -> pd.DataFrame:
    """Two groups of users with the same items but different transitions, ids numbered
    group by group, every session starting at time 0 (positions as timestamps)."""
    rng = np.random.default_rng(seed)
    successor = np.stack([rng.permutation(n_items) for _ in range(2)])
    n, length = 2 * n_per_group, 5
    group = np.repeat([0, 1], n_per_group)
    items = np.empty((n, length), dtype=np.int64)
    items[:, 0] = rng.integers(0, n_items, n)
    for t in range(1, length):
        follow = rng.random(n) < 0.9
        items[:, t] = np.where(
            follow, successor[group, items[:, t - 1]], rng.integers(0, n_items, n)
        )
    return pd.DataFrame(
        {
            "session_id": np.repeat(np.arange(n), length),
            "item_id": items.ravel(),
            "timestamp": np.tile(np.arange(length), n),
        }
    )


_DRIFT_PARAMS = dict(
    hidden_size=24,
    batch_size=32,
    num_negatives=16,
    loss_fn="bpr-max",
    max_epochs=2,
    learning_rate=0.1,
    device="cpu",
)
# MRR@5 of seeds 0, 1, 2 when the tied sessions were trained in id order (group A, then
# group B), measured before ties were drawn at random: 0.647, 0.648, 0.652.
_ID_ORDER_MRR = 0.65


def _drift_mrr(train: pd.DataFrame, test: pd.DataFrame, seed: int, **params) -> float:
    est = GRU4RecNegSampling(**_DRIFT_PARAMS, seed=seed, **params).fit(train)
    return mrr_at_k(est.next_item_ranks(test), 5)


def test_tied_sessions_are_not_trained_in_id_order():
    grouped, shuffled = [], []
    for seed in range(3):
        df = _drift_sessions(seed)
        train, test = df[df.session_id % 4 != 0], df[df.session_id % 4 == 0]
        grouped.append(_drift_mrr(train, test, seed))
        # The same sessions under other ids, rows sorted by the new ids.
        perm = np.random.default_rng(100 + seed).permutation(int(df.session_id.max()) + 1)
        renamed = train.assign(session_id=perm[train.session_id]).sort_values(
            ["session_id", "timestamp"], kind="stable"
        )
        shuffled.append(_drift_mrr(renamed, test, seed))
    assert abs(np.mean(grouped) - np.mean(shuffled)) < 0.03
    assert min(grouped + shuffled) > _ID_ORDER_MRR + 0.07
    # Control: timestamps that put the sessions in id order reproduce the drift.
    df = _drift_sessions(0)
    train, test = df[df.session_id % 4 != 0], df[df.session_id % 4 == 0]
    id_times = train.assign(timestamp=train.session_id * 100 + train.timestamp)
    assert _drift_mrr(id_times, test, 0) < _ID_ORDER_MRR + 0.03


def _top20(est: GRU4RecNegSampling, events: pd.DataFrame) -> tuple[list, list]:
    sessions = [g.item_id.tolist() for _, g in events.groupby("session_id", sort=True)]
    items, scores = est.recommend(sessions, k=20)
    return items.tolist(), np.round(scores, 5).tolist()


@pytest.fixture(scope="module")
def distinct_times():
    df = make_synthetic_sessions(n_sessions=300, n_items=60, seed=3)
    return df, df[df.session_id < 40]


_SMALL = dict(hidden_size=16, batch_size=16, num_negatives=8, max_epochs=2, device="cpu", seed=5)


def _renamed(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The sessions under other ids (a random bijection), rows sorted by the new ids."""
    perm = np.random.default_rng(seed).permutation(int(df.session_id.max()) + 1) + 10_000
    return df.assign(session_id=perm[df.session_id]).sort_values(
        ["session_id", "timestamp"], kind="stable"
    )


def _fit_pair(df: pd.DataFrame) -> tuple[GRU4RecNegSampling, GRU4RecNegSampling]:
    # The items keep their numbering, so only the sessions' ids and rows differ.
    X = InteractionMatrix.from_events(df)
    Y = InteractionMatrix.from_events(_renamed(df, 0), item_vocabulary=X.item_vocabulary)
    assert not np.array_equal(X.session_arrays().items, Y.session_arrays().items)
    return GRU4RecNegSampling(**_SMALL).fit(X), GRU4RecNegSampling(**_SMALL).fit(Y)


def test_renaming_sessions_changes_nothing_when_start_times_differ(distinct_times):
    df, probe = distinct_times
    a, b = _fit_pair(df)
    assert _top20(a, probe) == _top20(b, probe)


def test_renaming_tied_sessions_changes_only_the_draw(distinct_times):
    df, probe = distinct_times
    tied = df.assign(timestamp=df.groupby("session_id").cumcount())
    a, b = _fit_pair(tied)
    # Same rows, same seed: the same model; the renamed sessions: another tie draw.
    assert _top20(a, probe) == _top20(GRU4RecNegSampling(**_SMALL).fit(tied), probe)
    assert _top20(a, probe) != _top20(b, probe)


def test_session_order_random_differs_from_time_and_is_seeded(distinct_times):
    df, probe = distinct_times
    r1 = GRU4RecNegSampling(**_SMALL, session_order="random").fit(df)
    r2 = GRU4RecNegSampling(**_SMALL, session_order="random").fit(df)
    t = GRU4RecNegSampling(**_SMALL).fit(df)
    assert _top20(r1, probe) == _top20(r2, probe)
    assert _top20(r1, probe) != _top20(t, probe)


# -- data without a time column: a random session order --------------------------------------


def test_time_col_none_uses_row_order_and_a_random_session_order(distinct_times):
    df, probe = distinct_times
    no_time = df.drop(columns="timestamp")
    est = GRU4RecNegSampling(**_SMALL, time_col=None).fit(no_time)
    # The same as row numbers for times with a random session order.
    rows = no_time.assign(timestamp=np.arange(len(no_time)))
    ref = GRU4RecNegSampling(**_SMALL, session_order="random").fit(rows)
    assert _top20(est, probe) == _top20(ref, probe)
