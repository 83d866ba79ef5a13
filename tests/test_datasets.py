"""Tests of the readers, preprocessing, splits and synthetic data in gru4rec.datasets."""

from __future__ import annotations

import gzip
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gru4rec.datasets import (
    last_item_split,
    make_synthetic_sessions,
    preprocess,
    read_diginetica,
    read_events,
    read_retailrocket,
    read_rsc15,
    time_split,
)
from gru4rec.estimator import GRU4RecNegSampling
from gru4rec.matrix import InteractionMatrix

SETTINGS = settings(max_examples=40, deadline=None)
DAY = 86400


@st.composite
def event_logs(draw, max_size=60):
    n = draw(st.integers(1, max_size))
    ints = st.lists
    return pd.DataFrame(
        {
            "session_id": draw(ints(st.integers(0, 12), min_size=n, max_size=n)),
            "item_id": draw(ints(st.integers(0, 6), min_size=n, max_size=n)),
            "timestamp": draw(ints(st.integers(0, 10 * DAY), min_size=n, max_size=n)),
        }
    )


# --- read_events --------------------------------------------------------------------------------


def test_read_events_csv_tsv_gz_and_renaming(tmp_path: Path):
    df = pd.DataFrame({"s": [3, 3, 1], "i": ["a", "b", "a"], "t": [5, 6, 1], "x": [0, 0, 0]})
    df.to_csv(tmp_path / "e.csv", index=False)
    df.to_csv(tmp_path / "e.tsv", index=False, sep="\t")
    with gzip.open(tmp_path / "e.tsv.gz", "wt") as fh:
        df.to_csv(fh, index=False, sep="\t")
    df.to_csv(tmp_path / "e.txt", index=False, sep=";")
    for name in ("e.csv", "e.tsv", "e.tsv.gz", "e.txt"):
        got = read_events(tmp_path / name, session_col="s", item_col="i", time_col="t")
        assert list(got.columns) == ["session_id", "item_id", "timestamp"], name
        assert got["session_id"].tolist() == [3, 3, 1]
        assert got["item_id"].tolist() == ["a", "b", "a"]
        assert got["timestamp"].tolist() == [5, 6, 1]
    no_time = read_events(tmp_path / "e.csv", session_col="s", item_col="i", time_col=None)
    assert list(no_time.columns) == ["session_id", "item_id"]
    two = read_events([tmp_path / "e.csv", tmp_path / "e.tsv"], "s", "i", "t")
    assert len(two) == 6
    explicit = read_events(tmp_path / "e.txt", "s", "i", "t", sep=";")
    assert len(explicit) == 3


def test_read_events_bad_input(tmp_path: Path):
    pd.DataFrame({"session_id": [1], "item_id": [2]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match="'timestamp'"):
        read_events(tmp_path / "a.csv")
    with pytest.raises(ValueError, match="'sess'.*session_col"):
        read_events(tmp_path / "a.csv", session_col="sess", time_col=None)
    pd.DataFrame({"session_id": [1, 2], "item_id": [2, None], "timestamp": [0, 1]}).to_csv(
        tmp_path / "b.csv", index=False
    )
    with pytest.raises(ValueError, match="'item_id'.*missing"):
        read_events(tmp_path / "b.csv")
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "nope.csv")


