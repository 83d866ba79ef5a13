"""Reliability (issue 7): bad input, random logs and parameters, numerical faults, interrupted
training, the GPU code paths run on the CPU, and torch's global thread settings.

Every fit here is tiny (a handful of sessions, hidden size 8, one torch thread) so the whole
module runs in well under a minute.
"""

from __future__ import annotations

import copy
import functools
import inspect
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import gru4rec.estimator as est_module
import gru4rec.training as training_module
from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec.estimator import TrainingDivergedError
from gru4rec.model import GRU4RecNet
from gru4rec.optim import RowSparseOptimizer


@pytest.fixture(autouse=True, scope="module")
def _small_negative_buffers():
    # The sampler draws 2**22 negatives per refill by default, which dominates a fit of a few
    # dozen events. A smaller buffer changes nothing but the chunking of the draws, and every
    # fit of this module (references included) uses it.
    real = est_module.NegativeSampler
    with pytest.MonkeyPatch.context() as mp:
        if "buffer_size" in inspect.signature(real).parameters:
            mp.setattr(est_module, "NegativeSampler", functools.partial(real, buffer_size=4096))
        yield


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
    model = GRU4RecNet(
        est.n_items_,
        hidden_size=est.hidden_size,
        num_layers=est.num_layers,
        embedding_size=est.num_components,
        constrained=est.constrained_embedding,
    )
    model.reset_parameters(torch.Generator().manual_seed(est.seed_))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def all_finite(est) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in est.model_.state_dict().values())


# =============================================================================================
# Bad input: a ValueError (or a warning with counts) that names the problem
# =============================================================================================


def test_empty_dataframe_raises():
    with pytest.raises(ValueError, match="empty"):
        neg().fit(events().iloc[:0])


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


def test_sparse_matrix_without_timestamps_raises():
    with pytest.raises(TypeError, match="timestamps"):
        neg().fit(sp.csr_matrix(np.ones((2, 3))))


def test_only_single_event_sessions_raises():
    df = pd.DataFrame({"session_id": [0, 1, 2], "item_id": [5, 6, 5], "timestamp": [1, 2, 3]})
    with pytest.raises(ValueError, match="2 or more events"):
        neg().fit(df)


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


@pytest.mark.parametrize("kind", ["str", "object", "bool"])
def test_non_numeric_timestamps_raise(kind):
    df = events()
    df["timestamp"] = {
        "str": df["timestamp"].astype(str),
        "object": df["timestamp"].astype(object),
        "bool": df["timestamp"] > 5,
    }[kind]
    with pytest.raises(ValueError, match="timestamp"):
        neg().fit(df)


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
    real = est_module.train_epoch
    monkeypatch.setattr(est_module, "train_epoch", lambda *a, **k: calls.append(1) or real(*a, **k))
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
    with pytest.warns(UserWarning, match=r"dropped 2 of 12 events.*2 unknown items"):
        pred = est.predict(df)
    assert pred.shape == (4, 5)
    assert np.isfinite(pred.data).all()
    with pytest.warns(UserWarning, match="2 unknown items"):
        ranks = est.next_item_ranks(df)
    assert ((ranks >= 1) & (ranks <= 5)).all()
    with pytest.raises(ValueError, match="none of the 12 events"):
        est.predict(df.assign(item_id=99))


def test_recommend_with_unknown_items_warns_with_count():
    est = neg().fit(events())
    with pytest.warns(UserWarning, match="skipped 2 of 4 items"):
        ids, scores = est.recommend([[10, 99], [-5, 11]], k=3)
    assert ids.shape == scores.shape == (2, 3)
    assert np.isfinite(scores).all()
    assert set(ids.ravel()) <= {10, 11, 12, 13, 14}
    with pytest.raises(ValueError, match="k must be"):
        est.recommend([10], k=0)
    with pytest.raises(ValueError, match="sessions"):
        est.recommend(None)


