"""Model selection and persistence: early stopping, best-epoch restore, save/load, pickling."""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError

from gru4rec import (
    GRU4RecCrossEntropy,
    GRU4RecNegSampling,
    InteractionMatrix,
    StoppingCriterion,
    metrics,
)
from gru4rec.checkpoint import FORMAT, CheckpointError
from gru4rec.datasets import last_item_split, make_synthetic_sessions, time_split
from gru4rec.holdout import Validation

SMALL = dict(hidden_size=16, batch_size=32, num_negatives=16, device="cpu", seed=0)


def small(**kw) -> GRU4RecNegSampling:
    return GRU4RecNegSampling(**{**SMALL, "max_epochs": 3, **kw})


@pytest.fixture(scope="module")
def data(split):
    _, _, X, X_test = split
    val_in, val_out = last_item_split(X_test)
    return X, X_test, val_in, val_out


def _events(*matrices: InteractionMatrix) -> pd.DataFrame:
    """The events of the matrices as one raw-id event log (session_id, item_id, timestamp)."""
    df = pd.concat([m.to_dataframe(raw_ids=True) for m in matrices], ignore_index=True)
    return df.rename(columns={"uid": "session_id", "iid": "item_id", "ts": "timestamp"})


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


@pytest.fixture(scope="module")
def reference(data):
    """Predictions on X_test of a model trained for e epochs without validation (same seed)."""
    X, X_test, _, _ = data
    cache: dict[int, np.ndarray] = {}

    def get(epochs: int) -> np.ndarray:
        if epochs not in cache:
            cache[epochs] = _dense(small(max_epochs=epochs).fit(X).predict(X_test))
        return cache[epochs]

    return get


def _script(monkeypatch, values):
    """Make the per-epoch criterion evaluation return ``values`` in turn."""
    it = iter(values)
    calls = []

    def fake(self, criterion, scorer, rng):
        calls.append(criterion.name)
        return next(it)

    monkeypatch.setattr(Validation, "evaluate", fake)
    return calls


FILENAME = re.compile(r"^GRU4RecNegSampling_loss_\d\.\d+(e-\d+)?\.trch$")


# -- every combination ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep_last", [False, True])
@pytest.mark.parametrize("save_best_to_file", [False, True])
@pytest.mark.parametrize("with_validation", [False, True])
def test_every_combination_fits_and_predicts(
    data, reference, tmp_path, monkeypatch, keep_last, save_best_to_file, with_validation
):
    monkeypatch.chdir(tmp_path)
    X, X_test, val_in, val_out = data
    m = small(keep_last=keep_last, save_best_to_file=save_best_to_file)
    validation = (val_in, val_out) if with_validation else None
    assert m.fit(X, validation_data=validation) is m
    pred = _dense(m.predict(X_test))
    assert pred.shape == X_test.shape
    assert len(m.history_) == 3

    if with_validation:
        values = [rec["recall"] for rec in m.history_]
        assert m.best_value_ == pytest.approx(max(values))
        assert m.best_epoch_ == int(np.argmax(values))  # first best (ties are not better)
        assert FILENAME.match(m.filename), m.filename
        assert m.filename == f"GRU4RecNegSampling_loss_{m.best_value_}.trch"  # recpack's format
        expected_epochs = 3 if keep_last else m.best_epoch_ + 1
    else:
        assert m.best_value_ is None and m.best_epoch_ is None
        assert all("recall" not in rec for rec in m.history_)
        expected_epochs = 3
    np.testing.assert_array_equal(pred, reference(expected_epochs))

    files = sorted(os.listdir(tmp_path))
    if save_best_to_file:
        assert files == [m.filename]  # no temporary file left behind
        loaded = GRU4RecNegSampling().load(m.filename)
        np.testing.assert_array_equal(_dense(loaded.predict(X_test)), pred)
    else:
        assert files == []