def test_read_events_types_ids_once_over_all_files(tmp_path: Path):
    """An id is one id: file 1 all numbers and file 2 mixing numbers with other ids (as
    pandas' chunks of one large file can be) give 123 once, not 123 and '123'."""
    pd.DataFrame({"session_id": [1, 1], "item_id": [123, 5], "timestamp": [0, 1]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"session_id": [2, 2], "item_id": ["123", "X9"], "timestamp": [2, 3]}).to_csv(
        tmp_path / "b.csv", index=False
    )
    df = read_events([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert df["item_id"].tolist() == ["123", "5", "123", "X9"]
    assert df["session_id"].tolist() == [1, 1, 2, 2]  # all integers: int64 as before
    assert df["session_id"].dtype == np.int64
    assert InteractionMatrix.from_events(df).shape == (2, 3)


def test_read_events_keeps_ids_as_the_file_spells_them(tmp_path: Path):
    (tmp_path / "e.csv").write_text(
        "session_id,item_id,timestamp\n007,0012, 1\n007,12,2\n8, 5 ,3\n"
    )
    df = read_events(tmp_path / "e.csv")
    assert df["session_id"].tolist() == ["007", "007", "8"]
    assert df["item_id"].tolist() == ["0012", "12", "5"]
    (tmp_path / "big.csv").write_text("session_id,item_id,timestamp\n1,18446744073709551615,0\n")
    assert read_events(tmp_path / "big.csv")["item_id"].tolist() == ["18446744073709551615"]


def test_read_events_empty_file_and_other_separator_say_so(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("session_id,item_id,timestamp\n")
    with pytest.raises(ValueError, match="empty.csv holds no events"):
        read_events(tmp_path / "empty.csv")
    (tmp_path / "semi.csv").write_text("session_id;item_id;timestamp\n1;2;3\n")
    with pytest.raises(ValueError, match="separated by ';'"):
        read_events(tmp_path / "semi.csv")


# --- format readers -----------------------------------------------------------------------------


def test_read_rsc15_clicks_and_prepared(tmp_path: Path):
    clicks = (
        "2,2014-04-07T10:54:09.868Z,214576500,0\n"
        "1,2014-04-07T10:51:09.277Z,214536502,0\n"
        "2,2014-04-07T10:54:09.100Z,214576501,S\n"
        "1,2014-04-07T10:54:09.277Z,214536500,0\n"
    )
    (tmp_path / "clicks.dat").write_text(clicks)
    got = read_rsc15(tmp_path / "clicks.dat")
    t0 = int(pd.Timestamp("2014-04-07T10:51:09Z").timestamp())
    assert got["session_id"].tolist() == [1, 1, 2, 2]
    assert got["item_id"].tolist() == [214536502, 214536500, 214576501, 214576500]
    assert got["timestamp"].tolist() == [t0, t0 + 180, t0 + 180, t0 + 180]
    prepared = "SessionId\tItemId\tTime\n5\t10\t100.9\n4\t11\t50.5\n5\t12\t100.2\n"
    (tmp_path / "prep.txt").write_text(prepared)
    got = read_rsc15(tmp_path / "prep.txt")
    assert got.to_dict("list") == {
        "session_id": [4, 5, 5],
        "item_id": [11, 12, 10],
        "timestamp": [50, 100, 100],
    }
    (tmp_path / "bad.txt").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="path"):
        read_rsc15(tmp_path / "bad.txt")


def test_read_diginetica_dates_and_order(tmp_path: Path):
    text = (
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "7;NA;30;90061500;2016-05-10\n"  # 1 day 1 h 1 min 1.5 s after the start
        "7;NA;10;0;2016-05-09\n"
        "7;12;20;2500;2016-05-09\n"
        "3;NA;40;1000;2016-01-03\n"
    )
    (tmp_path / "train-item-views.csv").write_text(text)
    got = read_diginetica(tmp_path / "train-item-views.csv")
    d9 = int(pd.Timestamp("2016-05-09", tz="UTC").timestamp())
    d3 = int(pd.Timestamp("2016-01-03", tz="UTC").timestamp())
    assert got.to_dict("list") == {
        "session_id": [3, 7, 7, 7],
        "item_id": [40, 10, 20, 30],
        "timestamp": [d3 + 1, d9, d9 + 2, d9 + 90061],
    }
    (tmp_path / "bad.csv").write_text("session_id;item_id;timeframe\n1;2;3\n")
    with pytest.raises(ValueError, match="'eventdate'"):
        read_diginetica(tmp_path / "bad.csv")


def test_read_retailrocket_sessions_by_gap(tmp_path: Path):
    rows = [
        (1_000_000, 5, "view", 100, ""),
        (1_000_000 + 1_800_000, 5, "view", 101, ""),  # exactly the gap: same session
        (1_000_000 + 3_600_001, 5, "addtocart", 102, ""),  # > gap: new session
        (2_000, 9, "view", 103, ""),
        (500, 9, "transaction", 104, "77"),
    ]
    df = pd.DataFrame(rows, columns=["timestamp", "visitorid", "event", "itemid", "transactionid"])
    df.to_csv(tmp_path / "events.csv", index=False)
    got = read_retailrocket(tmp_path / "events.csv")
    assert got["item_id"].tolist() == [100, 101, 102, 104, 103]
    assert got["session_id"].tolist() == [0, 0, 1, 2, 2]
    assert got["timestamp"].tolist() == [1000, 2800, 4600, 0, 2]
    views = read_retailrocket(tmp_path / "events.csv", gap_seconds=10_000, event_types=["view"])
    assert views["item_id"].tolist() == [100, 101, 103]
    assert views["session_id"].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="gap_seconds"):
        read_retailrocket(tmp_path / "events.csv", gap_seconds=0)


# --- preprocess ---------------------------------------------------------------------------------


def reference_preprocess(df, min_len, min_support):
    def keep_sessions(d):
        n = d.groupby("session_id")["item_id"].transform("size")
        return d[n >= min_len]

    d = keep_sessions(df)
    d = d[d.groupby("item_id")["item_id"].transform("size") >= min_support]
    return keep_sessions(d)


@SETTINGS
@given(event_logs(), st.integers(1, 3), st.integers(1, 4))
def test_preprocess_matches_reference(df, min_len, min_support):
    got = preprocess(df, min_session_length=min_len, min_item_support=min_support)
    expect = reference_preprocess(df, min_len, min_support).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expect)
    if len(got):
        assert got.groupby("session_id").size().min() >= min_len