@pytest.mark.filterwarnings("ignore:recommend skipped")
def test_recommend_with_an_unknown_id_of_another_type_skips_only_that_id():
    est = neg().fit(events())
    with pytest.warns(UserWarning, match="skipped 1 of 3 items"):
        ids, _ = est.recommend([[10, 11], ["x"]], k=3)
    expected, _ = est.recommend([[10, 11], []], k=3)
    np.testing.assert_array_equal(ids, expected)


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


BAD_PARAMS = [
    # strings, floats, bools and None where an int is needed
    ("hidden_size", "8"),
    ("hidden_size", 8.0),
    ("hidden_size", True),
    ("hidden_size", None),
    ("num_layers", "1"),
    ("num_layers", 1.0),
    ("num_layers", False),
    ("num_components", None),
    ("batch_size", np.float64(4)),
    ("batch_size", True),
    ("bptt", "1"),
    ("max_epochs", 1.5),
    ("max_epochs", None),
    ("max_iter_no_change", 2.0),
    ("predict_topK", "5"),
    ("predict_topK", 0),
    ("validation_sample_size", 1.0),
    ("seed", "1"),
    ("seed", 1.0),
    ("seed", True),
    ("seed", -1),
    # numbers
    ("learning_rate", "0.1"),
    ("learning_rate", None),
    ("learning_rate", True),
    ("learning_rate", 0.0),
    ("learning_rate", float("nan")),
    ("learning_rate", float("inf")),
    ("momentum", None),
    ("momentum", "0.1"),
    ("momentum", 1.0),
    ("dropout", "0"),
    ("dropout", None),
    ("dropout", 1.0),
    ("dropout_hidden", "0.1"),
    ("clipnorm", "1"),
    ("clipnorm", 0),
    ("min_improvement", None),
    # choices, flags, names
    ("optimization_algorithm", None),
    ("optimization_algorithm", ["sgd"]),
    ("optimization_algorithm", "adam"),
    ("stopping_criterion", None),
    ("stopping_criterion", 1),
    ("stopping_criterion", "nope"),
    ("stop_early", 1),
    ("stop_early", "yes"),
    ("keep_last", None),
    ("save_best_to_file", "no"),
    ("constrained_embedding", 0),
    ("verbose", None),
    ("session_col", None),
    ("time_col", 3),
    ("device", None),
    ("device", 0),
    ("device", "gpu"),
    ("device", "cuda:x"),
    ("device", "meta"),
]
NEG_ONLY = [
    ("loss_fn", None),
    ("loss_fn", ["bpr"]),
    ("loss_fn", "hinge"),
    ("num_negatives", None),
    ("num_negatives", 2.0),
    ("num_negatives", True),
    ("sample_alpha", None),
    ("sample_alpha", "1"),
    ("logq", "1"),
    ("bpreg", None),
    ("elu_param", -1),
]


@pytest.mark.parametrize(("param", "value"), BAD_PARAMS + NEG_ONLY)
def test_wrong_parameter_raises_value_error_naming_it(param, value):
    est = neg(**{param: value})
    with pytest.raises(ValueError, match=param):
        est.fit(events())
    assert not hasattr(est, "model_")


@pytest.mark.parametrize(("param", "value"), BAD_PARAMS[::3])
def test_wrong_parameter_cross_entropy(param, value):
    with pytest.raises(ValueError, match=param):
        xent(**{param: value}).fit(events())


def test_numpy_integers_are_accepted():
    est = neg(hidden_size=np.int64(8), batch_size=np.int32(4), seed=np.uint32(3))
    est.fit(events())
    assert est.model_.hidden_size == 8


def test_seed_beyond_64_bits_raises_naming_seed():
    with pytest.raises(ValueError, match="seed"):
        neg(seed=2**64).fit(events())


