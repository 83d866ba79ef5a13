"""Tests of gru4rec.inference: recommend(sessions, k) (top-k next items in raw ids, for one
session or a batch), and scoring in bounded blocks (batch x chunk, never users x items)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from tiny import (
    dense,
    many_sessions,
    neg,
)

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec import estimator as est_module
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.model import GRU4RecNet

N_ITEMS = 40
SMALL = dict(hidden_size=16, batch_size=32, max_epochs=2, device="cpu", seed=0)


@pytest.fixture(scope="module")
def raw_events() -> pd.DataFrame:
    """Synthetic sessions with string session and item ids."""
    df = make_synthetic_sessions(250, N_ITEMS, seed=11)
    return pd.DataFrame(
        {
            "session_id": "s" + df["session_id"].astype(str),
            "item_id": "item-" + df["item_id"].astype(str),
            "timestamp": df["timestamp"],
        }
    )


@pytest.fixture(scope="module")
def model(raw_events) -> GRU4RecNegSampling:
    return GRU4RecNegSampling(num_negatives=16, **SMALL).fit(raw_events)


@pytest.fixture(scope="module")
def index_model():
    """A model fitted on an index-built InteractionMatrix (no vocabulary)."""
    df = make_synthetic_sessions(200, N_ITEMS, seed=12)
    X = InteractionMatrix(
        df.rename(columns={"session_id": "u", "item_id": "i", "timestamp": "t"}),
        item_ix="i",
        user_ix="u",
        timestamp_ix="t",
    )
    assert X.item_vocabulary is None
    return GRU4RecCrossEntropy(**SMALL).fit(X), X


@pytest.fixture(scope="module")
def int_model() -> GRU4RecNegSampling:
    """A model of number ids 0 .. 29."""
    events = make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=0, device="cpu")
    return GRU4RecNegSampling(num_negatives=8, **small).fit(events)


def _known(model) -> list:
    return list(model.item_vocabulary_.ids)


def _session_frame(items: list, session: str = "q") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session_id": [session] * len(items),
            "item_id": items,
            "timestamp": np.arange(len(items), dtype=np.int64) * 10 + 1_700_000_000,
        }
    )


def _top_k_of_predict(model, items: list, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of predict() for the session built as a matrix, in raw ids."""
    X = InteractionMatrix.from_events(_session_frame(items), item_vocabulary=model.item_vocabulary_)
    row = model.predict(X).toarray()[0]
    order = np.argsort(-row, kind="stable")[:k]
    return model.item_vocabulary_.to_raw(order), row[order]


# -- one session ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 5, 20])
def test_single_session_matches_top_k_of_predict(model, k):
    known = _known(model)
    session = [known[3], known[7], known[1], known[7]]
    ids, scores = model.recommend(session, k=k)
    assert ids.shape == (k,) and scores.shape == (k,)
    assert all(isinstance(i, str) for i in ids)
    assert set(ids) <= set(known) and len(set(ids)) == k
    assert np.all(np.diff(scores) <= 0)  # best first
    exp_ids, exp_scores = _top_k_of_predict(model, session, k)
    np.testing.assert_allclose(scores, exp_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ids, exp_ids)


def test_default_k_is_20(model):
    ids, scores = model.recommend([_known(model)[0]])
    assert ids.shape == (20,) and scores.shape == (20,)


def test_session_may_be_a_tuple_or_an_array(model):
    known = _known(model)
    session = [known[2], known[5]]
    ref_ids, ref_scores = model.recommend(session, k=6)
    for variant in (tuple(session), np.array(session), np.array(session, dtype=object)):
        ids, scores = model.recommend(variant, k=6)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(scores, ref_scores)


def test_order_of_the_session_matters(model):
    known = _known(model)
    a = model.recommend([known[1], known[2], known[3]], k=10)[1]
    b = model.recommend([known[3], known[2], known[1]], k=10)[1]
    assert not np.allclose(a, b)  # a GRU, not a bag of items


# -- batches -------------------------------------------------------------------------------------


def test_batch_rows_equal_single_session_calls(model):
    known = _known(model)
    batch = [
        [known[0]],
        [known[4], known[9], known[4], known[12], known[30]],
        [known[17], known[2]],
    ]
    ids, scores = model.recommend(batch, k=7)
    assert ids.shape == (3, 7) and scores.shape == (3, 7)
    assert np.all(np.diff(scores, axis=1) <= 0)
    for row, session in enumerate(batch):
        one_ids, one_scores = model.recommend(session, k=7)
        np.testing.assert_array_equal(ids[row], one_ids)
        np.testing.assert_allclose(scores[row], one_scores, rtol=1e-5, atol=1e-6)
    # Different sessions get different recommendations (rows are not mixed up or broadcast).
    assert not np.allclose(scores[0], scores[1])