# -- early stopping on scripted values -------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kwargs", "n_epochs", "best_epoch"),
    [
        # 0.2 and 0.25 do not beat 0.3: patience 2 used up after epoch 3.
        ([0.1, 0.3, 0.2, 0.25, 0.29, 0.5], {"max_iter_no_change": 2}, 4, 1),
        # Equal is not better.
        ([0.4, 0.4, 0.4, 0.4, 0.9], {"max_iter_no_change": 3}, 4, 0),
        # +0.04 is not more than min_improvement 0.05, +0.06 is, +0.05 (0.21 - 0.16) is not.
        (
            [0.1, 0.14, 0.16, 0.2, 0.21, 0.9],
            {"max_iter_no_change": 2, "min_improvement": 0.05},
            5,
            2,
        ),
        # Patience 1: the first non-improving epoch stops.
        ([0.1, 0.2, 0.3, 0.1, 0.9], {"max_iter_no_change": 1}, 4, 2),
        # Never stalls: runs to max_epochs.
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], {"max_iter_no_change": 1}, 6, 5),
    ],
)
def test_early_stopping_stops_at_the_right_epoch(
    data, monkeypatch, values, kwargs, n_epochs, best_epoch
):
    X, _, val_in, val_out = data
    calls = _script(monkeypatch, values)
    m = small(max_epochs=6, stop_early=True, hidden_size=8, **kwargs)
    m.fit(X, validation_data=(val_in, val_out))
    assert len(m.history_) == n_epochs
    assert len(calls) == n_epochs
    assert [rec["recall"] for rec in m.history_] == values[:n_epochs]
    assert m.best_epoch_ == best_epoch
    assert m.best_value_ == values[best_epoch]
    improved = [rec["improved"] for rec in m.history_]
    assert improved[best_epoch] is True
    assert not any(improved[best_epoch + 1 :])


def test_without_stop_early_every_epoch_runs(data, monkeypatch):
    X, _, val_in, val_out = data
    _script(monkeypatch, [0.5, 0.1, 0.1, 0.1])
    m = small(max_epochs=4, stop_early=False, max_iter_no_change=1, hidden_size=8)
    m.fit(X, validation_data=(val_in, val_out))
    assert len(m.history_) == 4
    assert m.best_epoch_ == 0


def test_without_validation_data_no_evaluation_runs(data, monkeypatch):
    X, _, _, _ = data
    calls = _script(monkeypatch, [])
    m = small(max_epochs=3, stop_early=True, max_iter_no_change=1, hidden_size=8).fit(X)
    assert calls == []
    assert len(m.history_) == 3


def _scripted_metric(ranks, values):
    return values.pop(0)


def test_criterion_instance_minimized_with_own_name(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, _, val_in, val_out = data
    values = [1.0, 0.8, 0.9, 0.85, 0.1]
    crit = StoppingCriterion(
        _scripted_metric, minimize=True, needs="ranks", name="scripted", values=values
    )
    m = small(max_epochs=5, stop_early=True, max_iter_no_change=2, stopping_criterion=crit)
    m.fit(X, validation_data=(val_in, val_out))
    assert len(m.history_) == 4
    assert (m.best_epoch_, m.best_value_) == (1, 0.8)
    assert m.filename == "GRU4RecNegSampling_loss_0.8.trch"
    assert m.get_params()["stopping_criterion"] is crit  # the parameter is not replaced
    assert crit.best_value is None  # fit works on a copy


@pytest.mark.parametrize("name", sorted(StoppingCriterion.FUNCTIONS))
def test_every_named_criterion_runs_and_keeps_its_name(data, name):
    X, _, val_in, val_out = data
    m = small(max_epochs=2, hidden_size=8, stopping_criterion=name)
    m.fit(X, validation_data=(val_in, val_out))
    assert m.get_params()["stopping_criterion"] == name
    values = [rec[name] for rec in m.history_]
    assert all(np.isfinite(values))
    minimize = StoppingCriterion.FUNCTIONS[name]["minimize"]
    best = min(values) if minimize else max(values)
    assert m.best_value_ == pytest.approx(best)
    assert m.best_epoch_ == values.index(best)
    assert m.filename == f"GRU4RecNegSampling_loss_{m.best_value_}.trch"


# -- best weights restored -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "keep_last", "expected_epochs"),
    [
        ([0.9, 0.1, 0.1], False, 1),
        ([0.1, 0.9, 0.2], False, 2),
        ([0.1, 0.2, 0.3], False, 3),
        ([0.9, 0.1, 0.1], True, 3),
    ],
)
def test_restored_weights_are_those_of_the_best_epoch(
    data, reference, monkeypatch, values, keep_last, expected_epochs
):
    X, X_test, val_in, val_out = data
    _script(monkeypatch, values)
    m = small(max_epochs=3, keep_last=keep_last).fit(X, validation_data=(val_in, val_out))
    np.testing.assert_array_equal(_dense(m.predict(X_test)), reference(expected_epochs))