def test_preprocess_logs_counts_and_removes_consecutive_duplicates(caplog):
    df = pd.DataFrame(
        {
            "session_id": [1, 1, 1, 1, 2, 2, 3],
            "item_id": [5, 5, 6, 5, 5, 6, 6],
            "timestamp": [0, 1, 2, 3, 0, 0, 0],
        }
    )
    with caplog.at_level(logging.INFO, logger="gru4rec.datasets"):
        got = preprocess(df, min_item_support=1, remove_consecutive_duplicates=True)
    assert got.to_dict("list") == {
        "session_id": [1, 1, 1, 2, 2],
        "item_id": [5, 6, 5, 5, 6],
        "timestamp": [0, 2, 3, 0, 0],
    }
    text = caplog.text
    assert "consecutive duplicates removed 1 of 7" in text
    assert "short sessions removed 1 of 6" in text
    # duplicates are judged in time order, not file order
    shuffled = pd.DataFrame({"session_id": [1, 1, 1], "item_id": [5, 6, 5], "timestamp": [0, 9, 1]})
    got = preprocess(shuffled, min_item_support=1, remove_consecutive_duplicates=True)
    assert got["timestamp"].tolist() == [0, 9]


@pytest.mark.parametrize(
    ("df", "kwargs", "match"),
    [
        (pd.DataFrame({"session_id": [1], "item": [1]}), {}, "'item_id'"),
        (pd.DataFrame({"sid": [1], "item_id": [1]}), {}, "'session_id'"),
        (pd.DataFrame({"session_id": [], "item_id": []}), {}, "empty"),
        (pd.DataFrame({"session_id": [1, None], "item_id": [1, 2]}), {}, "'session_id'"),
        (pd.DataFrame({"session_id": [1], "item_id": [1]}), {"min_item_support": 0}, "min_item"),
        (pd.DataFrame({"session_id": [1], "item_id": [1]}), {"min_session_length": 1.5}, "min_s"),
    ],
)
def test_preprocess_bad_input(df, kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocess(df, **kwargs)


# --- time_split ---------------------------------------------------------------------------------


@SETTINGS
@given(event_logs(), st.floats(0.5, 8.0))
@pytest.mark.filterwarnings("ignore:time_split:UserWarning")  # an empty test set is fine here
def test_time_split_partitions_by_session_start(df, test_days):
    tmax = df["timestamp"].max()
    cutoff = tmax - test_days * DAY
    start = df.groupby("session_id")["timestamp"].min()
    if (start < cutoff).sum() == 0:
        with pytest.raises(ValueError, match="test_days"):
            time_split(df, test_days)
        return
    train, test = time_split(df, test_days)
    train_s, test_s = set(train["session_id"]), set(test["session_id"])
    assert not train_s & test_s  # no session leaks
    assert train_s == set(start.index[start < cutoff])
    assert test_s <= set(start.index[start >= cutoff])
    # train keeps its sessions whole
    pd.testing.assert_frame_equal(
        train, df[df["session_id"].isin(train_s)].reset_index(drop=True), check_dtype=False
    )
    assert set(test["item_id"]) <= set(train["item_id"])
    if len(test):
        assert test.groupby("session_id").size().min() >= 2
    # test rows are exactly the known-item rows of test sessions that keep >= 2 of them
    cand = df[df["session_id"].map(start) >= cutoff]
    cand = cand[cand["item_id"].isin(train["item_id"])]
    cand = cand[cand.groupby("session_id")["item_id"].transform("size") >= 2]
    pd.testing.assert_frame_equal(test, cand.reset_index(drop=True), check_dtype=False)


def test_time_split_tmax_and_logging(caplog):
    df = pd.DataFrame(
        {
            "session_id": [1, 1, 2, 2, 3, 3, 3, 4, 4],
            "item_id": [1, 2, 1, 2, 1, 9, 2, 9, 1],
            "timestamp": [0, 10, DAY, DAY + 5, 2 * DAY, 2 * DAY + 1, 2 * DAY + 2, 3 * DAY, 3 * DAY],
        }
    )
    with caplog.at_level(logging.INFO, logger="gru4rec.datasets"):
        train, test = time_split(df, 1, tmax=2 * DAY + 100)
    assert set(train["session_id"]) == {1, 2}
    assert test["session_id"].tolist() == [3, 3] and test["item_id"].tolist() == [1, 2]
    assert "removed 2 test events with items unknown to train" in caplog.text
    assert "1 events of 1 test sessions shorter than 2" in caplog.text
    t2, _ = time_split(df, 1, tmax=pd.Timestamp(2 * DAY + 100, unit="s").isoformat())
    pd.testing.assert_frame_equal(t2, train)
    # a session starting exactly at the cutoff is a test session
    train, test = time_split(df, 1, tmax=2 * DAY)
    assert set(train["session_id"]) == {1} and set(test["session_id"]) == {2, 3}
    for kwargs, match in [
        ({"test_days": 0}, "test_days"),
        ({"test_days": "1"}, "test_days"),
        ({"test_days": 1, "tmax": "soon"}, "tmax"),
        ({"test_days": 1, "min_test_session_length": 0}, "min_test_session_length"),
    ]:
        with pytest.raises(ValueError, match=match):
            time_split(df, **kwargs)
    with pytest.raises(ValueError, match="'timestamp'"):
        time_split(df.drop(columns="timestamp"), 1)


def test_time_split_warns_when_the_test_set_is_empty():
    df = pd.DataFrame(
        {
            "session_id": [1, 1, 2, 2, 3, 3],
            "item_id": [1, 2, 1, 2, 8, 9],
            "timestamp": [0, 10, DAY, DAY + 5, 2 * DAY, 2 * DAY + 1],
        }
    )
    # The test session's items are all new to train.
    with pytest.warns(UserWarning, match="test set is empty: none of the 1 sessions starting"):
        _, test = time_split(df, 0.5)
    assert len(test) == 0
    # Histories keyed by position: every session starts at 0, so no test_days finds one.
    positions = df.assign(timestamp=[0, 1, 0, 1, 0, 1])
    with pytest.warns(UserWarning, match="every session starts at the same time"):
        _, test = time_split(positions, 0.5 / DAY)
    assert len(test) == 0
    with pytest.warns(UserWarning, match="no session starts at or after the cutoff 5.5"):
        _, test = time_split(positions.assign(timestamp=[0, 9, 3, 4, 5, 10]), 4.5 / DAY)
    assert len(test) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, test = time_split(df.assign(item_id=[1, 2, 1, 2, 1, 2]), 0.5)  # a test set: quiet
    assert len(test) == 2


# --- last_item_split ----------------------------------------------------------------------------


@SETTINGS
@given(event_logs())
def test_last_item_split_reconstructs_sessions(df):
    X = InteractionMatrix.from_events(df)
    lengths = X.session_arrays().lengths
    n_short = int((lengths < 2).sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vin, vout = last_item_split(X)
    msgs = [str(w.message) for w in caught]
    if n_short:
        assert any(f"{n_short} sessions with fewer than 2" in m for m in msgs)
    else:
        assert not msgs
    assert vin.shape == vout.shape == X.shape
    assert vin.item_vocabulary is X.item_vocabulary
    ids_in, ids_out = set(vin.interaction_ids.tolist()), set(vout.interaction_ids.tolist())
    assert not ids_in & ids_out
    full = dict(X.sorted_item_history)
    long_users = {u for u, h in full.items() if len(h) >= 2}
    assert vout.active_users == long_users and vout.num_interactions == len(long_users)
    assert vin.active_users == long_users
    hist_in, hist_out = dict(vin.sorted_item_history), dict(vout.sorted_item_history)
    for u in long_users:
        assert list(hist_in[u]) + list(hist_out[u]) == list(full[u])
    assert len(ids_in) + len(ids_out) + n_short == X.num_interactions


def test_last_item_split_ties_take_the_later_row():
    df = pd.DataFrame({"session_id": [1, 1, 1], "item_id": [7, 8, 9], "timestamp": [5, 5, 1]})
    vin, vout = last_item_split(InteractionMatrix.from_events(df))
    assert vout.item_vocabulary.to_raw(vout.session_arrays().items).tolist() == [8]
    assert vin.item_vocabulary.to_raw(vin.session_arrays().items).tolist() == [9, 7]
    with pytest.raises(ValueError, match="matrix"):
        last_item_split(df)


# --- synthetic data -----------------------------------------------------------------------------


def test_synthetic_sessions_shape_determinism_and_rng():
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (checks the legacy global RNG)
    a = make_synthetic_sessions(n_sessions=400, n_items=50, mean_length=5.0, seed=7)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002 (untouched)
    b = make_synthetic_sessions(n_sessions=400, n_items=50, mean_length=5.0, seed=7)
    c = make_synthetic_sessions(n_sessions=400, n_items=50, mean_length=5.0, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == ["session_id", "item_id", "timestamp"]
    assert all(a[col].dtype == np.int64 for col in a.columns)
    sizes = a.groupby("session_id").size()
    assert len(sizes) == 400 and sizes.min() >= 2
    assert 4.0 < sizes.mean() < 6.0
    assert a["item_id"].between(0, 49).all()
    starts = a.groupby("session_id")["timestamp"].min().to_numpy()
    assert np.all(np.diff(starts) > 0)
    assert (a.groupby("session_id")["timestamp"].diff().dropna() > 0).all()
    assert a["session_id"].is_monotonic_increasing


def test_synthetic_sessions_have_sequential_signal():
    df = make_synthetic_sessions(n_sessions=3000, n_items=300, mean_length=6.0, seed=1)
    sess = df["session_id"].to_numpy()
    items = df["item_id"].to_numpy()
    same = sess[1:] == sess[:-1]
    prev, nxt = items[:-1][same], items[1:][same]
    train = sess[:-1][same] < 2400
    counts = np.zeros((300, 300))
    np.add.at(counts, (prev[train], nxt[train]), 1)
    top_markov = np.argsort(-counts, axis=1, kind="stable")[:, :10]
    top_pop = np.argsort(-np.bincount(items[sess < 2400], minlength=300), kind="stable")[:10]
    p, n = prev[~train], nxt[~train]
    hit_markov = np.mean((top_markov[p] == n[:, None]).any(axis=1))
    hit_pop = np.mean(np.isin(n, top_pop))
    assert hit_markov > 0.6
    assert hit_markov > 2.5 * hit_pop


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_sessions": 0}, "n_sessions"),
        ({"n_items": 1}, "n_items"),
        ({"mean_length": 1.5}, "mean_length"),
        ({"p_follow": 1.5}, "p_follow"),
        ({"n_successors": 0}, "n_successors"),
    ],
)
def test_synthetic_sessions_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_sessions(**kwargs)


# --- timestamps as ISO-8601 strings --------------------------------------------------------------


def _iso(df: pd.DataFrame) -> pd.DataFrame:
    times = pd.to_datetime(df["timestamp"], unit="s", utc=True)
    return df.assign(timestamp=times.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)


def test_read_events_parses_iso_times(events, tmp_path):
    path = tmp_path / "ev.csv"
    _iso(events).rename(columns={"timestamp": "time"}).to_csv(path, index=False)
    df = read_events(path, time_col="time")
    assert df["timestamp"].dtype == np.int64
    np.testing.assert_array_equal(df["timestamp"], events["timestamp"])
    pd.DataFrame({"session_id": [1], "item_id": [2], "timestamp": ["noon"]}).to_csv(path)
    with pytest.raises(ValueError, match="ISO-8601"):
        read_events(path)


def test_time_split_on_iso_strings_equals_split_on_seconds(events):
    train, test = time_split(events, test_days=0.02)
    train_s, test_s = time_split(_iso(events), test_days=0.02)
    np.testing.assert_array_equal(train["session_id"], train_s["session_id"])
    np.testing.assert_array_equal(test["item_id"], test_s["item_id"])


# --- one naming of the event columns -------------------------------------------------------------

RENAMED = {"session_id": "visit", "item_id": "product", "timestamp": "ts"}
NAMES = dict(session_col="visit", item_col="product", time_col="ts")


def test_the_same_column_parameters_everywhere(events):
    df = events.rename(columns=RENAMED)
    train, test = time_split(df, test_days=0.02, **NAMES)
    expected_train, _ = time_split(events, test_days=0.02)
    assert len(train) == len(expected_train)
    kept = preprocess(df, min_item_support=2, **NAMES)
    assert len(kept) == len(preprocess(events, min_item_support=2))
    X = InteractionMatrix.from_events(train, **NAMES)
    old_spelling = InteractionMatrix.from_events(
        train, user="visit", item="product", timestamp="ts"
    )
    assert X.shape == old_spelling.shape
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=0, device="cpu")
    est = GRU4RecNegSampling(num_negatives=8, **small, **NAMES).fit(train)
    assert 0.0 <= est.score(test) <= 1.0