def test_batch_as_a_series_of_lists(model, raw_events):
    sessions = raw_events.groupby("session_id", sort=True)["item_id"].apply(list).iloc[5:8]
    assert 0 not in sessions.index
    ids, scores = model.recommend(sessions, k=4)
    ref_ids, ref_scores = model.recommend(list(sessions), k=4)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)


def test_batch_of_one_session_is_2d(model):
    ids, scores = model.recommend([[_known(model)[0], _known(model)[1]]], k=4)
    assert ids.shape == (1, 4) and scores.shape == (1, 4)


# -- unknown items and empty sessions ------------------------------------------------------------


def test_unknown_items_are_skipped_with_a_warning(model):
    known = _known(model)
    clean = [known[5], known[6], known[8]]
    noisy = ["never-seen", known[5], "nope", known[6], known[8], "zzz"]
    ref_ids, ref_scores = model.recommend(clean, k=8)
    with pytest.warns(UserWarning, match="unknown"):
        ids, scores = model.recommend(noisy, k=8)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-7)


def test_unknown_items_in_a_batch_affect_only_their_session(model):
    known = _known(model)
    batch = [[known[1], known[2]], ["x-unknown", known[3], known[4]], [known[9]]]
    with pytest.warns(UserWarning, match="skipped 1 of 6 items"):
        ids, scores = model.recommend(batch, k=5)
    clean = [[known[1], known[2]], [known[3], known[4]], [known[9]]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning without unknown items
        ref_ids, ref_scores = model.recommend(clean, k=5)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-7)


def test_an_id_of_the_other_type_is_unknown_not_an_error(model, int_model):
    # A number among string ids, a string among number ids: skipped like any unknown id.
    known = _known(model)
    with pytest.warns(UserWarning, match="skipped 1 of 2 items"):
        ids, scores = model.recommend([known[0], 3], k=5)
    ref_ids, ref_scores = model.recommend([known[0]], k=5)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-7)
    with pytest.warns(UserWarning, match="skipped 1 of 3 items"):
        ids, _ = int_model.recommend([[10, 11], ["x"]], k=3)
    expected, _ = int_model.recommend([[10, 11], []], k=3)
    np.testing.assert_array_equal(ids, expected)


def _warning_text(fn) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return " ".join(str(w.message) for w in caught)


def test_unknown_items_all_of_the_other_id_type_say_so(model, int_model):
    text = _warning_text(lambda: int_model.recommend(["3", "17"]))
    assert "skipped 2 of 2" in text and "strings" in text and "numbers" in text
    text = _warning_text(lambda: model.recommend([3, 17]))
    assert "numbers" in text and "strings" in text and "'item-" in text
    # Same id type, or some items known: no hint, just the count.
    assert "convert" not in _warning_text(lambda: int_model.recommend([999, 998]))
    assert "convert" not in _warning_text(lambda: int_model.recommend([3, "x"]))


def test_only_unknown_items_and_empty_session_do_not_raise(model):
    with pytest.warns(UserWarning, match="unknown"):
        ids_u, scores_u = model.recommend(["a", "b", "c"], k=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids_e, scores_e = model.recommend([], k=5)
    for ids, scores in ((ids_u, scores_u), (ids_e, scores_e)):
        assert ids.shape == (5,) and scores.shape == (5,)
        assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0)
        assert set(ids) <= set(_known(model))
    # Both are scored from the empty (zero) state.
    np.testing.assert_array_equal(ids_u, ids_e)
    np.testing.assert_allclose(scores_u, scores_e)


def test_empty_and_unknown_sessions_inside_a_batch(model):
    known = _known(model)
    batch = [[], [known[3], known[8]], ["unknown"], [known[3], known[8]]]
    with pytest.warns(UserWarning, match="unknown"):
        ids, scores = model.recommend(batch, k=6)
    assert ids.shape == (4, 6)
    empty_ids, empty_scores = model.recommend([], k=6)
    for row in (0, 2):
        np.testing.assert_array_equal(ids[row], empty_ids)
        np.testing.assert_allclose(scores[row], empty_scores, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ids[1], ids[3])
    one_ids, one_scores = model.recommend([known[3], known[8]], k=6)
    np.testing.assert_array_equal(ids[1], one_ids)
    np.testing.assert_allclose(scores[1], one_scores, rtol=1e-5, atol=1e-6)
    assert not np.allclose(scores[1], scores[0])