def test_restored_model_reproduces_the_best_criterion_value(data):
    X, _, val_in, val_out = data
    m = small(max_epochs=3, learning_rate=0.2).fit(X, validation_data=(val_in, val_out))
    m.set_params(predict_topK=50)
    value = metrics.recall_k(val_out.values, m.predict(val_in), k=50)
    assert value == pytest.approx(m.best_value_, abs=1e-9)


def test_next_item_criterion_value_matches_hand_computation(data):
    X, _, val_in, val_out = data
    m = small(max_epochs=1, stopping_criterion="mrr").fit(X, validation_data=(val_in, val_out))
    # 'mrr': MRR@20 at every position of the validation sessions (input + held-out items).
    full = InteractionMatrix.from_events(
        _events(val_in, val_out), item_vocabulary=val_in.item_vocabulary
    )
    expected = metrics.mrr_at_k(m.next_item_ranks(full), 20)
    assert m.history_[0]["mrr"] == pytest.approx(expected, abs=1e-9)


# -- validation_sample_size ----------------------------------------------------------------------


def _recording_criterion(log):
    def func(y_true, y_pred, k):
        log.append(tuple(np.flatnonzero(y_true.getnnz(axis=1)).tolist()))
        return metrics.recall_k(y_true, y_pred, k=k)

    return StoppingCriterion(func, needs="topk", k=10, name="rec")


def _sampled_users(data, seed, size):
    X, _, val_in, val_out = data
    log: list[tuple[int, ...]] = []
    m = small(
        max_epochs=3,
        hidden_size=8,
        seed=seed,
        validation_sample_size=size,
        stopping_criterion=_recording_criterion(log),
    )
    m.fit(X, validation_data=(val_in, val_out))
    return log, m


def test_validation_sample_size_uses_own_generator(data):
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    np_state = np.random.get_state()  # noqa: NPY002
    torch_state = torch.get_rng_state()
    a, ma = _sampled_users(data, seed=1, size=5)
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)

    _, _, val_in, val_out = data
    eligible = set(val_in.session_arrays().users.tolist()) & set(
        np.flatnonzero(val_out.values.getnnz(axis=1)).tolist()
    )
    assert len(eligible) > 10
    assert len(a) == 3
    assert all(len(users) == 5 and set(users) <= eligible for users in a)
    assert len(set(a)) > 1  # a new subset every epoch

    b, mb = _sampled_users(data, seed=1, size=5)
    c, _ = _sampled_users(data, seed=2, size=5)
    assert a == b
    assert [r["rec"] for r in ma.history_] == [r["rec"] for r in mb.history_]
    assert a != c


def test_without_validation_sample_size_every_eligible_user_is_evaluated(data):
    _, _, val_in, _ = data
    log, _ = _sampled_users(data, seed=1, size=None)
    assert all(users == log[0] for users in log)
    assert len(log[0]) == len(val_in.session_arrays().users)


# -- save / load ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(data):
    X, _, val_in, val_out = data
    return small(max_epochs=2, predict_topK=7, constrained_embedding=True).fit(
        X, validation_data=(val_in, val_out)
    )


def test_save_then_load_on_a_fresh_instance(fitted, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, X_test, _, _ = data
    fitted.save()
    assert os.listdir(tmp_path) == [fitted.filename]
    assert FILENAME.match(fitted.filename)
    loaded = GRU4RecNegSampling()
    assert loaded.load(fitted.filename) is loaded
    assert loaded.get_params() == fitted.get_params()
    assert loaded.n_items_ == fitted.n_items_
    assert (loaded.best_value_, loaded.best_epoch_) == (fitted.best_value_, fitted.best_epoch_)
    assert loaded.history_ == fitted.history_
    assert np.array_equal(loaded.item_vocabulary_.ids, fitted.item_vocabulary_.ids)
    assert loaded.filename == fitted.filename
    a, b = fitted.predict(X_test), loaded.predict(X_test)
    assert a.nnz == b.nnz and np.all(b.getnnz(axis=1) <= 7)
    np.testing.assert_array_equal(_dense(a), _dense(b))
    np.testing.assert_array_equal(fitted.next_item_ranks(X_test), loaded.next_item_ranks(X_test))
    # The id map came back too: raw-id DataFrames predict the same.
    df = _events(X_test)
    np.testing.assert_array_equal(_dense(loaded.predict(df)), _dense(fitted.predict(df)))


def test_load_replaces_a_fitted_model(fitted, data, tmp_path):
    X, X_test, _, _ = data
    path = tmp_path / "model.trch"
    # save() writes self.filename in the cwd; load() takes any path.
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        fitted.save()
        os.replace(fitted.filename, path)
    finally:
        os.chdir(old)
    other = small(max_epochs=1, hidden_size=8, seed=9).fit(X)
    other.load(str(path))
    assert other.hidden_size == 16
    np.testing.assert_array_equal(_dense(other.predict(X_test)), _dense(fitted.predict(X_test)))


def test_save_before_fit_raises(tmp_path, monkeypatch):
    from sklearn.exceptions import NotFittedError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFittedError):
        small().save()
    assert os.listdir(tmp_path) == []