# =============================================================================================
# Property-based: random event logs x random parameter combinations
# =============================================================================================


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
            warnings.simplefilter("error")  # fitting on clean input must not warn
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
    assert (per_row <= (n_items if k is None else min(k, n_items))).all()

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


# =============================================================================================
# Numerical faults: divergence stops training and keeps the last good model
# =============================================================================================


def test_diverged_error_is_exported_by_the_package():
    import gru4rec

    assert gru4rec.TrainingDivergedError is TrainingDivergedError
    assert "TrainingDivergedError" in gru4rec.__all__


def test_huge_learning_rate_raises_diverged_error_and_keeps_initial_model():
    est = neg(learning_rate=1e30, optimization_algorithm="sgd", clipnorm=None, max_epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"epoch 0.*lower learning_rate") as info:
        est.fit(events())
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FloatingPointError)
    assert est.history_ == []
    # Diverged in the first epoch: the estimator holds its initial weights, no NaN ones.
    assert all_finite(est)
    assert_same_weights(weights(est), initial_weights(est))
    pred = est.predict(events())
    assert pred.shape == (4, 5)
    assert np.isfinite(pred.data).all()
    ranks = est.next_item_ranks(events())
    assert ((ranks >= 1) & (ranks <= 5)).all()


class _EpochCounter:
    """Wraps ``gru4rec.estimator.train_epoch`` and counts the epochs (0-based ``current``)."""

    def __init__(self, monkeypatch):
        self.current = -1
        real = est_module.train_epoch

        def wrapped(*args, **kwargs):
            self.current += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(est_module, "train_epoch", wrapped)


def _poison_loss_in_epoch(monkeypatch, epoch: int, step: int = 1) -> None:
    """From step ``step`` of epoch ``epoch`` on, the training loss is NaN: NaN gradients then
    corrupt the weights in the middle of that epoch."""
    counter = _EpochCounter(monkeypatch)
    calls = {"epoch": -1, "step": 0}

    def poison(real):
        def poisoned(*args, **kwargs):
            loss = real(*args, **kwargs)
            if calls["epoch"] != counter.current:
                calls["epoch"], calls["step"] = counter.current, 0
            calls["step"] += 1
            if counter.current == epoch and calls["step"] > step:
                if isinstance(loss, tuple):  # (loss, gradient of the scores)
                    return tuple(t * float("nan") for t in loss)
                loss = loss * float("nan")
            return loss

        return poisoned

    # Every loss goes through one of these (bpr's autograd fast path through the second, every
    # hand-differentiated step through the third).
    for name in ("_scores_to_loss", "bpr_from_factors", "_loss_value_grad"):
        monkeypatch.setattr(training_module, name, poison(getattr(training_module, name)))


@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_nan_loss_in_a_later_epoch_keeps_the_last_good_epoch(monkeypatch, make):
    df = longer_events()
    reference = make(max_epochs=2).fit(df)

    _poison_loss_in_epoch(monkeypatch, epoch=2)
    est = make(max_epochs=4)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2\b.*learning_rate"):
        est.fit(df)
    assert len(est.history_) == 2
    assert all_finite(est)
    assert_same_weights(weights(est), weights(reference))
    np.testing.assert_array_equal(dense(est.predict(df)), dense(reference.predict(df)))
    np.testing.assert_array_equal(est.next_item_ranks(df), reference.next_item_ranks(df))


def test_nan_loss_with_validation_keeps_the_best_epoch(monkeypatch):
    df = longer_events()
    X = InteractionMatrix.from_events(df)
    val = (X, X)
    reference = neg(max_epochs=2).fit(X, validation_data=val)

    _poison_loss_in_epoch(monkeypatch, epoch=2)
    est = neg(max_epochs=4)
    with pytest.raises(TrainingDivergedError, match="epoch 2"):
        est.fit(X, validation_data=val)
    assert est.best_epoch_ == reference.best_epoch_
    assert_same_weights(weights(est), weights(reference))


