"""Tests of gru4rec.holdout: validation data converted once, the same sessions every epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec import GRU4RecNegSampling, InteractionMatrix
from gru4rec.datasets import last_item_split, make_synthetic_sessions
from gru4rec.holdout import Validation, _rows_only, _sessions_of


@pytest.fixture(scope="module")
def pair():
    df = make_synthetic_sessions(60, 20, seed=4)
    # Tied times inside sessions: the order of a session's events must still be kept.
    df["timestamp"] = df["timestamp"] // 60
    X = InteractionMatrix.from_events(df)
    val_in, val_out = last_item_split(X)
    return X, val_in, val_out


def _whole_by_frames(val_in, val_out, users):
    """The reference: each session's history then its held-out events, through frames."""
    a, b = val_in.users_in(users).to_dataframe(), val_out.users_in(users).to_dataframe()
    df = pd.concat([a, b], ignore_index=True)
    cols = InteractionMatrix
    m = InteractionMatrix(
        df, cols.ITEM_IX, cols.USER_IX, timestamp_ix=cols.TIMESTAMP_IX, shape=val_in.shape
    )
    s = m.session_arrays()
    return s.items, s.offsets


def test_whole_sessions_equal_the_frame_concatenation(pair):
    X, val_in, val_out = pair
    v = Validation(val_in, val_out, None)
    rng = np.random.default_rng(0)
    for users in (v.users, np.sort(rng.choice(v.users, 17, replace=False))):
        items, offsets, _ = _sessions_of(v._whole_sessions(), users)
        ref_items, ref_offsets = _whole_by_frames(val_in, val_out, users)
        np.testing.assert_array_equal(items, ref_items)
        np.testing.assert_array_equal(offsets, ref_offsets)


def test_history_subsets_and_truth_rows_equal_the_matrix_filters(pair):
    X, val_in, val_out = pair
    v = Validation(val_in, val_out, None)
    users = v.users[::3]
    items, offsets, rows = _sessions_of(v._history, users)
    ref = val_in.users_in(users).session_arrays()
    np.testing.assert_array_equal(items, ref.items)
    np.testing.assert_array_equal(offsets, ref.offsets)
    np.testing.assert_array_equal(rows, ref.users)
    got, want = _rows_only(val_out.values, users), val_out.users_in(users).values
    assert (got != want).nnz == 0 and got.shape == want.shape


def test_nothing_to_evaluate_raises(pair):
    X, val_in, val_out = pair
    with pytest.raises(ValueError, match="no session has events in both"):
        Validation(val_in.users_in([0, 1]), val_out.users_in([2, 3]), None)
    with pytest.raises(ValueError, match="validation_out holds no events"):
        Validation(val_in, val_out.users_in([]), None)
    with pytest.raises(ValueError, match="rows"):
        Validation(val_in, InteractionMatrix.from_events(make_synthetic_sessions(5, 20)), None)


def test_validation_frames_without_a_time_column():
    no_time = make_synthetic_sessions(n_sessions=300, n_items=60, seed=3).drop(columns="timestamp")
    head = no_time.groupby("session_id").head(2)
    tail = no_time.drop(head.index)
    est = GRU4RecNegSampling(
        hidden_size=16,
        batch_size=16,
        num_negatives=8,
        max_epochs=2,
        device="cpu",
        seed=5,
        time_col=None,
        stopping_criterion="next_item_recall",
        keep_last=True,
    )
    est.fit(no_time, validation_data=(head, tail))
    assert len(est.history_) == 2
    assert all(0.0 <= h["next_item_recall"] <= 1.0 for h in est.history_)
