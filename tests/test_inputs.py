"""Tests of gru4rec.inputs: frames, matrices and raw-id session lists into what the model reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec import InteractionMatrix, Vocabulary
from gru4rec.inputs import Columns, as_matrix, check_items, session_lists, timed_sessions

COLUMNS = Columns("session_id", "item_id", "timestamp")


def test_session_lists_one_session_or_a_batch_with_unknown_items_skipped():
    vocab = Vocabulary(np.array(["a", "b", "c"]))
    items, offsets, single = session_lists(["c", "a"], vocab, 3)
    assert single and items.tolist() == [2, 0] and offsets.tolist() == [0, 2]
    with pytest.warns(UserWarning, match="skipped 2 of 4 items"):
        items, offsets, single = session_lists([["b", "x"], [], ["y", "a"]], vocab, 3)
    assert not single
    assert items.tolist() == [1, 0] and offsets.tolist() == [0, 1, 1, 2]
    # A pandas Series is one session even though its labels are not 0..n-1.
    _, _, single = session_lists(pd.Series(["a", "b"], index=[5, 7]), vocab, 3)
    assert single
    with pytest.raises(ValueError, match="sessions must be"):
        session_lists("abc", vocab, 3)


def test_session_lists_of_a_model_fitted_on_indices_take_integer_indices():
    with pytest.warns(UserWarning, match="skipped 2 of 4"):
        items, offsets, _ = session_lists([[0, 7], [-1, 2]], None, 5)
    assert items.tolist() == [0, 2] and offsets.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="integer item indices"):
        session_lists([["a"]], None, 5)


def test_as_matrix_without_time_column_times_events_by_row():
    df = pd.DataFrame({"session_id": [1, 2, 1], "item_id": ["c", "a", "b"]})
    X = as_matrix(df, Columns("session_id", "item_id", None), first_row=10)
    s = X.session_arrays()
    assert list(X.item_vocabulary.ids[s.items]) == ["c", "b", "a"]
    assert s.timestamps.tolist() == [10, 12, 11]


def test_check_items_and_timed_sessions_name_the_problem():
    df = pd.DataFrame({"session_id": [0, 0], "item_id": [1, 2], "timestamp": [1, 2]})
    X = as_matrix(df, COLUMNS)
    assert check_items(X, 2, X.item_vocabulary) is X
    with pytest.raises(ValueError, match="fitted on 3"):
        check_items(X, 3, X.item_vocabulary)
    with pytest.raises(ValueError, match="validation_out has 2 items .* X has 3"):
        check_items(X, 3, None, "validation_out", fitted=False)
    other = InteractionMatrix.from_events(df.assign(item_id=[5, 6]))
    with pytest.raises(ValueError, match="another item vocabulary"):
        check_items(other, 2, X.item_vocabulary)
    with pytest.raises(ValueError, match="holds no events"):
        timed_sessions(X.users_in([]), training=True)
    no_ts = InteractionMatrix.from_csr_matrix(X.values)
    with pytest.raises(ValueError, match="validation_in has no timestamps"):
        timed_sessions(no_ts, "validation_in")