def test_batch_of_only_empty_sessions(model):
    ids, scores = model.recommend([[], []], k=3)
    assert ids.shape == (2, 3) and scores.shape == (2, 3)
    np.testing.assert_array_equal(ids[0], ids[1])


# -- index-built models --------------------------------------------------------------------------


def test_index_model_returns_integer_indices(index_model):
    est, X = index_model
    assert est.item_vocabulary_ is None
    session = [3, 17, 5]
    ids, scores = est.recommend(session, k=6)
    assert ids.shape == (6,) and np.issubdtype(ids.dtype, np.integer)
    assert ids.min() >= 0 and ids.max() < X.shape[1] and len(set(ids.tolist())) == 6
    assert np.all(np.diff(scores) <= 0)
    # Equal to the top-k of predict() for the session built as an index matrix.
    m = InteractionMatrix(
        pd.DataFrame({"u": 0, "i": session, "t": [10, 20, 30]}),
        item_ix="i",
        user_ix="u",
        timestamp_ix="t",
        shape=(1, X.shape[1]),
    )
    row = est.predict(m).toarray()[0]
    order = np.argsort(-row, kind="stable")[:6]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, row[order], rtol=1e-5, atol=1e-6)
    # numpy integers are accepted, and a batch gives (n, k) integer indices.
    ids2, _ = est.recommend(np.array(session, dtype=np.int32), k=6)
    np.testing.assert_array_equal(ids2, ids)
    bids, _ = est.recommend([session, [1]], k=6)
    assert bids.shape == (2, 6) and np.issubdtype(bids.dtype, np.integer)
    np.testing.assert_array_equal(bids[0], ids)


def test_index_model_out_of_range_indices_are_unknown(index_model):
    est, X = index_model
    ref_ids, ref_scores = est.recommend([3, 5], k=4)
    with pytest.warns(UserWarning, match="unknown"):
        ids, scores = est.recommend([3, X.shape[1] + 7, -1, 5], k=4)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-7)


def test_index_model_rejects_string_items(index_model):
    est, _ = index_model
    with pytest.raises(ValueError):
        est.recommend(["a", "b"], k=3)


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, -1, 2.5, "5", None, True])
def test_bad_k_raises_value_error(model, k):
    with pytest.raises(ValueError, match="k must be"):
        model.recommend([_known(model)[0]], k=k)


def test_k_larger_than_the_catalogue(model):
    k = N_ITEMS + 5
    ids, scores = model.recommend([_known(model)[0]], k=k)
    # min(k, n_items) results: every item exactly once, best first.
    assert len(ids) == len(scores) == len(_known(model))
    assert set(ids) == set(_known(model))
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("sessions", ["item-1", 5, None])
def test_sessions_must_be_a_list(model, sessions):
    with pytest.raises(ValueError, match="sessions"):
        model.recommend(sessions, k=3)


@pytest.mark.parametrize(
    ("sessions", "says"),
    [
        ({"visit-1": [1, 2], "visit-2": [3]}, "sessions is a mapping"),
        ({3, 1, 2}, "sessions is a set, which has no order"),
        ([[1, 2], {3, 4}], r"sessions\[1\] is a set"),
        (pd.DataFrame({"session_id": [1], "item_id": [2]}), "sessions is a DataFrame.*predict"),
        (np.array(3), "sessions must be a list"),
    ],
    ids=["dict", "set", "set in a batch", "DataFrame", "0-d array"],
)
def test_containers_that_iterate_as_something_else_are_refused(model, sessions, says):
    """They iterated as a session of their keys or column names, or in no order."""
    with pytest.raises(ValueError, match=says):
        model.recommend(sessions, k=3)


def test_recommend_after_pickle(model):
    known = _known(model)
    batch = [[known[0], known[1]], [known[2]]]
    loaded = pickle.loads(pickle.dumps(model))
    a_ids, a_scores = model.recommend(batch, k=5)
    b_ids, b_scores = loaded.recommend(batch, k=5)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_array_equal(a_scores, b_scores)


# -- exclude_seen --------------------------------------------------------------------------------


def test_exclude_seen_drops_the_sessions_items_and_keeps_the_order(int_model):
    sessions = [[1, 2, 3, 2], [4], [5, 6]]
    ids, scores = int_model.recommend(sessions, k=6)
    kept, kept_scores = int_model.recommend(sessions, k=6, exclude_seen=True)
    assert kept.shape == (3, 6)
    full, full_scores = int_model.recommend(sessions, k=30)
    for row, session in enumerate(sessions):
        assert not set(kept[row]) & set(session)
        unseen = [i for i in full[row] if i not in session][:6]
        assert list(kept[row]) == unseen
        np.testing.assert_array_equal(kept_scores[row], np.sort(kept_scores[row])[::-1])
    # Default: today's behaviour, seen items stay.
    np.testing.assert_array_equal(ids, full[:, :6])


