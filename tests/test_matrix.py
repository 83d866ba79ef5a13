"""Tests of InteractionMatrix, SessionArrays and Vocabulary."""

from __future__ import annotations

import inspect
import pickle
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold
from tiny import (
    assert_same_weights,
    dense,
    events,
    index_matrix,
    neg,
    weights,
)

from gru4rec.datasets import make_synthetic_sessions
from gru4rec.matrix import (
    InteractionMatrix,
    SessionArrays,
    UnsupportedTypeError,
    Vocabulary,
    _stable_order,
    as_interaction_matrix,
    is_interaction_matrix_like,
    to_binary,
    to_csr_matrix,
)

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def event_frames(draw, min_size=1, max_size=40, timestamps=True):
    """Indexed events with few distinct timestamps, so that ties are common."""
    n = draw(st.integers(min_size, max_size))
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 8))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, n_items - 1), min_size=n, max_size=n))
    cols = {"user": users, "item": items}
    if timestamps:
        # small ints (many ties), floats, and ints too far apart to pack into a sort key
        values = draw(
            st.sampled_from(
                [
                    st.integers(0, 4),
                    st.sampled_from([-1.5, 0.0, 0.25, 2.0, 1e9]),
                    st.sampled_from([-(3 * 2**61), 0, 1, 3 * 2**61]),
                ]
            )
        )
        cols["ts"] = draw(st.lists(values, min_size=n, max_size=n))
    return pd.DataFrame(cols)


def make(df: pd.DataFrame, **kw) -> InteractionMatrix:
    return InteractionMatrix(df, "item", "user", "ts" if "ts" in df.columns else None, **kw)


def reference_history(df: pd.DataFrame) -> dict[int, list[int]]:
    """Row positions per user, by timestamp, ties in row order (Python's sort is stable)."""
    out: dict[int, list[int]] = {}
    for pos, u in enumerate(df["user"]):
        out.setdefault(int(u), []).append(pos)
    if "ts" in df.columns:
        ts = df["ts"].tolist()
        for u in out:
            out[u] = sorted(out[u], key=lambda p: ts[p])
    return dict(sorted(out.items()))


# --- history order ---------------------------------------------------------------------------


@SETTINGS
@given(event_frames())
def test_sorted_histories_are_time_ordered_and_stable(df):
    X = make(df)
    ref = reference_history(df)
    items = df["item"].to_numpy()
    got_items = [(u, list(h)) for u, h in X.sorted_item_history]
    got_ids = [(u, list(h)) for u, h in X.sorted_interaction_history]
    assert got_ids == [(u, rows) for u, rows in ref.items()]
    assert got_items == [(u, [int(items[p]) for p in rows]) for u, rows in ref.items()]


@SETTINGS
@given(event_frames(timestamps=False))
def test_history_without_timestamps_keeps_row_order(df):
    X = make(df)
    assert not X.has_timestamps
    assert [(u, list(h)) for u, h in X.interaction_history] == list(reference_history(df).items())
    # the sorted histories need timestamps (AttributeError, as in recpack)
    for name in ("sorted_item_history", "sorted_interaction_history"):
        with pytest.raises(AttributeError, match="timestamps"):
            getattr(X, name)


def test_equal_timestamps_keep_input_order_explicit():
    df = pd.DataFrame({"user": [0, 0, 0, 0], "item": [3, 1, 2, 0], "ts": [5, 5, 1, 5]})
    X = make(df)
    assert [list(h) for _, h in X.sorted_item_history] == [[2, 3, 1, 0]]


# --- counts -------------------------------------------------------------------------------------


@SETTINGS
@given(event_frames())
def test_values_count_events(df):
    X = make(df)
    counts = Counter(zip(df["user"], df["item"], strict=True))
    V = X.values
    assert sp.issparse(V) and V.shape == X.shape
    assert V.nnz == len(counts)
    assert {(int(u), int(i)): V[u, i] for u, i in zip(*V.nonzero(), strict=True)} == counts
    assert X.num_interactions == len(df) == V.sum()
    B = X.binary_values
    assert B.nnz == len(counts) and set(B.data) == {1.0}
    assert X.active_users == set(df["user"]) and X.num_active_users == df["user"].nunique()
    assert X.active_items == set(df["item"]) and X.num_active_items == df["item"].nunique()
    assert X.shape == (df["user"].max() + 1, df["item"].max() + 1)
    assert set(zip(*X.nonzero(), strict=True)) == set(counts)
    assert set(zip(*X.indices, strict=True)) == set(counts)
    # values is a copy: mutating it leaves the matrix alone
    V.data[:] = 7
    assert X.values.sum() == len(df)


# --- session arrays -------------------------------------------------------------------------


@SETTINGS
@given(event_frames())
def test_session_arrays_match_history(df):
    X = make(df)
    s = X.session_arrays()
    assert isinstance(s, SessionArrays)
    hist = list(X.sorted_item_history)
    assert s.users.tolist() == [u for u, _ in hist]
    assert np.all(np.diff(s.users) > 0)
    assert s.offsets[0] == 0 and s.offsets[-1] == len(df) == s.n_events
    assert s.n_sessions == len(hist)
    assert s.lengths.tolist() == [len(h) for _, h in hist]
    for k, (_, h) in enumerate(hist):
        assert s.items[s.offsets[k] : s.offsets[k + 1]].tolist() == list(h)
        seg = s.timestamps[s.offsets[k] : s.offsets[k + 1]]
        assert np.all(seg[1:] >= seg[:-1])
        assert s.start_times[k] == df.loc[df["user"] == s.users[k], "ts"].min()
    for a in (s.items, s.offsets, s.users, s.timestamps, s.start_times):
        assert not a.flags.writeable
    assert s.items.dtype == np.int64 and s.offsets.dtype == np.int64
    assert s.users.dtype == np.int64
    assert X.session_arrays() is s  # cached


@pytest.mark.parametrize(
    ("max_user", "ts_kind"),
    [(50, "int"), (50, "float"), (50, None), (2**40, "wide"), (2**60, "int"), (2**60, None)],
)
def test_stable_order_equals_lexsort(max_user, ts_kind):
    rng = np.random.default_rng(3)
    n = 3000
    uid = rng.integers(0, 20, n) * (max_user // 20)
    ts = {
        "int": rng.integers(0, 5, n),
        "float": rng.integers(0, 5, n) / 4.0,
        "wide": rng.integers(0, 3, n) * 2**61,
        None: None,
    }[ts_kind]
    expect = np.argsort(uid, kind="stable") if ts is None else np.lexsort((ts, uid))
    np.testing.assert_array_equal(_stable_order(uid, ts), expect)


def test_far_apart_int64_timestamps_are_ordered():
    big = 3 * 2**61  # differences of such timestamps overflow int64
    df = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 2], "ts": [big, -big, 0]})
    s = make(df).session_arrays()
    assert s.items.tolist() == [1, 0, 2]
    assert s.timestamps.tolist() == [-big, big, 0]


