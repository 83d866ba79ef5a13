"""Tests of gru4rec.inputs: frames, matrices and raw-id session lists into what the model reads,
and the estimators' input contract (as recpack's): what fit, predict, score and validation_data
take.

Objects with recpack's public InteractionMatrix surface are accepted (read through that surface
only); inputs without timestamps are a ValueError naming them; scipy matrices and other types are
a TypeError saying what to pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import events, index_matrix, neg

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix, Vocabulary
from gru4rec.datasets import last_item_split, make_synthetic_sessions
from gru4rec.inputs import (
    Columns,
    as_matrix,
    check_items,
    item_ids,
    item_indices,
    model_vocabulary,
    session_lists,
    timed_sessions,
)

COLUMNS = Columns("session_id", "item_id", "timestamp")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.integers(-5, 50), st.text(max_size=3)), min_size=1, unique=True),
    st.data(),
)
def test_item_ids_and_item_indices_are_inverse_and_unknown_ids_map_to_minus_one(ids, data):
    vocab = Vocabulary(pd.Index(ids, dtype=object).to_numpy())
    n = len(ids)
    idx = np.asarray(data.draw(st.lists(st.integers(0, n - 1), max_size=12)), dtype=np.int64)
    raw = item_ids(idx, vocab)
    assert raw.tolist() == [ids[i] for i in idx]
    assert item_indices(list(raw), vocab, n).tolist() == idx.tolist()
    # Any shape: the (sessions, k) arrays of recommend_indices.
    grid = np.arange(n, dtype=np.int64)[::-1].reshape(1, n)
    assert item_ids(grid, vocab).shape == (1, n)
    assert item_indices(list(item_ids(grid, vocab)[0]), vocab, n).tolist() == grid[0].tolist()
    unknown = "not-an-id-" if "not-an-id-" not in ids else "other-"
    assert item_indices([unknown, ids[0]], vocab, n).tolist() == [-1, 0]
    with pytest.raises(ValueError, match="indices must lie in"):
        item_ids(np.array([n]), vocab)


def test_item_ids_of_a_model_fitted_on_indices_are_the_indices():
    idx = np.array([[2, 0], [1, 1]])
    assert item_ids(idx, None).tolist() == idx.tolist()
    assert item_indices([2, 7, -1, 0], None, 3).tolist() == [2, -1, -1, 0]
    assert model_vocabulary(None, 3).ids.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="integer item indices"):
        item_indices(["a"], None, 3)


@pytest.mark.parametrize("fitted_on", ["ids", "indices"])
def test_recommend_indices_is_recommend_before_the_ids(fitted_on):
    model = neg().fit(events() if fitted_on == "ids" else index_matrix())
    sessions = [[11, 12], [], [10]] if fitted_on == "ids" else [[1, 2], [], [0]]
    ids, scores = model.recommend(sessions, k=3, exclude_seen=True)
    flat, offsets, _ = session_lists(sessions, model.item_vocabulary_, model.n_items_)
    idx, idx_scores = model.recommend_indices(flat, offsets, k=3, exclude_seen=True)
    np.testing.assert_array_equal(item_ids(idx, model.item_vocabulary_), ids)
    np.testing.assert_array_equal(idx_scores, scores)
    assert (
        item_indices(list(ids.ravel()), model.item_vocabulary_, 5).tolist() == idx.ravel().tolist()
    )


def test_recommend_indices_names_the_array_that_does_not_fit():
    model = neg().fit(events())
    items, offsets = np.array([0, 4]), np.array([0, 2])
    for bad, name in [
        (dict(items=np.array([0, 5])), "items must be indices in"),
        (dict(items=np.array([0.0, 1.0])), "items must be a 1-D array"),
        (dict(offsets=np.array([0, 3])), "offsets must be"),
        (dict(offsets=np.array([1, 2])), "offsets must be"),
        (dict(blocked=np.zeros(4, bool)), "blocked must be"),
        (dict(k=0), "k must be"),
    ]:
        call = {"items": items, "offsets": offsets, "k": 2, "blocked": None, **bad}
        with pytest.raises(ValueError, match=name):
            model.recommend_indices(**call)


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


def test_a_matrix_without_timestamps_is_an_error_even_with_time_col_none():
    X = InteractionMatrix.from_events(make_synthetic_sessions(300, 60, seed=3), timestamp=None)
    with pytest.raises(ValueError, match="timestamps"):
        small(time_col=None).fit(X)


# -- the estimators' input contract --------------------------------------------------------------


def small(cls=GRU4RecNegSampling, **kw):
    params = dict(hidden_size=8, batch_size=16, max_epochs=2, seed=0, device="cpu")
    if cls is GRU4RecNegSampling:
        params["num_negatives"] = 8
    return cls(**{**params, **kw})


class PublicOnly:
    """recpack's public InteractionMatrix members of a wrapped matrix, and nothing else."""

    def __init__(self, matrix: InteractionMatrix):
        object.__setattr__(self, "wrapped", matrix)

    def __getattr__(self, name):
        raise AttributeError(f"PublicOnly has no {name}")

    shape = property(lambda self: self.wrapped.shape)
    values = property(lambda self: self.wrapped.values)
    has_timestamps = property(lambda self: self.wrapped.has_timestamps)
    timestamps = property(lambda self: self.wrapped.timestamps)
    num_interactions = property(lambda self: self.wrapped.num_interactions)
    sorted_item_history = property(lambda self: self.wrapped.sorted_item_history)

    def users_in(self, U, inplace=False):
        return PublicOnly(self.wrapped.users_in(U))