@pytest.mark.parametrize(
    "call",
    [lambda df: time_split(df, test_days=1), lambda df: preprocess(df)],
    ids=["time_split", "preprocess"],
)
def test_a_missing_default_column_names_the_parameter_to_set(call, events):
    df = events.rename(columns={"session_id": "visit"})
    with pytest.raises(ValueError, match=r"'session_id'.*set session_col="):
        call(df)


# --- real data ------------------------------------------------------------------------------


def _datasets(root: Path) -> list[Path]:
    found = sorted(
        p for p in root.glob("*/") if (p / "train.csv").is_file() and (p / "test.csv").is_file()
    )
    if not found:
        pytest.skip(f"no data set with train.csv/test.csv under {root}")
    return found


def _counts(df: pd.DataFrame) -> dict[str, int]:
    return {
        "events": len(df),
        "sessions": df["session_id"].nunique(),
        "items": df["item_id"].nunique(),
    }


def test_shared_datasets_match_split_stats(shared_data_dir: Path):
    checked = 0
    for folder in _datasets(shared_data_dir):
        stats_file = folder / "split_stats.json"
        if not stats_file.is_file():
            continue
        checked += 1
        stats = json.loads(stats_file.read_text())
        train = read_events(folder / "train.csv")
        test = read_events(folder / "test.csv")
        for name, df in (("train", train), ("test", test)):
            expect = {k: stats[name][k] for k in ("events", "sessions", "items")}
            assert _counts(df) == expect, (folder.name, name)
        assert not set(train["session_id"]) & set(test["session_id"]), folder.name
        # the matrices built from them: test mapped with the training vocabulary loses nothing
        Xtr = InteractionMatrix.from_events(train)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Xte = InteractionMatrix.from_events(test, item_vocabulary=Xtr.item_vocabulary)
        assert Xte.num_interactions == len(test)
        assert Xtr.session_arrays().n_sessions == stats["train"]["sessions"]
    if not checked:
        pytest.skip(f"no data set under {shared_data_dir} has a split_stats.json")