def test_session_arrays_sorted_input_fast_path_equals_sorted_path():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame(
        {
            "user": rng.integers(0, 50, n),
            "item": rng.integers(0, 30, n),
            "ts": rng.integers(0, 9, n),
        }
    )
    a = make(df).session_arrays()
    sorted_df = df.sort_values(["user", "ts"], kind="stable").reset_index(drop=True)
    b = make(sorted_df).session_arrays()
    for f in ("items", "offsets", "users", "timestamps", "start_times"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_session_arrays_without_timestamps_and_empty():
    df = pd.DataFrame({"user": [2, 0, 2, 0], "item": [1, 2, 3, 4]})
    s = make(df).session_arrays()
    assert s.timestamps is None and s.start_times is None
    assert s.items.tolist() == [2, 4, 1, 3] and s.users.tolist() == [0, 2]
    empty = make(df).users_in([]).session_arrays()
    assert empty.n_events == 0 and empty.n_sessions == 0 and empty.offsets.tolist() == [0]
    assert empty.lengths.tolist() == []


# --- raw ids ----------------------------------------------------------------------------------

raw_ids = st.one_of(
    st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=3), min_size=1, max_size=30),
    st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=30),
)


@SETTINGS
@given(raw_ids, raw_ids, st.data())
def test_raw_ids_round_trip(users, items, data):
    n = max(len(users), len(items))
    u = [users[i % len(users)] for i in range(n)]
    i = [items[k % len(items)] for k in range(n)]
    ts = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    df = pd.DataFrame({"session_id": u, "item_id": i, "timestamp": ts})
    X = InteractionMatrix.from_events(df)
    assert X.shape == (len(set(u)), len(set(i)))
    # first-appearance numbering
    assert list(X.item_ids) == list(dict.fromkeys(i))
    assert list(X.user_ids) == list(dict.fromkeys(u))
    frame = X.to_dataframe(raw_ids=True)
    assert frame["uid"].tolist() == u and frame["iid"].tolist() == i
    voc = X.item_vocabulary
    np.testing.assert_array_equal(voc.index_of(voc.ids), np.arange(len(voc)))
    assert list(voc.to_raw(voc.index_of(i))) == i
    # histories in raw ids equal the events of each session ordered by time (stable)
    for uix, hist in X.sorted_item_history:
        raw_u = X.user_vocabulary.to_raw([uix])[0]
        expect = df[df["session_id"] == raw_u].sort_values("timestamp", kind="stable")
        assert list(voc.to_raw(hist)) == expect["item_id"].tolist()
    Y = pickle.loads(pickle.dumps(X))
    assert list(Y.item_ids) == list(X.item_ids)
    np.testing.assert_array_equal(Y.session_arrays().items, X.session_arrays().items)
    np.testing.assert_array_equal(Y.item_vocabulary.index_of(i), voc.index_of(i))


def test_vocabulary_basics():
    v = Vocabulary(["b", "a", "c"])
    assert len(v) == 3 and v.index_of(["c", "zz", "b"]).tolist() == [2, -1, 0]
    assert v.index_of(pd.Series(["a"])).dtype == np.int64
    assert v.to_raw([0, 2]).tolist() == ["b", "c"]
    w = pickle.loads(pickle.dumps(v))
    assert w.index_of(["a"]).tolist() == [1]
    with pytest.raises(ValueError, match="unique"):
        Vocabulary([1, 2, 1])
    with pytest.raises(ValueError, match="missing"):
        Vocabulary([1.0, np.nan])
    with pytest.raises(ValueError, match="indices"):
        v.to_raw([3])


def test_from_events_with_training_vocabulary_drops_unknown_items():
    train = pd.DataFrame(
        {"session_id": [1, 1, 2], "item_id": ["a", "b", "c"], "timestamp": [0] * 3}
    )
    Xtr = InteractionMatrix.from_events(train)
    test = pd.DataFrame(
        {"session_id": [9, 9, 9, 8], "item_id": ["c", "zz", "a", "qq"], "timestamp": [1, 2, 3, 4]}
    )
    with pytest.warns(UserWarning, match="dropped 2 of 4 events"):
        Xte = InteractionMatrix.from_events(test, item_vocabulary=Xtr.item_vocabulary)
    assert Xte.shape == (2, 3)
    assert Xte.item_vocabulary is Xtr.item_vocabulary
    hist = list(Xte.sorted_item_history)
    assert len(hist) == 1
    assert list(Xte.item_vocabulary.to_raw(hist[0][1])) == ["c", "a"]
    # interaction ids point at the rows of the input frame
    assert list(Xte.interaction_ids) == [0, 2]
    with pytest.raises(ValueError, match="none of the 2 events"):
        InteractionMatrix.from_events(
            pd.DataFrame({"session_id": [1, 1], "item_id": [5, 6], "timestamp": [0, 1]}),
            item_vocabulary=Xtr.item_vocabulary,
        )


def test_from_events_datetimes_and_no_timestamps():
    df = pd.DataFrame(
        {
            "session_id": [1, 1],
            "item_id": [10, 11],
            "timestamp": pd.to_datetime(["1970-01-01 00:01:40", "1970-01-01 00:00:05"]),
        }
    )
    X = InteractionMatrix.from_events(df)
    assert X.session_arrays().timestamps.tolist() == [5, 100]
    assert X.session_arrays().items.tolist() == [1, 0]
    df["timestamp"] = df["timestamp"].dt.tz_localize("Etc/GMT-1")  # UTC+1
    assert InteractionMatrix.from_events(df).session_arrays().timestamps.tolist() == [-3595, -3500]
    Y = InteractionMatrix.from_events(df, timestamp=None)
    assert not Y.has_timestamps and Y.session_arrays().items.tolist() == [0, 1]


# --- filters ----------------------------------------------------------------------------------