@pytest.mark.parametrize("n_epochs", [1, 2])
def test_weights_overflowing_in_the_last_update_of_an_epoch_are_detected(n_epochs):
    # One session of two events: one training step per epoch, so the loss of epoch 0 is
    # computed before its only update, which overflows the weights (lr 1e30, no clipping).
    # With 2 epochs, epoch 1's loss is NaN and fit falls back to the snapshot taken after
    # epoch 0, whose weights are already non-finite.
    df = pd.DataFrame({"session_id": [0, 0], "item_id": [1, 2], "timestamp": [1, 2]})
    est = neg(learning_rate=1e30, optimization_algorithm="sgd", clipnorm=None, max_epochs=n_epochs)
    with pytest.raises(TrainingDivergedError, match="epoch 0"):
        est.fit(df)
    assert all_finite(est)
    assert np.isfinite(dense(est.predict(df))).all()


# =============================================================================================
# Interrupted training: the last completed epoch is kept, with a warning
# =============================================================================================


def _interrupt_in_epoch(monkeypatch, epoch: int, after_updates: int = 1) -> None:
    """Raise KeyboardInterrupt in epoch ``epoch`` after ``after_updates`` of its weight updates,
    so the weights are half-updated when the interrupt arrives."""
    counter = _EpochCounter(monkeypatch)
    calls = {"epoch": -1, "n": 0}

    def interrupting(real):
        def update(*args, **kwargs):
            if calls["epoch"] != counter.current:
                calls["epoch"], calls["n"] = counter.current, 0
            if counter.current == epoch and calls["n"] == after_updates:
                raise KeyboardInterrupt
            calls["n"] += 1
            return real(*args, **kwargs)

        return update

    # Autograd steps update through the first, hand-differentiated ones through the second.
    for name in ("_update", "_update_direct"):
        monkeypatch.setattr(training_module, name, interrupting(getattr(training_module, name)))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_keyboard_interrupt_mid_epoch_keeps_last_completed_epoch(monkeypatch, k, make):
    df = longer_events()
    reference = make(max_epochs=k).fit(df)

    _interrupt_in_epoch(monkeypatch, epoch=k, after_updates=2)
    est = make(max_epochs=4)
    with pytest.warns(UserWarning, match=rf"interrupted during epoch {k}\b.*after epoch {k - 1}"):
        returned = est.fit(df)
    assert returned is est
    assert len(est.history_) == k
    assert [h["epoch"] for h in est.history_] == list(range(k))
    assert_same_weights(weights(est), weights(reference))
    np.testing.assert_array_equal(dense(est.predict(df)), dense(reference.predict(df)))


def test_keyboard_interrupt_in_first_epoch_keeps_initial_model(monkeypatch):
    df = longer_events()
    _interrupt_in_epoch(monkeypatch, epoch=0, after_updates=2)
    est = neg(max_epochs=3)
    with pytest.warns(UserWarning, match="interrupted.*no epoch completed"):
        est.fit(df)
    assert est.history_ == []
    assert_same_weights(weights(est), initial_weights(est))
    assert np.isfinite(dense(est.predict(df))).all()


def test_keyboard_interrupt_between_epochs_via_train_epoch(monkeypatch):
    """The brief's variant: train_epoch itself raises on its 3rd call."""
    df = longer_events()
    reference = neg(max_epochs=2).fit(df)
    real = est_module.train_epoch
    calls = []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(est_module, "train_epoch", interrupting)
    est = neg(max_epochs=5)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(df)
    assert len(est.history_) == 2
    np.testing.assert_array_equal(dense(est.predict(df)), dense(reference.predict(df)))
    # The estimator is not left in a broken state: a plain refit works and matches a fresh fit.
    monkeypatch.setattr(est_module, "train_epoch", real)
    est.set_params(max_epochs=2).fit(df)
    assert_same_weights(weights(est), weights(reference))