@pytest.fixture(scope="module")
def data(split):
    _, _, X, X_test = split
    val_in, val_out = last_item_split(X_test)
    return X, X_test, val_in, val_out


@pytest.mark.parametrize("cls", [GRU4RecNegSampling, GRU4RecCrossEntropy])
def test_look_alike_objects_work_everywhere(data, cls):
    X, X_test, val_in, val_out = data
    ref = small(cls).fit(X, validation_data=(val_in, val_out))
    est = small(cls).fit(PublicOnly(X), validation_data=(PublicOnly(val_in), PublicOnly(val_out)))
    assert [r["recall"] for r in est.history_] == [r["recall"] for r in ref.history_]
    expect = ref.predict(X_test).toarray()
    np.testing.assert_allclose(est.predict(PublicOnly(X_test)).toarray(), expect, rtol=1e-6)
    np.testing.assert_allclose(ref.predict(PublicOnly(X_test)).toarray(), expect, rtol=1e-6)
    assert est.score(PublicOnly(X_test)) == pytest.approx(ref.score(X_test))


def test_no_timestamps_is_a_value_error_naming_the_input(data):
    X, X_test, val_in, val_out = data
    no_ts = X.eliminate_timestamps()
    from_counts = InteractionMatrix.from_csr_matrix(X.values)
    assert not from_counts.has_timestamps
    for cls in (GRU4RecNegSampling, GRU4RecCrossEntropy):
        for matrix in (no_ts, PublicOnly(no_ts), from_counts):
            with pytest.raises(ValueError, match="X has no timestamps"):
                small(cls).fit(matrix)
    with pytest.raises(ValueError, match="validation_in has no timestamps"):
        small().fit(X, validation_data=(val_in.eliminate_timestamps(), val_out))
    with pytest.raises(ValueError, match="validation_out has no timestamps"):
        small().fit(X, validation_data=(val_in, val_out.eliminate_timestamps()))
    fitted = small(max_epochs=1).fit(X)
    for matrix in (X_test.eliminate_timestamps(), InteractionMatrix.from_csr_matrix(X_test.values)):
        with pytest.raises(ValueError, match="X has no timestamps"):
            fitted.predict(matrix)


def test_scipy_matrices_and_other_types_are_type_errors(data):
    X, X_test, val_in, val_out = data
    say_what_to_pass = "X is a scipy sparse matrix.*pass an InteractionMatrix with timestamps"
    with pytest.raises(TypeError, match=say_what_to_pass):
        small().fit(X.values)
    with pytest.raises(TypeError, match=say_what_to_pass):
        small().fit(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(TypeError, match="validation_out is a scipy sparse matrix"):
        small().fit(X, validation_data=(val_in, val_out.values))
    fitted = small(max_epochs=1).fit(X)
    with pytest.raises(TypeError, match="X is a scipy sparse matrix"):
        fitted.predict(X_test.values)
    with pytest.raises(TypeError, match="X must be an InteractionMatrix"):
        fitted.score(X_test.values.toarray())


def test_validation_data_with_other_item_numbering_is_an_error(split, data):
    _, test, X, _ = split
    _, _, val_in, val_out = data
    reversed_items = Vocabulary(X.item_ids[::-1])
    renumbered = InteractionMatrix.from_events(test, item_vocabulary=reversed_items)
    assert renumbered.shape[1] == X.shape[1]  # the column count alone cannot tell
    for pair, name in (((renumbered, val_out), "validation_in"), ((val_in, renumbered), "")):
        with pytest.raises(ValueError, match=f"{name}.*numbers its items differently"):
            small().fit(X, validation_data=pair)