@SETTINGS
@given(event_frames(), st.integers(0, 5), st.sets(st.integers(0, 6)), st.sets(st.integers(0, 8)))
def test_filters_partition_events(df, t, users, items):
    X = make(df)
    all_ids = set(X.interaction_ids.tolist())

    def ids(m):
        assert m.shape == X.shape
        return set(m.interaction_ids.tolist())

    lt, gte = ids(X.timestamps_lt(t)), ids(X.timestamps_gte(t))
    assert lt | gte == all_ids and not lt & gte
    lte, gt = ids(X.timestamps_lte(t)), ids(X.timestamps_gt(t))
    assert lte | gt == all_ids and not lte & gt
    assert all(df["ts"][k] < t for k in lt) and all(df["ts"][k] <= t for k in lte)
    other_users = set(range(X.shape[0])) - users
    a, b = X.users_in(users), X.users_in(other_users)
    assert ids(a) | ids(b) == all_ids and not ids(a) & ids(b)
    assert a.active_users <= users
    i_in = X.items_in(items)
    assert i_in.active_items <= items
    assert ids(i_in) == {k for k in all_ids if df["item"][k] in items}
    assert ids(X.copy()) == all_ids


def test_timestamps_series_and_missing_timestamps():
    df = pd.DataFrame({"user": [0, 1], "item": [1, 0], "ts": [10, 20]})
    s = make(df).timestamps
    assert s.index.names == ["uid", "iid"] and s.loc[(1, 0)] == 20
    X = make(df[["user", "item"]])
    # recpack: AttributeError from the timestamp accessors, KeyError from the filters
    for call in (
        lambda: X.timestamps,
        lambda: X.last_timestamps_matrix,
        lambda: X.get_timestamp(0),
    ):
        with pytest.raises(AttributeError, match="timestamps"):
            call()
    for call in (
        lambda: X.timestamps_lt(3),
        lambda: X.timestamps_gte(3),
        lambda: X.timestamps_gt(3),
        lambda: X.timestamps_lte(3),
    ):
        with pytest.raises(KeyError, match="timestamps"):
            call()


def test_derived_matrices_keep_vocabularies():
    df = pd.DataFrame({"session_id": ["s", "t", "s"], "item_id": [7, 8, 9], "timestamp": [1, 2, 3]})
    X = InteractionMatrix.from_events(df)
    for m in (X.users_in([0]), X.items_in([1]), X.timestamps_lt(3), X.copy(), X[[1]], X[:1]):
        assert m.item_vocabulary is X.item_vocabulary and m.user_vocabulary is X.user_vocabulary
        assert m.shape == X.shape
    assert InteractionMatrix(df.assign(u=[0, 1, 0]), "timestamp", "u").item_ids is None


# --- row selection (sklearn) ------------------------------------------------------------------


@SETTINGS
@given(event_frames(), st.data())
def test_getitem_selects_rows(df, data):
    X = make(df)
    n = X.shape[0]
    assert len(X) == n
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    rows = np.flatnonzero(mask)
    expect = set(X.users_in(rows).interaction_ids.tolist())
    for key in (rows, rows.tolist(), mask, (rows, Ellipsis), (mask, Ellipsis)):
        sub = X[key]
        assert sub.shape == X.shape
        assert set(sub.interaction_ids.tolist()) == expect
        assert sub.active_users <= set(rows.tolist())
    assert set(X[1:].interaction_ids.tolist()) == set(np.flatnonzero(df["user"] >= 1).tolist())
    assert set(X[0].interaction_ids.tolist()) == set(np.flatnonzero(df["user"] == 0).tolist())


def test_kfold_splits_sessions_by_row():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {"user": rng.integers(0, 20, 200), "item": rng.integers(0, 10, 200), "ts": np.arange(200)}
    )
    X = make(df)
    seen = []
    for train_rows, test_rows in KFold(4, shuffle=True, random_state=0).split(X):
        tr, te = X[train_rows], X[test_rows]
        assert not tr.active_users & te.active_users
        assert tr.num_interactions + te.num_interactions == len(df)
        seen.extend(te.interaction_ids.tolist())
    assert sorted(seen) == list(range(len(df)))


def test_getitem_rejects_column_selection():
    X = make(pd.DataFrame({"user": [0], "item": [0], "ts": [0]}))
    with pytest.raises(IndexError):
        X[0, 0]


# --- csr ---------------------------------------------------------------------------------------


def test_from_csr_matrix():
    M = sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0], [0, 1, 3]]))
    X = InteractionMatrix.from_csr_matrix(M)
    assert not X.has_timestamps and X.shape == (4, 3)
    assert (X.values != M).nnz == 0 and X.num_interactions == 7
    assert X.item_vocabulary is None
    with pytest.raises(ValueError, match="integer"):
        InteractionMatrix.from_csr_matrix(sp.csr_matrix(np.array([[0.5]])))
    with pytest.raises(ValueError, match="X must be"):
        InteractionMatrix.from_csr_matrix(np.eye(2))


def test_repr_and_pickle():
    X = make(pd.DataFrame({"user": [0, 3], "item": [1, 1], "ts": [0, 1]}))
    assert "shape=(4, 2)" in repr(X)
    X.session_arrays()
    Y = pickle.loads(pickle.dumps(X))
    assert Y.shape == X.shape and Y.session_arrays().items.tolist() == [1, 1]


# --- bad input ---------------------------------------------------------------------------------


GOOD = {"user": [0, 1], "item": [0, 2], "ts": [1, 2]}


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        ({"user": [0], "ts": [0]}, {}, "'item'"),
        ({"item": [0], "ts": [0]}, {}, "'user'"),
        ({"user": [0], "item": [0]}, {"timestamp_ix": "ts"}, "'ts'"),
        ({"user": [0.0, np.nan], "item": [0, 1]}, {}, "'user'.*missing"),
        ({"user": [0, 1], "item": [0, None]}, {}, "'item'.*missing"),
        ({"user": [0, 1], "item": [0, 1], "ts": [1.0, np.nan]}, {"timestamp_ix": "ts"}, "'ts'"),
        ({"user": [0, 1], "item": [0, 1], "ts": [1.0, np.inf]}, {"timestamp_ix": "ts"}, "'ts'"),
        ({"user": [0, -1], "item": [0, 1]}, {}, "'user'.*negative"),
        ({"user": [0, 1], "item": [-3, 1]}, {}, "'item'.*negative"),
        ({"user": [0, 1.5], "item": [0, 1]}, {}, "'user'.*integer"),
        ({"user": ["a", "b"], "item": [0, 1]}, {}, "'user'.*integer"),
        ({"user": [0, 1], "item": [0, 1], "ts": ["x", "y"]}, {"timestamp_ix": "ts"}, "'ts'"),
        ({"user": [0, 1], "item": [0, 5]}, {"shape": (2, 5)}, "shape"),
        ({"user": [0, 3], "item": [0, 1]}, {"shape": (3, 9)}, "shape"),
        ({"user": [0, 1], "item": [0, 1]}, {"shape": (2,)}, "shape"),
        ({"user": [], "item": []}, {}, "empty"),
    ],
)
def test_bad_input_raises_value_error(data, kwargs, match):
    df = pd.DataFrame(data)
    with pytest.raises(ValueError, match=match):
        InteractionMatrix(df, "item", "user", **kwargs)


