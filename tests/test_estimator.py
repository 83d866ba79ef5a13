"""Tests of the estimators GRU4RecNegSampling and GRU4RecCrossEntropy (fit, predict, ranks)."""

from __future__ import annotations

import copy
import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from tiny import (
    all_finite,
    dense,
    events,
    index_matrix,
    longer_events,
    neg,
    xent,
)

import gru4rec.trainer as trainer_module
from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix, advice
from gru4rec import estimator as est_module
from gru4rec.datasets import last_item_split, make_synthetic_sessions, time_split
from gru4rec.losses import LOSSES
from gru4rec.metrics import recall_at_k

SMALL = dict(hidden_size=16, batch_size=32, max_epochs=2, num_negatives=16, device="cpu")


def small(**kw) -> GRU4RecNegSampling:
    return GRU4RecNegSampling(**{**SMALL, "seed": 0, **kw})


def small_ce(**kw) -> GRU4RecCrossEntropy:
    params = {k: v for k, v in SMALL.items() if k != "num_negatives"}
    return GRU4RecCrossEntropy(**{**params, "seed": 0, **kw})


@pytest.fixture(scope="module")
def fitted(split):
    _, _, X, _ = split
    return small().fit(X)


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def _ranks_by_session(ranks: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Split next-item ranks (event order) into one array per session (L - 1 each)."""
    n_pred = np.maximum(np.diff(offsets) - 1, 0)
    bounds = np.concatenate([[0], np.cumsum(n_pred)])
    return [ranks[bounds[i] : bounds[i + 1]] for i in range(len(n_pred))]


# -- API ---------------------------------------------------------------------------------------

RECPACK_PARAMS = [
    "num_layers",
    "hidden_size",
    "num_components",
    "dropout",
    "loss_fn",
    "optimization_algorithm",
    "momentum",
    "clipnorm",
    "bptt",
    "num_negatives",
    "batch_size",
    "max_epochs",
    "learning_rate",
    "stopping_criterion",
    "stop_early",
    "max_iter_no_change",
    "min_improvement",
    "seed",
    "save_best_to_file",
    "keep_last",
    "predict_topK",
    "validation_sample_size",
]


def test_constructor_keeps_recpack_parameters_in_order_with_defaults():
    params = list(inspect.signature(GRU4RecNegSampling).parameters)
    assert params[: len(RECPACK_PARAMS)] == RECPACK_PARAMS
    for extra in ("sample_alpha", "bpreg", "elu_param", "dropout_hidden"):
        assert extra in params[len(RECPACK_PARAMS) :]
    for extra in ("constrained_embedding", "logq", "device"):
        assert extra in params[len(RECPACK_PARAMS) :]
    d = GRU4RecNegSampling().get_params()
    assert (d["num_layers"], d["hidden_size"], d["num_components"], d["loss_fn"]) == (
        1,
        100,
        250,
        "bpr",
    )
    assert (d["clipnorm"], d["num_negatives"], d["batch_size"], d["learning_rate"]) == (
        1.0,
        50,
        512,
        0.03,
    )
    assert d["stopping_criterion"] == "recall" and d["sample_alpha"] == 0.0
    ce = list(inspect.signature(GRU4RecCrossEntropy).parameters)
    expected_ce = [p for p in RECPACK_PARAMS if p not in ("loss_fn", "num_negatives")]
    assert ce[: len(expected_ce)] == expected_ce


def test_fit_takes_y_none_as_scikit_learn_passes_it(split):
    X = split[2]
    a = small(max_epochs=1).fit(X, y=None)
    b = small(max_epochs=1).fit(X, None)
    np.testing.assert_array_equal(a.predict(X).toarray(), b.predict(X).toarray())
    with pytest.raises(ValueError, match="y must be None"):
        small(max_epochs=1).fit(X, y=np.zeros(X.shape[0]))


# -- predict -----------------------------------------------------------------------------------


def test_predict_shape_and_rows_only_for_users_with_history(fitted, split):
    _, _, _, X_test = split
    users = np.array(sorted(X_test.active_users))
    chosen = users[::3]
    sub = X_test.users_in(chosen)
    pred = fitted.predict(sub)
    assert sp.isspmatrix_csr(pred) or isinstance(pred, sp.csr_array)
    assert pred.shape == X_test.shape
    nnz = pred.getnnz(axis=1)
    assert set(np.flatnonzero(nnz)) == set(chosen.tolist())
    assert np.all(nnz[chosen] == fitted.n_items_)
    assert np.all(np.isfinite(pred.data))


def test_predict_row_is_the_state_after_the_last_item(fitted, split):
    # The rank of each session's last item in the prediction made from its other items equals
    # next_item_ranks(last_only=True): both come from the state after the last input item.
    _, _, _, X_test = split
    val_in, val_out = last_item_split(X_test)
    pred = _dense(fitted.predict(val_in))
    out = val_out.session_arrays()
    targets = out.items[out.offsets[:-1]]
    rows = pred[out.users]
    own = rows[np.arange(len(targets)), targets]
    ranks_from_predict = (rows >= own[:, None]).sum(axis=1)
    ranks = fitted.next_item_ranks(X_test, last_only=True)
    assert np.array_equal(ranks, ranks_from_predict)


@pytest.mark.parametrize("eval_slots", [3, 512])
def test_session_predicted_alone_equals_session_in_a_batch(fitted, split, monkeypatch, eval_slots):
    # Few slots: slots are reused, so a missing state reset would leak between sessions.
    monkeypatch.setattr(est_module, "_EVAL_SLOTS", eval_slots)
    _, _, _, X_test = split
    batch_pred = _dense(fitted.predict(X_test))
    arrays = X_test.session_arrays()
    batch_ranks = _ranks_by_session(fitted.next_item_ranks(X_test), arrays.offsets)
    for i in [0, 3, len(arrays.users) // 2, len(arrays.users) - 1]:
        u = int(arrays.users[i])
        alone = X_test.users_in([u])
        alone_pred = _dense(fitted.predict(alone))
        np.testing.assert_allclose(alone_pred[u], batch_pred[u], rtol=1e-5, atol=1e-5)
        assert np.count_nonzero(np.delete(alone_pred, u, axis=0)) == 0
        assert np.array_equal(fitted.next_item_ranks(alone), batch_ranks[i])


def test_next_item_ranks_chunked_scoring_equals_single_chunk(fitted, split, monkeypatch):
    _, _, _, X_test = split
    full = fitted.next_item_ranks(X_test)
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", 7)
    chunked = fitted.next_item_ranks(X_test)
    assert np.array_equal(full, chunked)
    n_pred = int(np.sum(np.diff(X_test.session_arrays().offsets) - 1))
    assert full.shape == (n_pred,)
    assert full.min() >= 1 and full.max() <= fitted.n_items_


def test_next_item_ranks_are_conservative_ranks_of_predict_scores(fitted, split):
    # Position by position: rank of the next item in the prediction from the prefix.
    _, test, _, X_test = split
    arrays = X_test.session_arrays()
    i = int(np.argmax(np.diff(arrays.offsets)))  # the longest test session
    items = arrays.items[arrays.offsets[i] : arrays.offsets[i + 1]]
    ranks = _ranks_by_session(fitted.next_item_ranks(X_test), arrays.offsets)[i]
    assert len(ranks) == len(items) - 1
    n_items = fitted.n_items_
    for p in range(len(items) - 1):
        prefix = InteractionMatrix._from_arrays(
            np.zeros(p + 1, dtype=np.int64),
            items[: p + 1].astype(np.int64),
            np.arange(p + 1, dtype=np.int64),
            np.arange(p + 1, dtype=np.int64),
            (1, n_items),
        )
        row = _dense(fitted.predict(prefix))[0]
        assert ranks[p] == int((row >= row[items[p + 1]]).sum())


@pytest.mark.parametrize("chunk", [7, 32768])
def test_predict_topk_keeps_exactly_the_k_best(fitted, split, monkeypatch, chunk):
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", chunk)
    _, _, _, X_test = split
    full = _dense(fitted.predict(X_test))
    model = copy.deepcopy(fitted).set_params(predict_topK=5)
    top = model.predict(X_test)
    assert top.shape == X_test.shape
    users = X_test.session_arrays().users
    nnz = top.getnnz(axis=1)
    assert np.all(nnz[users] == 5)
    assert nnz.sum() == 5 * len(users)
    top_dense = _dense(top)
    for u in users:
        best = np.argsort(-full[u], kind="stable")[:5]
        assert set(np.flatnonzero(top[u].toarray()[0])) == set(best.tolist())
        np.testing.assert_allclose(top_dense[u, best], full[u, best], rtol=1e-6)


def test_predict_topk_larger_than_catalogue_gives_full_rows(fitted, split):
    _, _, _, X_test = split
    model = copy.deepcopy(fitted).set_params(predict_topK=10_000)
    pred = model.predict(X_test)
    users = X_test.session_arrays().users
    assert np.all(pred.getnnz(axis=1)[users] == fitted.n_items_)


def test_predict_from_dataframe_uses_training_vocabulary(fitted, split):
    _, test, _, X_test = split
    a = _dense(fitted.predict(test))
    b = _dense(fitted.predict(X_test))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_predict_errors(fitted, split):
    _, _, X, _ = split
    with pytest.raises(NotFittedError):
        small().predict(X)
    wrong = InteractionMatrix.from_events(make_synthetic_sessions(5, 7, seed=1))
    with pytest.raises(ValueError, match="items"):
        fitted.predict(wrong)
    with pytest.raises(TypeError, match="X must be an InteractionMatrix"):
        fitted.predict(np.zeros((3, 3)))


def test_score_is_next_item_recall_at_20(fitted, split):
    _, _, _, X_test = split
    assert fitted.score(X_test) == pytest.approx(recall_at_k(fitted.next_item_ranks(X_test), 20))


def test_score_takes_the_cut_off(fitted, split):
    _, _, _, X_test = split
    ranks = fitted.next_item_ranks(X_test)
    for k in (1, 5, 10):
        assert fitted.score(X_test, k=k) == pytest.approx(recall_at_k(ranks, k))
    assert fitted.score(X_test, k=1) < fitted.score(X_test, k=20)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        fitted.score(X_test, k=0)
    assert "make_next_item_scorer" in fitted.score.__doc__  # where the other metrics are


# -- determinism and random state --------------------------------------------------------------

NOISY = dict(dropout=0.2, dropout_hidden=0.1, sample_alpha=0.5, loss_fn="bpr-max")


def test_same_seed_gives_identical_predictions(split):
    _, _, X, X_test = split
    a = small(seed=11, **NOISY).fit(X)
    b = small(seed=11, **NOISY).fit(X)
    c = small(seed=12, **NOISY).fit(X)
    pa, pb, pc = (_dense(m.predict(X_test)) for m in (a, b, c))
    assert np.array_equal(pa, pb)
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    assert not np.allclose(pa, pc)
    assert a.seed_ == 11


def _global_states():
    return (
        torch.get_rng_state().clone(),
        np.random.get_state(),  # noqa: NPY002 (the global state is what we check)
    )


def _assert_same_states(before, after):
    assert torch.equal(before[0], after[0])
    a, b = before[1], after[1]
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


@pytest.mark.parametrize("seed", [None, 5])
def test_fit_and_predict_leave_global_random_state_untouched(split, seed):
    _, _, X, X_test = split
    np.random.seed(123)  # noqa: NPY002
    torch.manual_seed(321)
    before = _global_states()
    val_in, val_out = last_item_split(X_test)
    m = small(seed=seed, validation_sample_size=5, **NOISY)
    m.fit(X, validation_data=(val_in, val_out))
    m.predict(X_test)
    m.next_item_ranks(X_test)
    _assert_same_states(before, _global_states())


def test_cross_entropy_estimator_leaves_global_random_state_untouched(split):
    _, _, X, _ = split
    torch.manual_seed(0)
    before = _global_states()
    small_ce(dropout=0.3, max_epochs=1).fit(X)
    _assert_same_states(before, _global_states())


# -- learning ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signal_split():
    df = make_synthetic_sessions(500, 150, seed=1, p_follow=0.9)
    train, test = time_split(df, test_days=0.05)
    X = InteractionMatrix.from_events(train)
    X_test = InteractionMatrix.from_events(test, item_vocabulary=X.item_vocabulary)
    return X, X_test


def _popularity_recall(X, X_test, k=20):
    counts = np.bincount(X.session_arrays().items, minlength=X.shape[1])
    arrays = X_test.session_arrays()
    has_next = np.ones(arrays.n_events, dtype=bool)
    has_next[arrays.offsets[1:] - 1] = False
    targets = arrays.items[np.flatnonzero(has_next) + 1]
    ranks = (counts[None, :] >= counts[targets][:, None]).sum(axis=1)
    return recall_at_k(ranks, k)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRU4RecNegSampling(
            hidden_size=32, batch_size=32, max_epochs=3, num_negatives=32, seed=0, device="cpu"
        ),
        lambda: GRU4RecNegSampling(
            loss_fn="bpr-max",
            elu_param=1.0,
            sample_alpha=0.5,
            constrained_embedding=True,
            momentum=0.1,
            learning_rate=0.1,
            clipnorm=None,
            hidden_size=32,
            batch_size=32,
            max_epochs=3,
            num_negatives=32,
            seed=0,
            device="cpu",
        ),
        lambda: GRU4RecCrossEntropy(
            hidden_size=32, batch_size=32, max_epochs=3, learning_rate=0.1, seed=0, device="cpu"
        ),
    ],
    ids=["defaults-bpr", "bpr-max-shared", "full-xe"],
)
def test_learns_sequential_signal_far_above_popularity(signal_split, make):
    X, X_test = signal_split
    model = make().fit(X)
    recall = recall_at_k(model.next_item_ranks(X_test), 20)
    pop = _popularity_recall(X, X_test)
    assert pop < 0.5  # the data is not solvable by popularity
    assert recall > pop + 0.25, (recall, pop)


# -- losses and architectures --------------------------------------------------------------------

LOSS_CONFIGS = [{"loss_fn": name} for name in LOSSES] + [
    {"loss_fn": "bpr-max", "elu_param": 1.0, "bpreg": 2.0, "sample_alpha": 0.5},
    {"loss_fn": "top1-max", "elu_param": 0.5},
    {"loss_fn": "cross-entropy", "logq": 1.0, "sample_alpha": 0.5},
]


@pytest.mark.parametrize("config", LOSS_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_every_loss_trains_with_finite_decreasing_loss(split, config):
    _, _, X, X_test = split
    m = small(max_epochs=3, **config).fit(X)
    losses = [h["train_loss"] for h in m.history_]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    pred = m.predict(X_test)
    assert np.all(np.isfinite(pred.data))


@pytest.mark.parametrize(
    "config",
    [
        {"bptt": 2},
        {"bptt": 3, "constrained_embedding": True},
        {"num_layers": 2},
        {"num_layers": 2, "constrained_embedding": True, "dropout_hidden": 0.2},
        {"constrained_embedding": True},
        {"constrained_embedding": False, "num_components": 8},
        {"optimization_algorithm": "sgd", "learning_rate": 0.3, "momentum": 0.3},
        {"optimization_algorithm": "adagrad", "momentum": 0.5},
        # A clip that bites (default 1.0 rarely does on this small data).
        {"clipnorm": 0.01},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_architecture_and_optimiser_variants_train(split, fitted, config):
    _, _, X, X_test = split
    m = small(max_epochs=2, **config).fit(X)
    losses = [h["train_loss"] for h in m.history_]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert len(m.model_.cells) == config.get("num_layers", 1)
    assert hasattr(m.model_, "item_embedding") != config.get("constrained_embedding", False)
    if not config.get("constrained_embedding", False):
        assert m.model_.item_embedding.shape == (X.shape[1], config.get("num_components", 250))
    assert np.all(np.isfinite(m.predict(X_test).data))
    # Every variant changes training (a silently ignored parameter would not); `fitted` is
    # the same model with default settings.
    assert not np.allclose(_dense(m.predict(X_test)), _dense(fitted.predict(X_test)))


def test_cross_entropy_estimator_fits_and_predicts(split):
    _, _, X, X_test = split
    m = small_ce(max_epochs=3).fit(X)
    assert "loss_fn" not in m.get_params() and "num_negatives" not in m.get_params()
    losses = [h["train_loss"] for h in m.history_]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # Full softmax over n items: a uniform model would have loss log(n).
    assert losses[-1] < np.log(X.shape[1])
    pred = m.predict(X_test)
    assert pred.shape == X_test.shape
    users = X_test.session_arrays().users
    assert np.all(pred.getnnz(axis=1)[users] == X.shape[1])
    m2 = small_ce(max_epochs=1, constrained_embedding=True, bptt=2).fit(X)
    assert np.all(np.isfinite(m2.predict(X_test).data))


# -- history -------------------------------------------------------------------------------------


def test_history_has_one_record_per_epoch(split):
    _, _, X, _ = split
    m = small(max_epochs=3).fit(X)
    assert len(m.history_) == 3
    n_pairs = int(np.sum(np.diff(X.session_arrays().offsets) - 1))
    for i, rec in enumerate(m.history_):
        assert {"epoch", "train_loss", "seconds", "events_per_second"} <= set(rec)
        assert rec["epoch"] == i
        assert rec["seconds"] > 0
        assert rec["events_per_second"] * rec["seconds"] == pytest.approx(n_pairs, rel=1e-6)
        assert rec["train_loss"] > 0
    # Without validation data, no evaluation and no best epoch.
    assert m.best_value_ is None and m.best_epoch_ is None


# -- refitting on a new data set -----------------------------------------------------------------


def test_refit_on_a_new_dataframe_uses_its_own_items():
    df1 = make_synthetic_sessions(60, 20, seed=1)
    df2 = make_synthetic_sessions(60, 30, seed=2)
    df2["item_id"] += 1000  # different raw ids
    m = small(max_epochs=1)
    m.fit(df1)
    assert m.n_items_ == df1["item_id"].nunique()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "dropped unknown items" warning either
        m.fit(df2)
    assert m.n_items_ == df2["item_id"].nunique()
    fresh = small(max_epochs=1).fit(df2)
    np.testing.assert_array_equal(_dense(m.predict(df2)), _dense(fresh.predict(df2)))


def test_dropout_hidden_none_means_dropout(split):
    _, _, X, X_test = split
    a = small(max_epochs=1, dropout=0.3, dropout_hidden=None).fit(X)
    b = small(max_epochs=1, dropout=0.3, dropout_hidden=0.3).fit(X)
    c = small(max_epochs=1, dropout=0.3, dropout_hidden=0.0).fit(X)
    pa, pb, pc = (_dense(m.predict(X_test)) for m in (a, b, c))
    assert np.array_equal(pa, pb)
    assert not np.allclose(pa, pc)


def test_predict_on_matrix_without_events_gives_empty_rows(fitted, split):
    _, _, _, X_test = split
    pred = fitted.predict(X_test.users_in([]))
    assert pred.shape == X_test.shape and pred.nnz == 0


def test_training_walks_sessions_in_start_time_order(monkeypatch):
    # User (row) indices in reverse time order: index order and time order disagree.
    df = make_synthetic_sessions(40, 15, seed=2)
    df["session_id"] = df["session_id"].max() - df["session_id"]
    df = df.sort_values(["session_id", "timestamp"], ignore_index=True)
    X = InteractionMatrix.from_events(df)
    seen = {}
    original = est_module.session_parallel_schedule

    def spy(offsets, order, batch_size, **kw):
        seen["order"], seen["batch_size"], seen["kw"] = np.asarray(order), batch_size, kw
        return original(offsets, order, batch_size, **kw)

    monkeypatch.setattr(est_module, "session_parallel_schedule", spy)
    small(max_epochs=1, batch_size=4).fit(X)
    starts = X.session_arrays().start_times
    order = seen["order"]
    assert sorted(order.tolist()) == list(range(len(starts)))
    assert np.all(np.diff(starts[order]) >= 0)
    assert not np.array_equal(order, np.arange(len(starts)))
    assert seen["batch_size"] == 4
    assert not seen["kw"].get("include_last", False)


# -- bad input, unknown items, use before fit ------------------------------------------------------


def test_empty_dataframes_name_the_argument_and_inference_gives_empty_results():
    with pytest.raises(ValueError, match="^X is an empty DataFrame"):
        neg().fit(events().iloc[:0])
    with pytest.raises(ValueError, match="^validation_in is an empty DataFrame"):
        neg().fit(events(), validation_data=(events().iloc[:0], events().iloc[:0]))
    for model in (neg().fit(events()), neg(predict_topK=2).fit(events())):
        scores = model.predict(events().iloc[:0])  # e.g. an empty batch of a serving job
        assert scores.shape == (0, 5) and scores.nnz == 0
        assert model.next_item_ranks(events().iloc[:0]).shape == (0,)
    with pytest.raises(ValueError, match="'item_id' not in X"):
        model.predict(events().iloc[:0].drop(columns="item_id"))


def test_empty_matrix_raises():
    X = InteractionMatrix.from_events(events()).users_in([])
    with pytest.raises(ValueError, match="no events"):
        neg().fit(X)


@pytest.mark.parametrize(
    "X", [None, [[0, 1]], np.zeros((2, 3)), "events.csv"], ids=["none", "list", "array", "str"]
)
def test_unsupported_input_container_raises(X):
    with pytest.raises(TypeError, match="InteractionMatrix"):
        neg().fit(X)


def test_only_single_event_sessions_raises():
    df = pd.DataFrame({"session_id": [0, 1, 2], "item_id": [5, 6, 5], "timestamp": [1, 2, 3]})
    with pytest.raises(ValueError, match="2 or more events"):
        neg().fit(df)
    firsts = make_synthetic_sessions(20, 10).groupby("session_id").head(1)
    with pytest.raises(ValueError, match="2 or more events"):
        neg().fit(InteractionMatrix.from_events(firsts))


def test_some_single_event_sessions_fit_and_predict():
    df = pd.concat(
        [
            events(),
            pd.DataFrame({"session_id": [7, 8], "item_id": [13, 14], "timestamp": [20, 21]}),
        ],
        ignore_index=True,
    )
    est = neg().fit(df)
    assert np.isfinite(est.history_[0]["train_loss"])
    pred = dense(est.predict(df))
    assert pred.shape == (6, 5)
    assert np.isfinite(pred).all()
    # A single-event session still gets a full row of scores (from the state after its item).
    assert (np.count_nonzero(pred, axis=1) > 0).all()
    # One rank per (item, next item) pair: sessions of one event give none.
    assert len(est.next_item_ranks(df)) == 2 + 1 + 3 + 2


def test_predict_matrix_with_another_catalogue_size_raises():
    est = neg().fit(index_matrix())
    for n_items in (4, 9):
        df = events()
        df["item_id"] = (df["item_id"] - 10) % n_items
        X = InteractionMatrix(df, "item_id", "session_id", "timestamp", shape=(4, n_items))
        with pytest.raises(ValueError, match="items"):
            est.predict(X)
        with pytest.raises(ValueError, match="items"):
            est.next_item_ranks(X)
    # More users than in training is fine: users are not part of the model.
    X = index_matrix(shape=(50, 5))
    assert est.predict(X).shape == (50, 5)
    assert len(est.next_item_ranks(X)) == len(est.next_item_ranks(index_matrix()))


def test_validation_data_of_another_shape_raises():
    X = index_matrix()
    wide = index_matrix(shape=(4, 9))
    with pytest.raises(ValueError, match="items"):
        neg().fit(X, validation_data=(wide, wide))
    with pytest.raises(ValueError, match="items"):
        neg().fit(X, validation_data=(X, wide))
    with pytest.raises(ValueError, match="rows"):
        neg().fit(X, validation_data=(X, index_matrix(shape=(9, 5))))
    with pytest.raises(ValueError, match="pair"):
        neg().fit(X, validation_data=X)
    with pytest.raises(TypeError, match="validation_in is a scipy sparse matrix"):
        neg().fit(X, validation_data=(X.values, X.values))


def test_validation_out_without_events_raises_before_training(monkeypatch):
    X = InteractionMatrix.from_events(events())
    calls = []
    real = trainer_module.train_epoch
    monkeypatch.setattr(
        trainer_module, "train_epoch", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    with pytest.raises(ValueError, match="validation"):
        neg().fit(X, validation_data=(X, X.users_in([])))
    # Events in validation_out, but none for a session of validation_in: nothing to score.
    with pytest.raises(ValueError, match="validation"):
        neg().fit(X, validation_data=(X.users_in([0, 1]), X.users_in([2, 3])))
    assert calls == []


def test_predict_with_unknown_items_warns_with_count():
    est = neg().fit(events())
    df = events()
    df.loc[[1, 7], "item_id"] = [99, 98]
    with pytest.warns(
        UserWarning, match=r"dropped 2 of 12 events whose item is not in the item vocabulary"
    ):
        pred = est.predict(df)
    assert pred.shape == (4, 5)
    assert np.isfinite(pred.data).all()
    with pytest.warns(UserWarning, match="dropped 2 of 12 events"):
        ranks = est.next_item_ranks(df)
    assert ((ranks >= 1) & (ranks <= 5)).all()
    with pytest.raises(ValueError, match="none of the 12 events"):
        est.predict(df.assign(item_id=99))


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.predict(events()),
        lambda e: e.next_item_ranks(events()),
        lambda e: e.score(events()),
        lambda e: e.recommend([10, 11]),
        lambda e: e.save(),
    ],
    ids=["predict", "next_item_ranks", "score", "recommend", "save"],
)
@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_use_before_fit_raises_not_fitted(call, make):
    with pytest.raises(NotFittedError, match="fit"):
        call(make())


# -- random event logs x random parameters (property-based) ----------------------------------------


@st.composite
def event_logs(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 24))
    string_items = draw(st.booleans())
    item = st.sampled_from(list("abcdefgh")) if string_items else st.integers(-3, 40)
    return pd.DataFrame(
        {
            "session_id": draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
            "item_id": draw(st.lists(item, min_size=n, max_size=n)),
            # few distinct values: many ties within and across sessions
            "timestamp": draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
        }
    )


NEG_PARAMS = st.fixed_dictionaries(
    {
        "loss_fn": st.sampled_from(["bpr", "top1", "bpr-max", "top1-max", "cross-entropy"]),
        "num_layers": st.integers(1, 2),
        "bptt": st.integers(1, 2),
        "constrained_embedding": st.booleans(),
        "optimization_algorithm": st.sampled_from(["sgd", "adagrad"]),
        "momentum": st.sampled_from([0.0, 0.5, 0.9]),
        "dropout": st.sampled_from([0.0, 0.3]),
        "dropout_hidden": st.sampled_from([None, 0.0, 0.5]),
        "batch_size": st.integers(1, 8),
        "num_negatives": st.integers(1, 8),
        "sample_alpha": st.sampled_from([0.0, 0.5, 1.0]),
        "logq": st.sampled_from([0.0, 1.0]),
        "elu_param": st.sampled_from([0.0, 1.0]),
        "clipnorm": st.sampled_from([None, 1.0]),
        "predict_topK": st.sampled_from([None, 1, 3]),
        "seed": st.integers(0, 2**31),
    }
)

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check_fit_predict(est, df: pd.DataFrame) -> None:
    lengths = df.groupby("session_id").size()
    trainable = bool((lengths >= 2).any())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # fitting on clean input must not warn...
            # ...but for a batch larger than these tiny logs' number of sessions.
            warnings.filterwarnings("ignore", message=r"batch_size=\d+ is more than")
            est.fit(df)
    except ValueError as err:
        assert not trainable, f"fit refused trainable data: {err}"
        assert not hasattr(est, "model_")
        return
    assert trainable, "fit accepted data without a session of 2 or more events"
    losses = [h["train_loss"] for h in est.history_]
    assert len(losses) == est.max_epochs
    assert np.isfinite(losses).all()
    assert all_finite(est)

    n_items = df["item_id"].nunique()
    n_sessions = len(lengths)
    assert est.n_items_ == n_items
    pred = est.predict(df)
    assert pred.shape == (n_sessions, n_items)
    assert np.isfinite(pred.data).all()
    k = est.predict_topK
    per_row = np.diff(pred.indptr)
    assert (per_row == (n_items if k is None else min(k, n_items))).all()  # every session

    ranks = est.next_item_ranks(df)
    assert len(ranks) == int((lengths - 1).sum())
    assert ((ranks >= 1) & (ranks <= n_items)).all()
    last = est.next_item_ranks(df, last_only=True)
    assert len(last) == int((lengths >= 2).sum())

    ids, scores = est.recommend([df["item_id"].iloc[0]], k=3)
    assert len(ids) == min(3, n_items)
    assert np.isfinite(scores).all()


@PROPERTY
@given(df=event_logs(), params=NEG_PARAMS)
def test_random_logs_and_parameters_fit_or_raise_value_error(df, params):
    _check_fit_predict(neg(**params), df)


@settings(PROPERTY, max_examples=12)
@given(
    df=event_logs(),
    params=st.fixed_dictionaries(
        {
            "num_layers": st.integers(1, 2),
            "bptt": st.integers(1, 2),
            "constrained_embedding": st.booleans(),
            "optimization_algorithm": st.sampled_from(["sgd", "adagrad"]),
            "momentum": st.sampled_from([0.0, 0.5]),
            "dropout": st.sampled_from([0.0, 0.3]),
            "batch_size": st.integers(1, 8),
            "predict_topK": st.sampled_from([None, 2]),
        }
    ),
)
def test_random_logs_cross_entropy_estimator(df, params):
    _check_fit_predict(xent(**params), df)


# -- thread workers (torch's thread count: test_device.py) -----------------------------------------


def test_joblib_thread_workers_give_the_sequential_results():
    joblib = pytest.importorskip("joblib")
    df = longer_events()

    def fit_predict(seed):
        return dense(neg(seed=seed).fit(df).predict(df))

    sequential = [fit_predict(s) for s in (0, 1, 2)]
    parallel = joblib.Parallel(n_jobs=2, backend="threading")(
        joblib.delayed(fit_predict)(s) for s in (0, 1, 2)
    )
    for a, b in zip(parallel, sequential, strict=True):
        np.testing.assert_array_equal(a, b)


def test_validation_frames_are_named_in_warnings_and_errors():
    df = events()
    val_in = df[df["session_id"] < 2]
    val_out = df[df["session_id"] >= 2]  # sessions validation_in does not have
    with pytest.raises(ValueError, match=r"^validation_out: none of the \d+ events belongs to"):
        neg().fit(df, validation_data=(val_in, val_out))
    unknown = pd.DataFrame({"session_id": [0, 0], "item_id": [10, 99], "timestamp": [1, 2]})
    with pytest.warns(UserWarning, match="^validation_in dropped 1 of 2 events"):
        neg().fit(df, validation_data=(unknown, val_in.iloc[[2]]))
    with pytest.raises(ValueError, match="column 'item_id' not in validation_out"):
        neg().fit(df, validation_data=(val_in, val_in.drop(columns="item_id")))


def test_input_warnings_point_at_the_callers_line():
    est = neg().fit(events())
    df = events()
    df.loc[[1], "item_id"] = [99]
    calls = {
        "predict": lambda: est.predict(df),
        "next_item_ranks": lambda: est.next_item_ranks(df),
        "score": lambda: est.score(df),
        "recommend": lambda: est.recommend([99, df["item_id"][0]], k=2),
        "fit validation": lambda: neg(max_epochs=1).fit(events(), validation_data=(df, df)),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        unknown = [w for w in caught if re.search("dropped|skipped", str(w.message))]
        assert unknown, name
        assert all(w.filename == __file__ for w in unknown), (name, unknown[0].filename)


def test_stop_early_without_validation_data_warns():
    with pytest.warns(UserWarning, match="stop_early=True has no effect without validation_data"):
        neg(max_epochs=1, stop_early=True).fit(events())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neg(max_epochs=1).fit(events())


def test_ids_of_another_kind_are_named_in_plain_words():
    est = neg().fit(events().assign(item_id=lambda d: d["item_id"].map(lambda i: f"i{i}")))
    with pytest.warns(UserWarning, match="ids are numbers but the model's item ids are strings"):
        est.recommend([1, 2], k=2)
    mixed = neg().fit(
        events().assign(item_id=lambda d: [f"i{i}" if i % 2 else i for i in d["item_id"]])
    )
    with pytest.warns(UserWarning, match="item ids are a mix of types") as caught:
        mixed.recommend([1.5], k=2)
    assert "mixeds" not in str(caught[0].message)


def test_a_criterion_blind_on_a_small_catalogue_warns():
    df = events()
    n_items = df["item_id"].nunique()
    val = (df, df)
    with pytest.warns(UserWarning, match=rf"recall@50 has the same value .* {n_items} items"):
        neg(max_epochs=1).fit(df, validation_data=val)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neg(max_epochs=1, stopping_criterion="mrr").fit(df, validation_data=val)


def test_a_model_fitted_on_indices_reads_a_frames_item_ids_as_indices():
    X = InteractionMatrix(
        pd.DataFrame({"u": [0, 0, 1, 1, 1], "i": [0, 1, 2, 1, 0], "t": [1, 2, 1, 2, 3]}),
        "i",
        "u",
        "t",
        shape=(2, 30),
    )
    est = neg(max_epochs=1).fit(X)
    frame = pd.DataFrame({"session_id": [7, 7], "item_id": [0, 1], "timestamp": [1, 2]})
    pred = est.predict(frame)
    assert pred.shape == (1, 30)
    ids, scores = est.recommend([0, 1], k=30)  # the same session, as indices
    np.testing.assert_allclose(pred.toarray()[0, ids], scores, rtol=1e-6)
    with pytest.warns(UserWarning, match="dropped 1 of 2 events"):
        est.predict(frame.assign(item_id=[0, 99]))


def test_a_batch_larger_than_the_sessions_warns():
    df = events()
    n_sessions = df["session_id"].nunique()
    with pytest.warns(UserWarning, match=rf"batch_size=64 is more than the {n_sessions} training"):
        neg(max_epochs=1, batch_size=64).fit(df)


def test_a_full_softmax_on_a_large_catalogue_warns_before_training(monkeypatch):
    monkeypatch.setattr(advice, "LARGE_STEP", 1)
    calls = []
    with pytest.warns(UserWarning, match="scores all .* items at every step.*GRU4RecNegSampling"):
        GRU4RecCrossEntropy(max_epochs=1, batch_size=2, hidden_size=8, seed=0).fit(
            events(), callbacks=[lambda est, rec: calls.append(rec)]
        )
    assert len(calls) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sampled losses never score the whole catalogue
        neg(max_epochs=1).fit(events())


def test_scoring_a_frame_that_shares_sessions_with_the_training_frame_warns():
    df = make_synthetic_sessions(n_sessions=60, n_items=20, seed=3)
    rows = np.random.default_rng(0).permutation(len(df))
    train, test = df.iloc[rows[: len(df) // 2]], df.iloc[rows[len(df) // 2 :]]  # KFold-like
    est = neg(max_epochs=1).fit(train)
    with pytest.warns(UserWarning, match=r"X shares \d+ of its \d+ sessions with the frame"):
        est.score(test)
    sessions = df["session_id"].unique()
    by_session = df[df["session_id"].isin(sessions[:40])]
    other = df[df["session_id"].isin(sessions[40:])]
    est = neg(max_epochs=1).fit(by_session)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.score(other)  # disjoint sessions
        est.score(by_session)  # the training data itself
        est.fit(InteractionMatrix.from_events(by_session)).score(test)  # fitted on a matrix