def test_load_into_the_other_class_raises(fitted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fitted.save()
    with pytest.raises(ValueError, match="GRU4RecNegSampling"):
        GRU4RecCrossEntropy().load(fitted.filename)


def test_cross_entropy_estimator_save_load(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, X_test, val_in, val_out = data
    params = {k: v for k, v in SMALL.items() if k != "num_negatives"}
    m = GRU4RecCrossEntropy(max_epochs=1, save_best_to_file=True, **params)
    m.fit(X, validation_data=(val_in, val_out))
    assert re.match(r"^GRU4RecCrossEntropy_loss_\d\.\d+\.trch$", m.filename)
    assert os.listdir(tmp_path) == [m.filename]
    loaded = GRU4RecCrossEntropy().load(m.filename)
    np.testing.assert_array_equal(_dense(loaded.predict(X_test)), _dense(m.predict(X_test)))


def _named_recall20(y_true, y_pred, k):
    return metrics.recall_k(y_true, y_pred, k=k)


def test_save_load_with_a_criterion_instance(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, X_test, val_in, val_out = data
    crit = StoppingCriterion(_named_recall20, k=20, name="recall20")
    m = small(max_epochs=1, stopping_criterion=crit, save_best_to_file=True)
    m.fit(X, validation_data=(val_in, val_out))
    assert m.filename == f"GRU4RecNegSampling_loss_{m.best_value_}.trch"
    loaded = GRU4RecNegSampling().load(m.filename)
    np.testing.assert_array_equal(_dense(loaded.predict(X_test)), _dense(m.predict(X_test)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a machine without CUDA")
def test_load_model_saved_with_cuda_index_device_on_cpu_machine(fitted, data, tmp_path):
    _, X_test, _, _ = data
    import copy

    m = copy.deepcopy(fitted)
    m.set_params(device="cuda:0")  # as if it had been trained on a GPU machine
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        m.save()
        with pytest.warns(UserWarning, match="cuda:0, which is not available"):
            loaded = GRU4RecNegSampling().load(m.filename)
    finally:
        os.chdir(old)
    assert loaded.device_.type == "cpu"
    np.testing.assert_array_equal(_dense(loaded.predict(X_test)), _dense(fitted.predict(X_test)))


# -- corrupted files -----------------------------------------------------------------------------


def _saved_bytes(fitted, tmp_path) -> bytes:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        fitted.save()
        with open(fitted.filename, "rb") as fh:
            return fh.read()
    finally:
        os.chdir(old)


class _Foreign:
    pass


def _foreign_payloads(good: bytes) -> dict[str, bytes]:
    out = {
        "truncated": good[: len(good) // 2],
        "truncated-tail": good[:-10],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "text": b"GRU4RecNegSampling checkpoint\n",
    }
    for name, obj in {
        "other-torch-dict": {"a": torch.zeros(2)},
        "tensor": torch.zeros(3),
        "newer-version": {"format": FORMAT, "version": 99, "state_dict": {}, "metadata": {}},
        "no-metadata": {"format": FORMAT, "version": 1, "state_dict": {}, "metadata": None},
        "custom-object": {"format": FORMAT, "version": 1, "x": _Foreign()},
    }.items():
        buf = io.BytesIO()
        torch.save(obj, buf)
        out[name] = buf.getvalue()
    out["plain-pickle"] = pickle.dumps({"format": FORMAT})
    return out


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain-pickle payload
def test_loading_a_corrupt_or_foreign_file_raises_a_clear_error(fitted, tmp_path):
    good = _saved_bytes(fitted, tmp_path)
    for name, payload in _foreign_payloads(good).items():
        path = tmp_path / f"{name}.trch"
        path.write_bytes(payload)
        fresh = GRU4RecNegSampling()
        with pytest.raises(CheckpointError) as info:
            fresh.load(str(path))
        assert isinstance(info.value, ValueError)
        assert str(path) in str(info.value), name
        assert not hasattr(fresh, "model_"), name
    with pytest.raises(CheckpointError, match="newer"):
        GRU4RecNegSampling().load(str(tmp_path / "newer-version.trch"))


def test_loading_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        GRU4RecNegSampling().load(str(tmp_path / "nope.trch"))


# -- pickle / joblib -----------------------------------------------------------------------------


def _roundtrips(obj, tmp_path):
    yield "pickle", pickle.loads(pickle.dumps(obj))
    path = tmp_path / "model.joblib"
    joblib.dump(obj, path)
    yield "joblib", joblib.load(path)


def test_pickle_and_joblib_of_a_fitted_estimator(fitted, data, tmp_path):
    _, X_test, _, _ = data
    expected = _dense(fitted.predict(X_test))
    ranks = fitted.next_item_ranks(X_test)
    for how, copy_ in _roundtrips(fitted, tmp_path):
        assert copy_.get_params() == fitted.get_params(), how
        np.testing.assert_array_equal(_dense(copy_.predict(X_test)), expected)
        np.testing.assert_array_equal(copy_.next_item_ranks(X_test), ranks)
        assert copy_.score(X_test) == fitted.score(X_test)
        assert copy_.history_ == fitted.history_ and copy_.seed_ == fitted.seed_
        assert copy_.best_value_ == fitted.best_value_
        assert copy_.filename == fitted.filename


def test_pickle_and_joblib_of_an_unfitted_estimator(data, tmp_path):
    X, X_test, _, _ = data
    m = small(max_epochs=1, dropout=0.1, sample_alpha=0.5)
    expected = _dense(small(max_epochs=1, dropout=0.1, sample_alpha=0.5).fit(X).predict(X_test))
    for how, copy_ in _roundtrips(m, tmp_path):
        assert copy_.get_params() == m.get_params(), how
        assert not hasattr(copy_, "model_")
        with pytest.raises(NotFittedError):
            copy_.predict(X_test)
        np.testing.assert_array_equal(_dense(copy_.fit(X).predict(X_test)), expected)


def test_unpickled_estimator_can_be_refit(fitted, data, reference):
    X, X_test, _, _ = data
    m = pickle.loads(pickle.dumps(fitted))
    m.set_params(predict_topK=None, constrained_embedding=False, max_epochs=2)
    m.fit(X)
    np.testing.assert_array_equal(_dense(m.predict(X_test)), reference(2))


def test_pickle_of_cross_entropy_estimator(data):
    X, X_test, _, _ = data
    params = {k: v for k, v in SMALL.items() if k != "num_negatives"}
    m = GRU4RecCrossEntropy(max_epochs=1, **params).fit(X)
    copy_ = pickle.loads(pickle.dumps(m))
    assert type(copy_) is GRU4RecCrossEntropy and copy_.get_params() == m.get_params()
    np.testing.assert_array_equal(_dense(copy_.predict(X_test)), _dense(m.predict(X_test)))
    np.testing.assert_array_equal(copy_.next_item_ranks(X_test), m.next_item_ranks(X_test))
    assert copy_.score(X_test) == m.score(X_test)
    assert copy_.seed_ == m.seed_ and copy_.history_ == m.history_


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_trained_on_cuda_unpickles_and_loads_on_cpu(data, tmp_path, monkeypatch):
    X, X_test, _, _ = data
    m = small(max_epochs=1, device="cuda").fit(X)
    blob = pickle.dumps(m)
    expected = _dense(m.predict(X_test))
    monkeypatch.chdir(tmp_path)
    m.save()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    copy_ = pickle.loads(blob)
    assert copy_.device_.type == "cpu"
    np.testing.assert_allclose(_dense(copy_.predict(X_test)), expected, rtol=1e-4, atol=1e-4)
    loaded = GRU4RecNegSampling().load(m.filename)
    assert loaded.device_.type == "cpu"
    np.testing.assert_allclose(_dense(loaded.predict(X_test)), expected, rtol=1e-4, atol=1e-4)


# -- validation data given as DataFrames -----------------------------------------------------


def test_validation_dataframes_use_the_training_vocabulary(data):
    df = make_synthetic_sessions(200, 40, seed=5)
    train, test = time_split(df, test_days=0.01)
    last = test.groupby("session_id").tail(1)
    first = test.drop(last.index)
    X = InteractionMatrix.from_events(train)
    val_in = InteractionMatrix.from_events(
        first, item_vocabulary=X.item_vocabulary, user_vocabulary=None
    )
    val_out = InteractionMatrix.from_events(
        last, item_vocabulary=X.item_vocabulary, user_vocabulary=val_in.user_vocabulary
    )
    a = small(max_epochs=2).fit(X, validation_data=(val_in, val_out))
    b = small(max_epochs=2).fit(train, validation_data=(first, last))
    assert [r["recall"] for r in b.history_] == [r["recall"] for r in a.history_]


def test_save_with_a_torch_device_parameter(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, X_test, _, _ = data
    m = small(max_epochs=1, device=torch.device("cpu")).fit(X)
    m.save()
    loaded = GRU4RecNegSampling().load(m.filename)
    np.testing.assert_array_equal(_dense(loaded.predict(X_test)), _dense(m.predict(X_test)))


def test_save_load_keeps_the_type_of_each_item_id(tmp_path):
    """Ids mixing ints and strings come back as they were: 7 stays an int, '8' a string."""
    df = pd.DataFrame(
        {"session_id": [0, 0, 0, 1, 1], "item_id": [7, "8", 9, "8", 7], "timestamp": range(5)}
    )
    model = small(max_epochs=1).fit(df)
    loaded = GRU4RecNegSampling().load(model.save(tmp_path / "m.trch"))
    assert [type(v) for v in loaded.item_vocabulary_.ids] == [int, str, int]
    np.testing.assert_array_equal(
        loaded.recommend([7, "8"], k=3)[0], model.recommend([7, "8"])[0][:3]
    )


def test_item_ids_a_model_file_cannot_hold_are_a_clear_error_before_training(tmp_path):
    import uuid

    df = pd.DataFrame(
        {
            "session_id": [0, 0, 1, 1],
            "item_id": [uuid.UUID(int=i % 3) for i in range(4)],
            "timestamp": range(4),
        }
    )
    model = small(max_epochs=1).fit(df)  # fitting and pickling work
    assert pickle.loads(pickle.dumps(model)).recommend([df["item_id"][0]], k=2)[0].shape == (2,)
    with pytest.raises(TypeError, match=r"item ids of type UUID.*astype\(str\)"):
        model.save(tmp_path / "m.trch")
    callback_calls = []
    with pytest.raises(TypeError, match="item ids of type UUID"):
        small(max_epochs=1, save_best_to_file=True).fit(
            df, callbacks=[lambda est, rec: callback_calls.append(rec)]
        )
    assert callback_calls == []  # refused before the first epoch


def test_save_into_an_existing_directory_writes_the_default_filename_there(tmp_path):
    model = small(max_epochs=1).fit(make_synthetic_sessions(n_sessions=40, n_items=10, seed=0))
    written = model.save(tmp_path)
    assert written == tmp_path / model.filename and os.listdir(tmp_path) == [model.filename]
    assert GRU4RecNegSampling().load(written).n_items_ == model.n_items_


def test_a_failed_refit_leaves_the_fitted_estimator_as_it_was(tmp_path):
    import uuid

    events = make_synthetic_sessions(n_sessions=40, n_items=10, seed=0)
    model = small(max_epochs=1).fit(events)
    before = model.recommend([1, 2], k=3)
    state = {k: v for k, v in vars(model).items() if k.endswith("_")}
    renamed = events.assign(item_id=events["item_id"].map(lambda i: uuid.UUID(int=int(i))))
    model.set_params(save_best_to_file=True)
    with pytest.raises(TypeError, match="item ids of type UUID"):
        model.fit(renamed)
    assert {k: v for k, v in vars(model).items() if k.endswith("_")}.keys() == state.keys()
    assert all(getattr(model, k) is v for k, v in state.items())
    after = model.recommend([1, 2], k=3)
    np.testing.assert_array_equal(after[0], before[0])


def test_damaged_weights_are_a_checkpoint_error_not_wrong_predictions(fitted, tmp_path):
    path = fitted.save(tmp_path / "m.trch")
    raw = bytearray(path.read_bytes())
    # Flip bytes inside the largest stored tensor (the item table), not in the zip headers.
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
        start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)
    for i in range(start + 8, start + 72):
        raw[i] ^= 0xFF
    damaged = tmp_path / "damaged.trch"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        GRU4RecNegSampling().load(damaged)


@pytest.mark.skipif(
    not hasattr(torch.serialization, "set_crc32_options"), reason="torch < 2.5 always writes CRCs"
)
def test_files_saved_with_torch_checksums_turned_off_still_load(fitted, tmp_path, data):
    _, X_test, _, _ = data
    torch.serialization.set_crc32_options(False)
    try:
        path = fitted.save(tmp_path / "m.trch")
    finally:
        torch.serialization.set_crc32_options(True)
    loaded = GRU4RecNegSampling().load(path)
    np.testing.assert_array_equal(_dense(loaded.predict(X_test)), _dense(fitted.predict(X_test)))


def test_loading_a_pickled_estimator_says_how_to_load_it(fitted, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fitted))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's own unpickling advice must not leak
        with pytest.raises(CheckpointError, match=r"pickle\.load") as info:
            GRU4RecNegSampling().load(path)
    assert "weights_only=False" not in str(info.value)


def test_save_to_a_path_ending_in_a_separator_writes_into_that_directory(tmp_path):
    model = small(max_epochs=1).fit(make_synthetic_sessions(n_sessions=40, n_items=10, seed=0))
    written = model.save(f"{tmp_path / 'new' / 'models'}/")
    assert written == tmp_path / "new" / "models" / model.filename
    assert written.is_file()


def test_a_failed_save_names_the_path_asked_for(tmp_path):
    model = small(max_epochs=1).fit(make_synthetic_sessions(n_sessions=40, n_items=10, seed=0))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "m.trch"  # a path under a regular file cannot be created
    with pytest.raises(OSError, match=re.escape(f"cannot write the model to {target}")) as info:
        model.save(target)
    assert ".tmp" not in str(info.value)


def test_load_keeps_a_named_criterion_with_its_own_settings(data, tmp_path):
    X, _, val_in, val_out = data
    crit = StoppingCriterion.create("mrr", k=5, min_improvement=0.01)
    m = small(max_epochs=1, stopping_criterion=crit).fit(X, validation_data=(val_in, val_out))
    loaded = GRU4RecNegSampling().load(m.save(tmp_path / "m.trch"))
    assert isinstance(loaded.stopping_criterion, StoppingCriterion)
    assert (loaded.stopping_criterion.k, loaded.stopping_criterion.min_improvement) == (5, 0.01)
    assert loaded.identifier == m.identifier
    assert "stopping_criterion=mrr(k=5,min_improvement=0.01)" in m.identifier
    # A plain name stays a plain name.
    plain = small(max_epochs=1, stopping_criterion="mrr").fit(X, validation_data=(val_in, val_out))
    assert GRU4RecNegSampling().load(plain.save(tmp_path / "p.trch")).stopping_criterion == "mrr"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_save_best_to_file_checks_the_folder_before_training(monkeypatch):
    monkeypatch.chdir("/proc")  # exists, takes no new files
    calls = []
    with pytest.raises(OSError, match="cannot write the model to"):
        small(max_epochs=1, save_best_to_file=True).fit(
            make_synthetic_sessions(n_sessions=40, n_items=10, seed=0),
            callbacks=[lambda est, rec: calls.append(rec)],
        )
    assert calls == []


@pytest.mark.parametrize(
    "ids",
    [[2**64 - 1, 2**64 - 2, 5], [2**64 - 1, 2**63, 5]],
    ids=["neighbours-above-2**63", "both-sides-of-2**63"],
)
def test_save_load_keeps_uint64_item_ids_exactly(tmp_path, ids):
    ids = np.array(ids, dtype=np.uint64)  # e.g. 64-bit hashes
    df = pd.DataFrame(
        {"session_id": [1, 1, 1, 2, 2], "item_id": ids[[0, 1, 2, 0, 1]], "timestamp": range(5)}
    )
    model = small(max_epochs=1).fit(df)
    loaded = GRU4RecNegSampling().load(model.save(tmp_path / "m.trch"))
    assert loaded.item_vocabulary_.ids.dtype == np.uint64
    np.testing.assert_array_equal(loaded.item_vocabulary_.ids, model.item_vocabulary_.ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every id is known
        got = loaded.recommend([ids[0]], k=3)
    np.testing.assert_array_equal(got[0], model.recommend([ids[0]], k=3)[0])
    assert got[0].dtype == np.uint64


FORK_AFTER_LOAD = """
import os, select, sys
import numpy as np, torch
from gru4rec import GRU4RecNegSampling
torch.set_num_threads(2)
model = GRU4RecNegSampling().load(sys.argv[1])
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # a prefork server's worker
    os.close(r)
    model.num_threads = 2
    ids = model.item_vocabulary_.ids
    model.recommend([list(np.random.default_rng(0).choice(ids, 50)) for _ in range(300)], k=20)
    os.write(w, b"ok")
    os._exit(0)
os.close(w)
ready, _, _ = select.select([r], [], [], 60)
print("ok" if ready and os.read(r, 2) == b"ok" else "hung")
if not ready:
    os.kill(pid, 9)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.slow
def test_a_worker_forked_after_load_can_use_several_threads(tmp_path):
    import subprocess
    import sys

    events = make_synthetic_sessions(n_sessions=1500, n_items=3000, seed=0)
    model = small(max_epochs=1, hidden_size=100, batch_size=64).fit(events)
    path = model.save(tmp_path / "m.trch")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_LOAD, str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "2"},
    )
    assert out.stdout.strip().splitlines()[-1] == "ok", out.stderr[-2000:]


def test_the_file_functions_work_on_plain_data_and_round_trip(fitted, data, tmp_path):
    """gru4rec.persistence holds functions over plain data: the metadata of a fitted model's
    attributes restores those attributes, and a packed state unpacks to the same network."""
    from gru4rec import persistence

    fitted_attrs = {key: getattr(fitted, key) for key in persistence.SAVED}
    meta = persistence.metadata(
        fitted.name, fitted.get_params(deep=False), fitted.model_.config(), fitted_attrs
    )
    path = persistence.write(tmp_path / "m.trch", "unused", fitted.model_.state_dict(), meta)
    weights, read_meta = persistence.read(path, fitted.name)
    plain = [k for k in meta if k != "training_state"]  # (holds tensors)
    assert [read_meta[k] for k in plain] == [meta[k] for k in plain]
    assert read_meta["training_state"].keys() == meta["training_state"].keys()
    params, restored = persistence.restored(read_meta)
    assert params == {**fitted.get_params(deep=False), "stopping_criterion": "recall"}
    assert set(restored) == set(persistence.SAVED)
    for key in ("n_items_", "seed_", "best_value_", "best_epoch_", "history_"):
        assert restored[key] == fitted_attrs[key]
    np.testing.assert_array_equal(restored["item_counts_"], fitted.item_counts_)
    assert restored["stopping_criterion_"].to_dict() == fitted.stopping_criterion_.to_dict()
    net = persistence.network(read_meta["architecture"], weights)
    for a, b in zip(net.state_dict().values(), fitted.model_.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b.cpu(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds a 'GRU4RecNegSampling' model, not a Other"):
        persistence.read(path, "Other")
    packed = persistence.pack(dict(fitted.__dict__))
    assert isinstance(packed["model_"], tuple) and fitted.model_ is not packed["model_"]
    back = persistence.unpack(packed)["model_"]
    assert back.config() == fitted.model_.config()
    for a, b in zip(back.state_dict().values(), fitted.model_.state_dict().values(), strict=True):
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0)


def test_the_file_functions_never_call_an_estimator():
    import ast
    import inspect

    from gru4rec import persistence

    tree = ast.parse(inspect.getsource(persistence))
    assert not [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert not [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "self"]


def test_a_file_whose_weights_do_not_fit_leaves_the_estimator_as_it_was(fitted, tmp_path):
    from gru4rec import persistence

    attrs = {key: getattr(fitted, key) for key in persistence.SAVED}
    arch = {**fitted.model_.config(), "hidden_size": fitted.model_.config()["hidden_size"] + 1}
    meta = persistence.metadata(fitted.name, fitted.get_params(deep=False), arch, attrs)
    path = persistence.write(tmp_path / "bad.trch", "", fitted.model_.state_dict(), meta)
    other = small(max_epochs=1, hidden_size=8).fit(make_synthetic_sessions(40, 12, seed=1))
    before = {k: v for k, v in other.__dict__.items() if k != "model_"}
    weights = {k: v.clone() for k, v in other.model_.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch"):
        other.load(path)
    assert other.get_params()["hidden_size"] == 8 and other.n_items_ == before["n_items_"]
    assert other.history_ == before["history_"]
    for key, value in other.model_.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