def test_good_input_passes_the_same_checks():
    X = InteractionMatrix(pd.DataFrame(GOOD), "item", "user", "ts", shape=(2, 3))
    assert X.shape == (2, 3)
    Y = InteractionMatrix(pd.DataFrame({"user": [0.0, 1.0], "item": [2.0, 0.0]}), "item", "user")
    assert Y.shape == (2, 3)


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        ({"session_id": [1], "timestamp": [0]}, {}, "'item_id'"),
        ({"item_id": [1], "timestamp": [0]}, {}, "'session_id'"),
        ({"session_id": [1], "item_id": [1]}, {}, "'timestamp'"),
        ({"s": [1], "item_id": [1]}, {"user": "sess", "timestamp": None}, "'sess'"),
        ({"session_id": [1, None], "item_id": [1, 2], "timestamp": [0, 1]}, {}, "'session_id'"),
        ({"session_id": [1, 2], "item_id": ["a", None], "timestamp": [0, 1]}, {}, "'item_id'"),
        ({"session_id": [1, 2], "item_id": [1, 2], "timestamp": [0, np.nan]}, {}, "'timestamp'"),
        (
            {"session_id": [1, 2], "item_id": [1, 2], "timestamp": pd.to_datetime(["2020", None])},
            {},
            "'timestamp'",
        ),
        ({"session_id": [], "item_id": [], "timestamp": []}, {}, "empty"),
        ({"session_id": [1], "item_id": [1], "timestamp": [0]}, {"item_vocabulary": [1]}, "item_v"),
    ],
)
def test_from_events_bad_input(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        InteractionMatrix.from_events(pd.DataFrame(data), **kwargs)


def test_not_a_dataframe():
    with pytest.raises(ValueError, match="df"):
        InteractionMatrix({"user": [0], "item": [0]}, "item", "user")


# -- ids and timestamps given to fit ---------------------------------------------------------------


def test_ids_outside_shape_raise():
    with pytest.raises(ValueError, match="shape"):
        index_matrix(shape=(4, 3))  # item indices go up to 4
    with pytest.raises(ValueError, match="shape"):
        index_matrix(shape=(2, 5))  # user indices go up to 3
    with pytest.raises(ValueError, match="shape"):
        index_matrix(shape=(4.0, 5.0))
    df = events().assign(item_id=lambda d: d["item_id"] - 11)  # one index is -1
    with pytest.raises(ValueError, match="negative"):
        InteractionMatrix(df, "item_id", "session_id", "timestamp")


def test_shape_too_small_keeps_recpacks_wording():
    """Code written against recpack matches on its phrases; each names the axis that is short."""
    df = pd.DataFrame({"user": [0, 3], "item": [4, 1]})  # needs (4, 5)
    rows_msg = "fewer rows than maximal user identifier"
    cols_msg = "fewer columns than maximal item identifier"
    with pytest.raises(ValueError) as only_rows:
        InteractionMatrix(df, "item", "user", shape=(3, 5))
    assert rows_msg in str(only_rows.value) and cols_msg not in str(only_rows.value)
    assert "(3, 5)" in str(only_rows.value) and "3 < 4" in str(only_rows.value)
    with pytest.raises(ValueError) as only_cols:
        InteractionMatrix(df, "item", "user", shape=(4, 2))
    assert cols_msg in str(only_cols.value) and rows_msg not in str(only_cols.value)
    assert "2 < 5" in str(only_cols.value)
    with pytest.raises(ValueError, match=f"{rows_msg}.*{cols_msg}"):
        InteractionMatrix(df, "item", "user", shape=(1, 1))
    assert InteractionMatrix(df, "item", "user", shape=(4, 5)).shape == (4, 5)


@pytest.mark.parametrize(
    "bad",
    [np.nan, np.inf, -np.inf, None],
    ids=["nan", "inf", "-inf", "none"],
)
def test_non_finite_timestamps_raise(bad):
    df = events().astype({"timestamp": object if bad is None else float})
    df.loc[4, "timestamp"] = bad
    with pytest.raises(ValueError, match="timestamp"):
        neg().fit(df)
    fitted = neg().fit(events())
    with pytest.raises(ValueError, match="timestamp"):
        fitted.predict(df)


def test_missing_datetime_raises():
    df = events()
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="s")
    df.loc[3, "timestamp"] = pd.NaT
    with pytest.raises(ValueError, match="timestamp.*missing"):
        neg().fit(df)


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("iso+x", r"'timestamp'.*ISO-8601"),  # strings that are no times: name the column
        ("object", "timestamp"),
        ("bool", "timestamp"),
    ],
)
def test_non_numeric_timestamps_raise(kind, match):
    df = events()
    df["timestamp"] = {
        "iso+x": _iso(df)["timestamp"] + "x",
        # numbers and other things (an object column of numbers alone is read as numbers)
        "object": pd.Series([1, "a"] * (len(df) // 2) + [1] * (len(df) % 2), dtype=object),
        "bool": df["timestamp"] > 5,
    }[kind]
    with pytest.raises(ValueError, match=match):
        neg().fit(df)


def _iso(df: pd.DataFrame) -> pd.DataFrame:
    times = pd.to_datetime(df["timestamp"], unit="s", utc=True)
    return df.assign(timestamp=times.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_fit_on_iso_strings_equals_fit_on_seconds():
    df = make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)
    a = neg(hidden_size=8, batch_size=16, num_negatives=8).fit(df)
    b = neg(hidden_size=8, batch_size=16, num_negatives=8).fit(_iso(df))
    assert a.history_[0]["train_loss"] == b.history_[0]["train_loss"]
    np.testing.assert_array_equal(a.recommend([1, 2])[0], b.recommend([1, 2])[0])


@pytest.mark.parametrize(
    "call",
    [lambda df: neg().fit(df), lambda df: InteractionMatrix.from_events(df)],
    ids=["fit", "from_events"],
)
def test_a_missing_default_column_names_the_parameter_to_set(call):
    df = events().rename(columns={"session_id": "visit"})
    with pytest.raises(ValueError, match=r"'session_id'.*set session_col="):
        call(df)


def test_duplicate_timestamps_keep_row_order():
    """Ties keep the rows' order within a session: all-equal timestamps give the same sessions
    as increasing ones, and, visited in the same order, the same model."""
    ordered = events()
    tied = ordered.assign(timestamp=0)
    # Interleave the sessions' rows: the order within each session is what counts.
    perm = np.argsort(tied.groupby("session_id").cumcount().to_numpy(), kind="stable")
    assert not np.array_equal(perm, np.arange(len(tied)))
    shuffled = tied.iloc[perm].reset_index(drop=True)
    X_ord = InteractionMatrix.from_events(ordered)
    X_tie = InteractionMatrix.from_events(shuffled, item_vocabulary=X_ord.item_vocabulary)
    s_ord, s_tie = X_ord.session_arrays(), X_tie.session_arrays()
    np.testing.assert_array_equal(s_tie.items, s_ord.items)
    np.testing.assert_array_equal(s_tie.offsets, s_ord.offsets)

    a = neg(max_epochs=2, session_order="random").fit(X_ord)
    b = neg(max_epochs=2, session_order="random").fit(X_tie)
    assert_same_weights(weights(a), weights(b))
    np.testing.assert_array_equal(dense(a.predict(X_ord)), dense(b.predict(X_tie)))
    np.testing.assert_array_equal(a.next_item_ranks(X_ord), b.next_item_ranks(X_tie))


@pytest.mark.parametrize("column", ["item_id", "session_id"])
@pytest.mark.parametrize("values", ["fraction", "string", "bool", "inf"])
def test_non_integer_index_ids_raise(column, values):
    df = events().assign(item_id=lambda d: d["item_id"] - 10)
    df[column] = {
        "fraction": df[column] + 0.5,
        "string": "id" + df[column].astype(str),
        "bool": df[column] > 1,
        "inf": df[column].astype(float).replace(0, np.inf),
    }[values]
    with pytest.raises(ValueError, match=column):
        InteractionMatrix(df, "item_id", "session_id", "timestamp")


@pytest.mark.parametrize("column", ["item_id", "session_id"])
def test_numeric_string_index_ids_raise(column):
    df = events().assign(item_id=lambda d: d["item_id"] - 10)
    df[column] = df[column].astype(str)
    df.loc[0, column] = "0" + df.loc[0, column]  # '0' -> '00': another id, same number
    with pytest.raises(ValueError, match=column):
        InteractionMatrix(df, "item_id", "session_id", "timestamp")


@pytest.mark.parametrize("column", ["item_id", "session_id"])
def test_missing_raw_ids_raise(column):
    df = events().astype({column: object})
    df.loc[2, column] = None
    with pytest.raises(ValueError, match=f"{column}.*missing"):
        neg().fit(df)


def test_mixed_raw_id_types_are_distinct_items():
    df = events().assign(item_id=[1, "1", 2, "b", 3.5, 1, 2, "1", 2, "b", 1, 2])
    est = neg().fit(df)
    assert est.n_items_ == 5  # 1, "1", 2, "b", 3.5
    assert np.isfinite(dense(est.predict(df))).all()


@pytest.mark.parametrize("column", ["item_id", "session_id"])
def test_unhashable_raw_ids_raise_value_error_naming_column(column):
    df = events()
    df[column] = [[v] for v in df[column]]
    with pytest.raises(ValueError, match=column):
        neg().fit(df)


# --- recpack 0.3.6's InteractionMatrix surface ------------------------------------------------
# Written from recpack's documentation and observed behaviour: same names, same kind (property
# or method), same return types and exceptions.

SMALL_EVENTS = {"user": [2, 0, 0, 2, 0, 1], "item": [1, 3, 1, 1, 0, 2], "ts": [5, 3, 3, 1, 9, 4]}

PROPERTIES = [
    "shape",
    "properties",
    "values",
    "binary_values",
    "has_timestamps",
    "timestamps",
    "last_timestamps_matrix",
    "indices",
    "binary_item_history",
    "interaction_history",
    "sorted_interaction_history",
    "sorted_item_history",
    "active_users",
    "num_active_users",
    "active_items",
    "num_active_items",
    "num_interactions",
    "density",
]
METHODS = [
    "copy",
    "union",
    "__add__",
    "save",
    "get_timestamp",
    "eliminate_timestamps",
    "nonzero",
    "timestamps_gt",
    "timestamps_lt",
    "timestamps_gte",
    "timestamps_lte",
    "users_in",
    "items_in",
    "interactions_in",
    "indices_in",
]


def small() -> InteractionMatrix:
    return make(pd.DataFrame(SMALL_EVENTS))


def rows(m: InteractionMatrix) -> list[tuple[int, ...]]:
    """(interaction id, user, item[, ts]) per row, in row order."""
    df = m.to_dataframe()
    cols = ["interactionid", "uid", "iid"] + (["ts"] if m.has_timestamps else [])
    return [tuple(int(v) for v in r) for r in df[cols].to_numpy()]


def test_surface_kinds_and_constants():
    for name in PROPERTIES:
        assert isinstance(inspect.getattr_static(InteractionMatrix, name), property), name
    for name in METHODS:
        assert inspect.isfunction(inspect.getattr_static(InteractionMatrix, name)), name
    assert isinstance(inspect.getattr_static(InteractionMatrix, "load"), classmethod)
    assert isinstance(inspect.getattr_static(InteractionMatrix, "from_csr_matrix"), classmethod)
    assert (InteractionMatrix.USER_IX, InteractionMatrix.ITEM_IX) == ("uid", "iid")
    assert InteractionMatrix.TIMESTAMP_IX == "ts"
    assert InteractionMatrix.INTERACTION_IX == "interactionid"


def test_properties_values_and_counts():
    X = small()
    props = X.properties
    assert isinstance(props, InteractionMatrix.InteractionMatrixProperties)
    assert props.to_dict() == {"num_users": 3, "num_items": 4, "has_timestamps": True}
    V = X.values
    assert isinstance(V, sp.csr_matrix) and V.dtype == np.int32
    assert V.toarray().tolist() == [[1, 1, 0, 1], [0, 0, 1, 0], [0, 2, 0, 0]]
    B = X.binary_values
    assert isinstance(B, sp.csr_matrix) and B.dtype == np.int32
    assert B.toarray().tolist() == [[1, 1, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]]
    assert X.density == pytest.approx(5 / 12)
    assert X.num_interactions == 6 and X.num_active_users == 3 and X.num_active_items == 4
    users, items = X.indices
    assert list(zip(users.tolist(), items.tolist(), strict=True)) == [
        (0, 0),
        (0, 1),
        (0, 3),
        (1, 2),
        (2, 1),
    ]


def test_timestamp_accessors():
    X = small()
    s = X.timestamps
    assert isinstance(s, pd.Series) and s.name == "ts" and s.index.names == ["uid", "iid"]
    # one entry per interaction, in row order
    assert list(s.items()) == [
        ((2, 1), 5),
        ((0, 3), 3),
        ((0, 1), 3),
        ((2, 1), 1),
        ((0, 0), 9),
        ((1, 2), 4),
    ]
    assert X.get_timestamp(4) == 9
    with pytest.raises(KeyError):
        X.get_timestamp(99)
    last = X.last_timestamps_matrix
    assert isinstance(last, sp.csr_matrix)
    assert last.toarray().tolist() == [[9, 3, 0, 3], [0, 0, 4, 0], [0, 5, 0, 0]]
    # filters keep ids, so get_timestamp still finds the kept interactions by id
    assert X.timestamps_gt(4).get_timestamp(4) == 9


def test_eliminate_timestamps():
    X = small()
    Y = X.eliminate_timestamps()
    assert not Y.has_timestamps and X.has_timestamps
    assert (Y.values != X.values).nnz == 0
    X.session_arrays()
    assert X.eliminate_timestamps(inplace=True) is None
    assert not X.has_timestamps and X.session_arrays().timestamps is None
    with pytest.raises(AttributeError):
        getattr(X, "timestamps")  # noqa: B009


FILTERS = [
    ("timestamps_gt", 3),
    ("timestamps_gte", 3),
    ("timestamps_lt", 4),
    ("timestamps_lte", 4),
    ("users_in", [0, 1]),
    ("items_in", {1}),
    ("interactions_in", [0, 2, 5]),
    ("indices_in", ([2, 0], [1, 3])),
]


@pytest.mark.parametrize(("name", "arg"), FILTERS)
def test_filters_inplace_return_none_and_refresh_caches(name, arg):
    X = small()
    expect = getattr(X, name)(arg)
    assert isinstance(expect, InteractionMatrix) and expect.shape == X.shape
    assert X.num_interactions == 6  # inplace=False leaves the matrix alone
    before_values, before_sessions = X.values, X.session_arrays()
    shared = X.copy()
    assert getattr(X, name)(arg, inplace=True) is None
    assert rows(X) == rows(expect)
    # caches computed before the change are not served afterwards
    assert (X.values != expect.values).nnz == 0
    assert X.values.sum() < before_values.sum()
    assert X.session_arrays().n_events == expect.num_interactions < before_sessions.n_events
    # a copy taken before is unaffected
    assert shared.num_interactions == 6


@pytest.mark.filterwarnings("ignore:No interaction IDs given")
@SETTINGS
@given(event_frames(), st.integers(0, 4), st.sets(st.integers(0, 6)), st.data())
def test_inplace_equals_returned(df, t, users, data):
    X = make(df)
    ids = data.draw(st.sets(st.integers(0, len(df) - 1)))
    for name, arg in [
        ("timestamps_lt", t),
        ("timestamps_gte", t),
        ("users_in", users),
        ("interactions_in", sorted(ids)),
    ]:
        target = X.copy()
        assert getattr(target, name)(arg, inplace=True) is None
        assert rows(target) == rows(getattr(X, name)(arg))


def test_interactions_in_warns_about_unknown_and_empty():
    X = small()
    with pytest.warns(UserWarning, match=r"IDs \{7\} not present"):
        Y = X.interactions_in([1, 7])
    assert rows(Y) == [(1, 0, 3, 3)]
    with pytest.warns(UserWarning, match="No interaction IDs given"):
        assert X.interactions_in([]).num_interactions == 0


def test_indices_in_goes_pair_by_pair():
    X = small()
    # pair order, row order within a pair; a pair given twice gives its rows twice
    assert [r[0] for r in rows(X.indices_in(([0, 2], [1, 1])))] == [2, 0, 3]
    assert [r[0] for r in rows(X.indices_in(([2, 0, 2], [1, 1, 1])))] == [0, 3, 2, 0, 3]
    assert X.indices_in(([], [])).num_interactions == 0
    with pytest.raises(KeyError):
        X.indices_in(([0, 1], [1, 1]))  # (1, 1) has no interaction


def test_history_properties():
    X = small()
    assert [(u, h.tolist()) for u, h in X.binary_item_history] == [
        (0, [3, 1, 0]),
        (1, [2]),
        (2, [1]),
    ]
    assert [(u, h.tolist()) for u, h in X.interaction_history] == [
        (0, [1, 2, 4]),
        (1, [5]),
        (2, [0, 3]),
    ]
    assert [(u, h.tolist()) for u, h in X.sorted_item_history] == [
        (0, [3, 1, 0]),
        (1, [2]),
        (2, [1, 1]),
    ]
    assert [(u, h.tolist()) for u, h in X.sorted_interaction_history] == [
        (0, [1, 2, 4]),
        (1, [5]),
        (2, [3, 0]),
    ]
    assert list(X.users_in([]).binary_item_history) == []


def test_union_and_add():
    X = small()
    a, b = X.timestamps_gt(3), X.timestamps_lte(3)
    u = a + b
    assert isinstance(u, InteractionMatrix) and u.shape == X.shape
    # a's rows then b's, ids numbered afresh
    assert [r[0] for r in rows(u)] == list(range(6))
    assert [r[1:] for r in rows(u)] == [r[1:] for r in rows(a) + rows(b)]
    assert (u.values != X.values).nnz == 0
    with pytest.raises(ValueError, match="timestamps"):
        X.union(X.eliminate_timestamps())
    with pytest.raises(ValueError, match="shape"):
        X + make(pd.DataFrame(SMALL_EVENTS), shape=(5, 5))
    e1 = InteractionMatrix.from_events(
        pd.DataFrame({"session_id": [1], "item_id": ["a"], "timestamp": [0]})
    )
    e2 = InteractionMatrix.from_events(
        pd.DataFrame({"session_id": [1], "item_id": ["b"], "timestamp": [0]})
    )
    with pytest.raises(ValueError, match="item vocabularies"):
        e1 + e2
    assert (e1 + e1.copy()).item_vocabulary is e1.item_vocabulary


def test_save_writes_recpacks_layout(tmp_path):
    X = small().timestamps_gt(3)
    assert X.save(str(tmp_path / "m")) is None
    assert (tmp_path / "m.csv").read_text().splitlines() == [
        "interactionid,uid,iid,ts",
        "0,2,1,5",
        "4,0,0,9",
        "5,1,2,4",
    ]
    yaml = (tmp_path / "m_properties.yaml").read_text()
    assert yaml == "has_timestamps: true\nnum_items: 4\nnum_users: 3\n"
    Y = InteractionMatrix.load(str(tmp_path / "m"))
    assert Y.shape == (3, 4)
    # as in recpack, loading numbers the interactions afresh
    assert rows(Y) == [(0, 2, 1, 5), (1, 0, 0, 9), (2, 1, 2, 4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m_properties.yaml"]


def test_load_reads_files_in_recpacks_layout(tmp_path):
    # what recpack writes for a matrix without timestamps (yaml by yaml.safe_dump)
    (tmp_path / "r.csv").write_text("interactionid,uid,iid\n3,0,2\n7,4,0\n7,4,0\n")
    (tmp_path / "r_properties.yaml").write_text(
        "has_timestamps: false\nnum_items: 6\nnum_users: 5\n"
    )
    X = InteractionMatrix.load(str(tmp_path / "r"))
    assert X.shape == (5, 6) and not X.has_timestamps
    assert X.values.toarray()[4, 0] == 2 and X.num_interactions == 3
    (tmp_path / "bad_properties.yaml").write_text(
        "has_timestamps: maybe\nnum_items: 6\nnum_users: 5\n"
    )
    (tmp_path / "bad.csv").write_text("interactionid,uid,iid\n0,0,0\n")
    with pytest.raises(ValueError, match="has_timestamps"):
        InteractionMatrix.load(str(tmp_path / "bad"))


@SETTINGS
@given(event_frames(min_size=1), st.booleans())
def test_save_load_round_trip(tmp_path_factory, df, drop_ts):
    X = make(df)
    if drop_ts:
        X = X.eliminate_timestamps()
    prefix = str(tmp_path_factory.mktemp("rt") / "x")
    X.save(prefix)
    Y = InteractionMatrix.load(prefix)
    assert Y.shape == X.shape and Y.has_timestamps == X.has_timestamps
    assert [r[1:] for r in rows(Y)] == [r[1:] for r in rows(X)]
    if X.has_timestamps:
        np.testing.assert_array_equal(Y.timestamps.to_numpy(), X.timestamps.to_numpy())


def test_from_csr_matrix_orders_single_then_repeated_cells():
    M = sp.csr_matrix(np.array([[2, 0, 1], [0, 1, 3]]))
    X = InteractionMatrix.from_csr_matrix(M)
    assert [r[1:] for r in rows(X)] == [(0, 2), (1, 1), (0, 0), (0, 0), (1, 2), (1, 2), (1, 2)]
    assert X.shape == (2, 3) and (X.values != M).nnz == 0


def test_to_csr_matrix_to_binary_and_unsupported_types():
    X = small()
    M = sp.csr_matrix(np.array([[0, 3], [2, 0]]))
    assert isinstance(to_csr_matrix(X), sp.csr_matrix)
    assert (to_csr_matrix(X) != X.values).nnz == 0
    assert to_csr_matrix(M) is M
    both = to_csr_matrix((X, M), binary=True)
    assert isinstance(both, tuple) and len(both) == 2
    assert both[1].toarray().tolist() == [[0, 1], [1, 0]] and both[1].dtype == M.dtype
    assert isinstance(to_csr_matrix([M]), list)
    B = to_binary(M)
    assert B.dtype == M.dtype and B.toarray().tolist() == [[0, 1], [1, 0]]
    for bad in (np.eye(2), M.tocoo(), pd.DataFrame({"a": [1]})):
        with pytest.raises(UnsupportedTypeError, match=type(bad).__name__):
            to_csr_matrix(bad)
    assert issubclass(UnsupportedTypeError, Exception)


@settings(max_examples=30, deadline=None)
@given(
    cells=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(-3, 3)), max_size=12
    ),
    dtype=st.sampled_from([np.int32, np.int64, np.float32, np.float64]),
)
def test_to_csr_matrix_binary_property(cells, dtype):
    """binary=True: 1 where the input is nonzero, 0 elsewhere, the input's dtype, the input
    unchanged; without it the same object comes back, alone or inside a tuple or list."""
    a = np.array(cells, dtype=int).reshape(-1, 3)
    M = sp.csr_matrix((a[:, 2].astype(dtype), (a[:, 0], a[:, 1])), shape=(4, 5))
    before = M.toarray().copy()
    B = to_csr_matrix(M, binary=True)
    assert isinstance(B, sp.csr_matrix) and B.dtype == M.dtype and B.shape == M.shape
    np.testing.assert_array_equal(B.toarray(), (before != 0).astype(dtype))
    np.testing.assert_array_equal(M.toarray(), before)
    assert to_csr_matrix(M) is M
    pair = to_csr_matrix((M, [M]), binary=False)
    assert isinstance(pair, tuple) and pair[0] is M and pair[1][0] is M
    assert to_csr_matrix(()) == ()


# --- objects with the public surface of recpack's InteractionMatrix ---------------------------


class LookAlike:
    """A stand-in with recpack's public InteractionMatrix surface, built on a DataFrame that it
    hides: touching a private member fails the test."""

    def __init__(self, df: pd.DataFrame, shape: tuple[int, int], with_ts: bool = True):
        object.__setattr__(self, "hidden", (df.reset_index(drop=True), with_ts))
        self.shape = shape

    def __getattribute__(self, name):
        if name.startswith("_") and not name.startswith("__"):
            raise AssertionError(f"private member {name} was read")
        return object.__getattribute__(self, name)

    @property
    def _df(self):
        raise AssertionError("_df was read")

    @property
    def has_timestamps(self) -> bool:
        return self.hidden[1]

    @property
    def timestamps(self) -> pd.Series:
        df, with_ts = self.hidden
        if not with_ts:
            raise AttributeError("no timestamps")
        index = pd.MultiIndex.from_frame(df[["uid", "iid"]])
        return pd.Series(df["ts"].to_numpy(), index=index, name="ts")

    @property
    def values(self) -> sp.csr_matrix:
        df = self.hidden[0]
        ones = np.ones(len(df), dtype=np.int32)
        return sp.csr_matrix((ones, (df["uid"], df["iid"])), shape=self.shape, dtype=np.int32)

    @property
    def num_interactions(self) -> int:
        return len(self.hidden[0])

    def users_in(self, U, inplace=False):
        raise NotImplementedError

    @property
    def sorted_item_history(self):
        raise NotImplementedError


def look_alike(df: pd.DataFrame, **kw) -> LookAlike:
    frame = df.rename(columns={"user": "uid", "item": "iid"})
    return LookAlike(frame, (int(frame["uid"].max()) + 1, int(frame["iid"].max()) + 1), **kw)


@SETTINGS
@given(event_frames())
def test_look_alike_converts_through_public_surface(df):
    obj = look_alike(df)
    assert is_interaction_matrix_like(obj)
    X = as_interaction_matrix(obj)
    ref = make(df)
    assert X.shape == ref.shape and rows(X) == rows(ref)
    assert [(u, h.tolist()) for u, h in X.sorted_item_history] == [
        (u, h.tolist()) for u, h in ref.sorted_item_history
    ]
    assert (to_csr_matrix(obj) != ref.values).nnz == 0
    assert (ref + obj).num_interactions == 2 * len(df)


def test_look_alike_without_timestamps_and_other_types():
    obj = look_alike(pd.DataFrame(SMALL_EVENTS), with_ts=False)
    X = as_interaction_matrix(obj)
    assert not X.has_timestamps and (X.values != small().values).nnz == 0
    assert as_interaction_matrix(X) is X
    for bad in (pd.DataFrame(SMALL_EVENTS), np.eye(2), None, InteractionMatrix):
        assert not is_interaction_matrix_like(bad)
    with pytest.raises(TypeError, match="scipy sparse matrix.*InteractionMatrix with timestamps"):
        as_interaction_matrix(small().values)
    with pytest.raises(TypeError, match="must be an InteractionMatrix"):
        as_interaction_matrix([[0, 1]], "X")


@pytest.mark.parametrize("form", ["datetime", "iso"])
def test_fractions_of_a_second_order_events_of_rows_not_in_time_order(form):
    """Events 0.1 s apart given newest first: flooring to whole seconds would tie them and
    keep the (reversed) row order."""
    times = ["2014-04-07T10:51:09.100Z", "2014-04-07T10:51:09.200Z", "2014-04-07T10:51:09.300Z"]
    df = pd.DataFrame({"session_id": [7, 7, 7], "item_id": ["a", "b", "c"], "timestamp": times})
    if form == "datetime":
        df["timestamp"] = pd.to_datetime(df["timestamp"])
    X = InteractionMatrix.from_events(df.iloc[::-1])
    s = X.session_arrays()
    assert X.item_vocabulary.to_raw(s.items).tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(s.timestamps - 1396867869, [0.1, 0.2, 0.3], atol=1e-6)
    whole = df.assign(timestamp=pd.to_datetime(["2014-04-07T10:51:09Z"] * 3))
    assert InteractionMatrix.from_events(whole).session_arrays().timestamps.dtype == np.int64


@pytest.mark.parametrize(
    "form",
    [
        "object ints",
        "object mixed numbers",
        "decimals",
        "timedeltas",
        "dates",
        "periods",
        "categorical ISO strings",
        "categorical numbers",
    ],
)
def test_times_in_wrappers_order_events_as_plain_ones(form):
    """Times a frame can hold in other containers order the events as the plain numbers do."""
    import datetime
    import decimal

    secs = [3, 1, 2, 5, 4, 6, 7]  # days for the date-like forms
    days = pd.to_datetime("2020-01-01") + pd.to_timedelta(secs, unit="D")
    ts = {
        "object ints": pd.Series(secs, dtype=object),
        "object mixed numbers": pd.Series([3, 1.5, 2, 5, 4, 6.5, 7], dtype=object),
        "decimals": [decimal.Decimal(x) for x in secs],
        "timedeltas": pd.to_timedelta(secs, unit="s"),
        "dates": pd.Series([datetime.date(2020, 1, x) for x in secs], dtype=object),
        "periods": pd.Series(days.to_period("D")),
        "categorical ISO strings": pd.Categorical(days.strftime("%Y-%m-%d")),
        "categorical numbers": pd.Categorical(secs),
    }[form]
    df = pd.DataFrame({"session_id": [0, 0, 0, 1, 1, 2, 2], "item_id": list("abcbcac"),
                       "timestamp": ts})  # fmt: skip
    X = InteractionMatrix.from_events(df)
    plain = InteractionMatrix.from_events(df.assign(timestamp=secs))
    np.testing.assert_array_equal(X.session_arrays().items, plain.session_arrays().items)
    assert X.session_arrays().items.tolist() == [1, 2, 0, 2, 1, 0, 2]


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (
            lambda df: pd.concat([df, df[["item_id"]]], axis=1),
            {},
            r"'item_id' \(item_col\) appears 2",
        ),
        (lambda df: df.set_index("session_id"), {}, r"'session_id' is the index.*reset_index"),
        (lambda df: df, {"time_col": "session_id"}, "session_col and time_col both name the"),
        (lambda df: df, {"item_col": "session_id"}, "session_col and item_col both name the"),
    ],
    ids=["duplicated column", "in the index", "session is time", "session is item"],
)
def test_columns_that_are_ambiguous_or_in_the_index_are_named(change, kwargs, message):
    with pytest.raises(ValueError, match=message):
        InteractionMatrix.from_events(change(events()), **kwargs)
    with pytest.raises(ValueError, match=message):
        neg(**kwargs).fit(change(events()))