def test_keyboard_interrupt_with_validation_keeps_best_epoch(monkeypatch):
    df = longer_events()
    X = InteractionMatrix.from_events(df)
    reference = neg(max_epochs=2).fit(X, validation_data=(X, X))
    _interrupt_in_epoch(monkeypatch, epoch=2, after_updates=1)
    est = neg(max_epochs=4)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X, validation_data=(X, X))
    assert est.best_epoch_ == reference.best_epoch_
    assert_same_weights(weights(est), weights(reference))


# =============================================================================================
# GPU code paths, exercised on the CPU
# =============================================================================================


_REAL_STEP_ROWS = RowSparseOptimizer.step_rows


def _accelerator_step_rows(self, *args, **kwargs):
    """RowSparseOptimizer.step_rows with the accelerator branch taken on any device."""
    self.compact = False
    return _REAL_STEP_ROWS(self, *args, **kwargs)


def _optimizer(algorithm: str, momentum: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(20, 6, generator=gen)
    dense_p = torch.nn.Parameter(torch.randn(3, 3, generator=gen))
    opt = RowSparseOptimizer(
        [dense_p], {"t": table}, algorithm=algorithm, lr=0.1, momentum=momentum
    )
    return opt, table


@pytest.mark.parametrize("algorithm", ["sgd", "adagrad"])
@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_update_repeated_matches_update_distinct(algorithm, momentum):
    cpu_opt, cpu_table = _optimizer(algorithm, momentum)
    acc_opt, acc_table = _optimizer(algorithm, momentum)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        rows = torch.randint(0, 20, (15,), generator=gen)  # with repeats
        blocks = [torch.randn(7, 6, generator=gen), torch.randn(8, 6, generator=gen)]
        cpu_opt.step_rows("t", rows, blocks)  # CPU branch: _update_distinct
        _accelerator_step_rows(acc_opt, "t", rows, [b.clone() for b in blocks])
    torch.testing.assert_close(acc_table, cpu_table, rtol=1e-6, atol=1e-6)
    for a, b in zip(acc_opt.state_tensors(), cpu_opt.state_tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # Rows never drawn are untouched by both.
    untouched = _optimizer(algorithm, momentum)[1]
    never = torch.ones(20, dtype=torch.bool)
    never[torch.randint(0, 20, (60,), generator=torch.Generator().manual_seed(1))] = False
    torch.testing.assert_close(acc_table[never], untouched[never], rtol=0, atol=0)


def test_update_repeated_equals_sequential_reference_on_repeated_rows():
    """Against a from-scratch Adagrad + momentum: repeated rows' gradients are summed once."""
    opt, table = _optimizer("adagrad", 0.5)
    start = table.clone()
    rows = torch.tensor([3, 5, 3, 3, 7])
    grad = torch.arange(30, dtype=torch.float32).reshape(5, 6) / 10
    _accelerator_step_rows(opt, "t", rows, grad)
    expected = start.clone()
    for r in (3, 5, 7):
        g = grad[rows == r].sum(0)
        acc = opt.eps + g * g
        expected[r] -= 0.1 * g / acc.sqrt()
    torch.testing.assert_close(table, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(optimization_algorithm="adagrad", momentum=0.0),
        dict(optimization_algorithm="sgd", momentum=0.5, constrained_embedding=True),
    ],
)
def test_fit_through_accelerator_update_branch_matches_cpu_branch(monkeypatch, params):
    df = longer_events(n_items=6)  # few items: many repeated rows per step
    cpu = neg(max_epochs=2, **params).fit(df)
    monkeypatch.setattr(RowSparseOptimizer, "step_rows", _accelerator_step_rows)
    acc = neg(max_epochs=2, **params).fit(df)
    for key, value in weights(cpu).items():
        torch.testing.assert_close(weights(acc)[key], value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense(acc.predict(df)), dense(cpu.predict(df)), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less fallback")
def test_device_auto_resolves_to_cpu_without_cuda():
    est = neg(device="auto").fit(events())
    assert est.device_ == torch.device("cpu")
    assert all(v.device.type == "cpu" for v in est.model_.state_dict().values())
    ref = neg(device="cpu").fit(events())
    np.testing.assert_array_equal(dense(est.predict(events())), dense(ref.predict(events())))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less error")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_device_cuda_without_cuda_raises_value_error(device, make):
    est = make(device=device)
    with pytest.raises(ValueError, match="CUDA is not available"):
        est.fit(events())
    assert not hasattr(est, "model_")
    with pytest.raises(ValueError, match="CUDA is not available"):
        make(device=torch.device(device)).fit(events())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-less fallback")
def test_model_trained_on_cuda_unpickles_on_the_cpu():
    est = neg().fit(events())
    state = est.__getstate__()
    state["device_"] = "cuda:0"  # as a pickle from a GPU machine says
    clone = GRU4RecNegSampling.__new__(GRU4RecNegSampling)
    with pytest.warns(UserWarning, match="not available.*CPU"):
        clone.__setstate__(copy.copy(state))
    assert clone.device_ == torch.device("cpu")
    np.testing.assert_array_equal(dense(clone.predict(events())), dense(est.predict(events())))
    # And a normal round trip keeps the CPU silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(dense(again.predict(events())), dense(est.predict(events())))


# =============================================================================================
# Memory: scoring is bounded by batch x (negatives + chunk), never users x items
# =============================================================================================


def _record_scoring(monkeypatch) -> list[tuple[str, int, int]]:
    """Record (method, rows, items) of every score product the model computes."""
    shapes: list[tuple[str, int, int]] = []
    real = GRU4RecNet.score

    def recording(out, weights, bias):
        shapes.append(("score", out.shape[0], weights.shape[0]))
        return real(out, weights, bias)

    monkeypatch.setattr(GRU4RecNet, "score", staticmethod(recording))
    return shapes


def _many_sessions(n_sessions: int = 40, n_items: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "session_id": np.repeat(np.arange(n_sessions), 3),
            "item_id": np.concatenate([np.arange(n_items), rng.integers(0, n_items, 80)]),
            "timestamp": np.arange(3 * n_sessions),
        }
    )


@pytest.mark.parametrize("loss_fn", ["bpr", "cross-entropy"])
def test_training_scores_only_batch_by_batch_plus_negatives(monkeypatch, loss_fn):
    df = _many_sessions()
    shapes = _record_scoring(monkeypatch)
    neg(loss_fn=loss_fn, batch_size=4, num_negatives=3).fit(df)
    assert shapes
    assert max(r for _, r, _ in shapes) <= 4
    assert max(c for _, _, c in shapes) <= 4 + 3  # never the 40-item catalogue


def test_next_item_ranks_scores_one_batch_and_chunk_at_a_time(monkeypatch):
    est = neg().fit(_many_sessions())
    monkeypatch.setattr(est_module, "_EVAL_SLOTS", 8)
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", 16)
    shapes = _record_scoring(monkeypatch)
    ranks = est.next_item_ranks(_many_sessions())
    assert len(ranks) == 80
    assert max(r for _, r, _ in shapes) <= 8
    assert max(c for _, _, c in shapes) <= 16


def test_predict_topk_scores_one_batch_and_chunk_at_a_time(monkeypatch):
    est = neg(predict_topK=3).fit(_many_sessions())
    reference = dense(est.predict(_many_sessions()))  # one block, one chunk
    monkeypatch.setattr(est_module, "_EVAL_SLOTS", 8)
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", 16)
    shapes = _record_scoring(monkeypatch)
    pred = est.predict(_many_sessions())
    assert pred.nnz == 40 * 3
    assert max(c for _, _, c in shapes) <= 16
    assert max(r for _, r, _ in shapes) <= 8
    # Blocks of rows and chunks of items change nothing in the result.
    np.testing.assert_allclose(dense(pred), reference, rtol=1e-6, atol=1e-6)


# =============================================================================================
# Threads: fit and inference restore torch's thread settings when they return
# =============================================================================================


@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_fit_and_inference_leave_torch_thread_settings_alone(make):
    before = torch.get_num_threads()
    interop = torch.get_num_interop_threads()
    torch.set_num_threads(2)  # not 1, not the module's setting: a reset would show
    try:
        est = make(max_epochs=1)
        est.fit(events(), validation_data=(events(), events()))
        assert torch.get_num_threads() == 2
        est.predict(events())
        est.next_item_ranks(events())
        est.recommend([10, 11])
        est.score(events())
        assert torch.get_num_threads() == 2
        assert torch.get_num_interop_threads() == interop
    finally:
        torch.set_num_threads(before)


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


@pytest.mark.parametrize("loss_fn", ["cross-entropy", "bpr-max", "bpr", "top1-max"])
def test_accelerator_sampling_path_trains_like_the_cpu_path(monkeypatch, loss_fn):
    # On a GPU, negatives stay duplicated columns and the optimiser takes its no-sync
    # branch; on the CPU, distinct negatives are weighted and rows compacted. Both must
    # train the same model (up to float rounding): run the accelerator path here.
    import gru4rec.optim as optim_module

    df = _many_sessions()
    params = dict(loss_fn=loss_fn, num_negatives=64, sample_alpha=1.0, max_epochs=2)
    cpu_path = neg(**params).fit(df)

    from gru4rec.samplers import NegativeSampler

    class Duplicated(NegativeSampler):
        def __init__(self, *args, **kwargs):
            kwargs["dedup"] = False
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(est_module, "NegativeSampler", Duplicated)
    monkeypatch.setattr(optim_module.RowSparseOptimizer, "step_rows", _accelerator_step_rows)
    accel_path = neg(**params).fit(df)
    losses_cpu = [h["train_loss"] for h in cpu_path.history_]
    losses_acc = [h["train_loss"] for h in accel_path.history_]
    np.testing.assert_allclose(losses_acc, losses_cpu, rtol=1e-4)
    np.testing.assert_allclose(
        dense(accel_path.predict(df)), dense(cpu_path.predict(df)), rtol=1e-3, atol=1e-4
    )


@pytest.mark.parametrize("bptt", [1, 3])
@pytest.mark.parametrize("constrained", [True, False])
def test_bias_update_sharing_the_output_rows_pass_equals_its_own_update(
    monkeypatch, bptt, constrained
):
    # The output bias is updated in item_output's pass (its rows lead that pass); it must
    # equal a separate update of the bias at exactly the output rows.
    df = _many_sessions()
    params = dict(bptt=bptt, constrained_embedding=constrained, momentum=0.3, max_epochs=2)
    shared = neg(**params).fit(df)

    def plain_update(model, optimizer, updates, clipnorm):
        # The straightforward semantics: each table updated on its own, at its own rows.
        if clipnorm is not None:
            grads = [p.grad for p in model.dense_parameters() if p.grad is not None]
            training_module.clip_grad_norm(grads + [leaf.grad for _, leaf, _ in updates], clipnorm)
        optimizer.step_dense()
        per_table: dict[str, tuple[list, list]] = {}
        for name, leaf, rows in updates:
            entry = per_table.setdefault(name.split(":")[0], ([], []))
            entry[0].append(rows)
            entry[1].append(leaf.grad)
        for name, (rows, grads) in per_table.items():
            optimizer.step_rows(name, torch.cat(rows), torch.cat(grads))

    monkeypatch.setattr(training_module, "_update", plain_update)
    reference = neg(**params).fit(df)
    for key, value in reference.model_.state_dict().items():
        torch.testing.assert_close(shared.model_.state_dict()[key], value, rtol=1e-5, atol=1e-6)
