"""The order in which training visits sessions: time order, ties drawn from the seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.matrix import InteractionMatrix
from gru4rec.metrics import mrr_at_k
from gru4rec.samplers import session_order

# -- session_order -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=0, max_size=60),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["time", "random"]),
)
def test_session_order_is_a_permutation_and_time_mode_sorts(times, seed, mode):
    start = np.array(times, dtype=np.int64)
    order = session_order(start, np.random.default_rng(seed), mode)
    assert np.array_equal(np.sort(order), np.arange(len(start)))
    if mode == "time":
        assert np.all(np.diff(start[order]) >= 0)


def test_distinct_start_times_keep_time_order():
    start = np.array([30, 10, 20, 0])
    for seed in range(5):
        order = session_order(start, np.random.default_rng(seed))
        assert order.tolist() == [3, 1, 2, 0]


def test_tied_start_times_come_in_a_seeded_random_order():
    start = np.zeros(50, dtype=np.int64)
    a = session_order(start, np.random.default_rng(1))
    b = session_order(start, np.random.default_rng(1))
    c = session_order(start, np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(50))  # never id order


def test_tie_orders_are_uniform():
    # Every arrangement of three tied sessions is about equally likely.
    start = np.array([5, 0, 0, 0])
    rng = np.random.default_rng(0)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(3000):
        key = tuple(session_order(start, rng)[:3].tolist())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6
    assert min(counts.values()) > 400  # 500 expected each


def test_random_mode_ignores_times():
    start = np.arange(40)
    order = session_order(start, np.random.default_rng(0), "random")
    assert not np.array_equal(order, np.arange(40))


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="session order"):
        session_order(np.zeros(3), np.random.default_rng(0), "id")


# -- accuracy does not depend on how ids were numbered -------------------------------------------


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


def test_session_order_is_validated_in_fit(distinct_times):
    est = GRU4RecNegSampling(session_order="id")  # stored unchanged
    assert est.session_order == "id"
    with pytest.raises(ValueError, match="session_order"):
        est.fit(distinct_times[0])


# -- data without a time column -------------------------------------------------------------------


def test_time_col_none_uses_row_order_and_a_random_session_order(distinct_times):
    df, probe = distinct_times
    no_time = df.drop(columns="timestamp")
    est = GRU4RecNegSampling(**_SMALL, time_col=None).fit(no_time)
    # The same as row numbers for times with a random session order.
    rows = no_time.assign(timestamp=np.arange(len(no_time)))
    ref = GRU4RecNegSampling(**_SMALL, session_order="random").fit(rows)
    assert _top20(est, probe) == _top20(ref, probe)


def test_time_col_none_events_keep_row_order_within_a_session():
    df = pd.DataFrame({"session_id": [1, 1, 1], "item_id": ["c", "a", "b"]})
    est = GRU4RecNegSampling(**_SMALL, time_col=None)
    X = est._as_matrix(df)
    assert list(X.item_vocabulary.ids[X.session_arrays().items]) == ["c", "a", "b"]


def test_time_col_none_with_validation_data(distinct_times):
    df, _ = distinct_times
    no_time = df.drop(columns="timestamp")
    head = no_time.groupby("session_id").head(2)
    tail = no_time.drop(head.index)
    est = GRU4RecNegSampling(
        **_SMALL, time_col=None, stopping_criterion="next_item_recall", keep_last=True
    )
    est.fit(no_time, validation_data=(head, tail))
    assert len(est.history_) == 2
    assert all(0.0 <= h["next_item_recall"] <= 1.0 for h in est.history_)


def test_interaction_matrix_without_timestamps_stays_an_error(distinct_times):
    X = InteractionMatrix.from_events(distinct_times[0], timestamp=None)
    with pytest.raises(ValueError, match="timestamps"):
        GRU4RecNegSampling(**_SMALL, time_col=None).fit(X)


# -- the command line follows the same rule ------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], "random"), (["--session-order", "time"], "time"), (["--time-col", "timestamp"], "time")],
)
def test_cli_without_time_column_trains_in_random_order(tmp_path, distinct_times, extra, expected):
    from gru4rec.cli import main

    df = distinct_times[0]
    path = tmp_path / "events.csv"
    if "--time-col" in extra:
        df.to_csv(path, index=False)
    else:
        df.drop(columns="timestamp").to_csv(path, index=False)
        extra = ["--time-col", "none", *extra]
    model = tmp_path / "model.trch"
    args = ["train", str(path), "--model", str(model), "--hidden-size", "8", "--max-epochs", "1"]
    assert main([*args, "--quiet", *extra]) == 0
    assert GRU4RecNegSampling().load(model).session_order == expected