def test_numbers_read_as_text_are_numeric_timestamps():
    df = events()
    as_text = df.assign(timestamp=df["timestamp"].astype(str))  # e.g. read_csv(dtype=str)
    a = InteractionMatrix.from_events(df)
    b = InteractionMatrix.from_events(as_text)
    np.testing.assert_array_equal(b.timestamps.to_numpy(), a.timestamps.to_numpy())


def test_a_bad_time_string_error_ends_cleanly():
    df = events().assign(timestamp="07/04/2014 10:51")
    with pytest.raises(ValueError, match=r"not ISO8601 format\); give numbers") as info:
        InteractionMatrix.from_events(df)
    assert "You might want to try" not in str(info.value)


def test_older_column_keywords_conflicting_with_the_new_ones_are_an_error():
    df = events().rename(columns={"session_id": "u"})
    with pytest.raises(TypeError, match=r"both session_col='u' and its older spelling user='zzz'"):
        InteractionMatrix.from_events(df, session_col="u", user="zzz")
    # The older spelling alone, or both agreeing, still work.
    assert (
        InteractionMatrix.from_events(df, user="u").shape
        == InteractionMatrix.from_events(df, session_col="u", user="u").shape
    )


def test_no_known_item_names_the_item_column_and_not_users():
    train = InteractionMatrix.from_events(events())
    unknown = events().assign(item_id=10_000)
    with pytest.raises(
        ValueError, match="none of the .* events has an item of the given item"
    ) as info:
        InteractionMatrix.from_events(unknown, item_vocabulary=train.item_vocabulary)
    assert "user" not in str(info.value)
    as_text = events().assign(item_id=lambda d: d["item_id"].astype(str))
    with pytest.raises(ValueError, match="the column holds strings but the vocabulary numbers"):
        InteractionMatrix.from_events(as_text, item_vocabulary=train.item_vocabulary)