def test_shared_datasets_split_is_reproduced(shared_data_dir: Path):
    """events.csv -> preprocess -> time_split gives train.csv / test.csv exactly."""
    checked = 0
    for folder in _datasets(shared_data_dir):
        stats_file = folder / "split_stats.json"
        if not (stats_file.is_file() and (folder / "events.csv").is_file()):
            continue
        checked += 1
        stats = json.loads(stats_file.read_text())
        events = read_events(folder / "events.csv")
        filtered = preprocess(events, min_item_support=stats.get("min_item_support", 5))
        assert _counts(filtered) == {
            k: stats["after_filter"][k] for k in ("events", "sessions", "items")
        }
        train, test = time_split(filtered, stats["test_days"], tmax=stats.get("tmax_utc"))
        pd.testing.assert_frame_equal(train, read_events(folder / "train.csv"))
        pd.testing.assert_frame_equal(test, read_events(folder / "test.csv"))
    if not checked:
        pytest.skip(f"no data set under {shared_data_dir} has split_stats.json and events.csv")


def test_raw_readers_reproduce_shared_events(shared_data_dir: Path):
    checked = 0
    digi = shared_data_dir / "diginetica_sample"
    if (digi / "raw" / "sample_train-item-views.csv").is_file():
        got = read_diginetica(digi / "raw" / "sample_train-item-views.csv")
        pd.testing.assert_frame_equal(got, read_events(digi / "events.csv"))
        checked += 1
    rsc = shared_data_dir / "rsc15_100k" / "raw"
    files = [rsc / "yoochoose-clicks-100k_train_full.txt", rsc / "yoochoose-clicks-100k_test.txt"]
    if all(f.is_file() for f in files):
        got = read_rsc15(files)
        pd.testing.assert_frame_equal(got, read_events(rsc.parent / "events.csv"))
        checked += 1
    if not checked:
        pytest.skip("no raw diginetica / rsc15 files in the shared data")


def test_an_empty_file_is_an_error_that_names_it(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=rf"{path} is empty: it needs a header line"):
        read_events(path)


def test_time_split_of_millisecond_timestamps_says_so_when_the_test_set_is_empty():
    df = make_synthetic_sessions(100, 20, seed=0)
    df["timestamp"] = df["timestamp"] * 1000
    with pytest.warns(UserWarning, match=r"test set is empty.*look like milliseconds.*by 1000"):
        time_split(df, test_days=0.001)
    df["timestamp"] = df["timestamp"] // 1000  # seconds: no word of the unit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        time_split(df, test_days=1e-9)
    assert caught and not any("milliseconds" in str(w.message) for w in caught)