def test_exclude_seen_with_too_few_unseen_items_pads_with_minus_inf(int_model):
    session = list(range(28))
    ids, scores = int_model.recommend(session, k=5, exclude_seen=True)
    assert set(ids[:2]) == {28, 29}
    assert np.isfinite(scores[:2]).all() and np.isneginf(scores[2:]).all()


def test_exclude_seen_rows_do_not_depend_on_a_long_session_in_the_batch(int_model):
    short = [[1, 2], [3]]
    long = list(range(25)) * 40  # 1000 events over 25 items
    alone, alone_scores = int_model.recommend(short, k=4, exclude_seen=True)
    both, both_scores = int_model.recommend([*short, long], k=4, exclude_seen=True)
    np.testing.assert_array_equal(both[:2], alone)
    np.testing.assert_allclose(both_scores[:2], alone_scores, rtol=1e-6)
    unseen = set(range(int_model.n_items_)) - set(long)
    n_unseen = min(len(unseen), 4)
    assert set(both[2][:n_unseen]) <= unseen
    assert np.isneginf(both_scores[2][n_unseen:]).all()


def test_exclude_seen_in_small_score_chunks_equals_one_chunk(int_model, monkeypatch):
    sessions = [[1, 2, 3, 2], [4], [5, 6], list(range(20))]
    expected = int_model.recommend(sessions, k=7, exclude_seen=True)
    from gru4rec import estimator

    monkeypatch.setattr(estimator, "_SCORE_CHUNK", 7)
    monkeypatch.setattr(estimator, "_EVAL_SLOTS", 2)
    got = int_model.recommend(sessions, k=7, exclude_seen=True)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


def test_exclude_seen_single_session_and_bad_value(int_model):
    ids, _ = int_model.recommend([7, 8], k=3, exclude_seen=True)
    assert ids.shape == (3,) and not {7, 8} & set(ids)
    with pytest.raises(ValueError, match="exclude_seen"):
        int_model.recommend([7], exclude_seen="yes")


# -- scoring in bounded blocks -------------------------------------------------------------------


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
    from gru4rec import kernels

    df = many_sessions()
    shapes = _record_scoring(monkeypatch)
    real_forward = kernels.step_forward

    def recording_forward(*args):  # the compiled step scores inside its own call
        result = real_forward(*args)
        columns, rows = result[-1].shape  # the scores, transposed
        shapes.append(("step_forward", rows, columns))
        return result

    monkeypatch.setattr(kernels, "step_forward", recording_forward)
    neg(loss_fn=loss_fn, batch_size=4, num_negatives=3, max_epochs=1).fit(df)
    n_steps = (len(df) - df["session_id"].nunique()) // 4  # at least, with 4 slots
    assert len(shapes) >= n_steps  # every training step was seen, whichever path ran
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


@pytest.mark.parametrize(
    "batch, where",
    [
        ([["3"], "12"], r"sessions\[1\] is a str \('12'\) \(a session of one item is \['12'\]\)"),
        ([[1, 2], 3], r"sessions\[1\] is an int \(3\)"),
        ([3, [1, 2]], r"sessions\[0\] is an item id but sessions\[1\] is a list"),
        ([3, np.array([1, 2])], r"sessions\[1\] is an? ndarray"),
    ],
)
def test_a_batch_mixing_sessions_and_ids_is_an_error_naming_the_element(model, batch, where):
    with pytest.raises(ValueError, match=where):
        model.recommend(batch, k=2)


def test_full_predict_fills_each_sessions_row_and_warns_when_huge(int_model, monkeypatch):
    from gru4rec import inference

    df = pd.DataFrame(
        {"session_id": [5, 5, 2, 9, 9], "item_id": [1, 2, 3, 4, 5], "timestamp": range(5)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = int_model.predict(df)
    dense = pred.toarray()
    assert pred.has_canonical_format and pred.nnz == 3 * int_model.n_items_
    for row, session in enumerate([[1, 2], [3], [4, 5]]):
        ids, scores = int_model.recommend(session, k=int_model.n_items_)
        columns = int_model.item_vocabulary_.index_of(np.asarray(ids, dtype=object))
        np.testing.assert_allclose(dense[row, columns], scores, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(inference, "_LARGE_OUTPUT", 2 * int_model.n_items_)
    with pytest.warns(UserWarning, match=r"3 sessions x \d+ items .* set predict_topK"):
        again = int_model.predict(df)
    assert (again != pred).nnz == 0
