"""Stopping criteria given as objects with recpack's protocol: ``update(val_out, X_pred) -> bool``
once per validated epoch, ``best_value``, optional ``minimize`` and ``reset``, and an exception
named ``EarlyStoppingException`` to end the training.

The objects here are what a user writes (or gets from recpack's ``StoppingCriterion`` class);
recpack itself is never imported.
"""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from tiny import assert_same_weights, longer_events, neg, weights

from gru4rec import InteractionMatrix
from gru4rec.checkpoint import load_checkpoint
from gru4rec.datasets import last_item_split
from gru4rec.selection import Selection
from gru4rec.stopping import (
    EarlyStoppingException,
    ObjectCriterion,
    StoppingCriterion,
    configured,
    is_criterion_object,
)


class EarlyStop(Exception):
    """A user's own early-stopping exception: not matched (its name differs)."""


class RecpackStyleStop(Exception):
    pass


# recpack's criterion raises a class of this name; the estimator matches it by name.
RecpackStyleStop.__name__ = "EarlyStoppingException"


def hits(y_true: sp.csr_matrix, y_pred: sp.csr_matrix) -> float:
    """Sum of the predicted scores at the held-out cells (a user's metric)."""
    return float(y_true.multiply(y_pred).sum())


class MetricCriterion:
    """A user's criterion with recpack's protocol: a metric of (y_true, y_pred), its direction,
    its own patience (raising an exception named EarlyStoppingException), no reset."""

    def __init__(self, metric, minimize=False, stop_early=False, max_iter_no_change=5):
        self.metric = metric
        self.minimize = minimize
        self.stop_early = stop_early
        self.max_iter_no_change = max_iter_no_change
        self.min_improvement = 0.0
        self.best_value = math.inf if minimize else -math.inf
        self.n_iter_no_change = 0
        self.calls: list[tuple[sp.csr_matrix, sp.csr_matrix]] = []

    def update(self, y_true, y_pred):
        self.calls.append((y_true, y_pred))
        value = self.metric(y_true, y_pred)
        gain = self.best_value - value if self.minimize else value - self.best_value
        if gain > self.min_improvement:
            self.best_value, self.n_iter_no_change = value, 0
            return True
        if self.stop_early:
            self.n_iter_no_change += 1
            if self.n_iter_no_change >= self.max_iter_no_change:
                raise RecpackStyleStop("no improvement")
        return False


class Scripted:
    """Gives the verdicts (and best values) it is told, one per update; raises ``stop_with``
    at update ``stop_at``; counts resets."""

    def __init__(self, verdicts, best_values=None, stop_at=None, stop_with=RecpackStyleStop):
        self.verdicts = list(verdicts)
        self.best_values = best_values
        self.stop_at, self.stop_with = stop_at, stop_with
        self.n_calls = 0
        self.n_resets = 0
        self.best_value = None if best_values is None else -math.inf

    def reset(self):
        self.n_resets += 1
        self.n_calls = 0

    def update(self, y_true, y_pred):
        i = self.n_calls
        self.n_calls += 1
        if i == self.stop_at:
            raise self.stop_with("stop")
        if self.best_values is not None:
            self.best_value = self.best_values[i]
        return self.verdicts[i]


class VerdictOnly:
    """The least an object needs: update, nothing else."""

    def __init__(self, verdicts):
        self.verdicts = list(verdicts)

    def update(self, y_true, y_pred):
        return self.verdicts.pop(0)


@pytest.fixture(scope="module")
def data():
    X = InteractionMatrix.from_events(longer_events(n_sessions=24))
    val_in, val_out = last_item_split(X)
    return X, val_in, val_out


def _judge(crit: ObjectCriterion, n: int) -> list[bool]:
    """Run ``n`` epochs' evaluate + update by hand; the verdicts."""
    y = sp.csr_matrix(np.eye(3))
    out = []
    for _ in range(n):
        value = crit.evaluate(y_true=y, y_pred=y)
        out.append(crit.update(value))
        if crit.should_stop:
            break
    return out


# --- the adapter -----------------------------------------------------------------------------


def test_the_objects_verdict_decides_and_its_best_value_is_read():
    crit = ObjectCriterion(Scripted([True, False, True, False], best_values=[0.2, 0.2, 0.5, 0.5]))
    assert crit.best_value is None and crit.needs == "scores" and crit.k is None
    assert _judge(crit, 4) == [True, False, True, False]
    assert (crit.best_value, crit.best_iteration, crit.n_updates) == (0.5, 2, 4)
    assert crit.history == [0.2, 0.2, 0.5, 0.5]  # the best value after each update
    assert not crit.should_stop


def test_verdict_only_object_has_no_best_value_and_nan_history():
    crit = ObjectCriterion(VerdictOnly([True, False]))
    assert _judge(crit, 2) == [True, False]
    assert crit.best_value is None and crit.best_iteration == 0
    assert all(math.isnan(v) for v in crit.history)
    assert crit.minimize is False and crit.name == "VerdictOnly"


def test_patience_counts_false_verdicts_when_stop_early():
    crit = ObjectCriterion(
        VerdictOnly([True, False, True, False, False, True]),
        stop_early=True,
        max_iter_no_change=2,
    )
    assert _judge(crit, 6) == [True, False, True, False, False]
    assert crit.should_stop and crit.n_iter_no_change == 2
    off = ObjectCriterion(VerdictOnly([True, False, False, False]), max_iter_no_change=1)
    assert _judge(off, 4) == [True, False, False, False] and not off.should_stop


@pytest.mark.parametrize("exc", [RecpackStyleStop, EarlyStoppingException])
def test_an_exception_named_early_stopping_ends_after_that_epoch(exc):
    crit = ObjectCriterion(Scripted([True, True, True], stop_at=1, stop_with=exc))
    assert _judge(crit, 3) == [True, False]
    assert crit.should_stop and crit.best_iteration == 0


def test_other_exceptions_and_non_bool_verdicts_propagate():
    crit = ObjectCriterion(Scripted([True], stop_at=0, stop_with=EarlyStop))
    with pytest.raises(EarlyStop):
        _judge(crit, 1)
    with pytest.raises(TypeError, match="must return a bool.*None"):
        _judge(ObjectCriterion(VerdictOnly([None])), 1)
    with pytest.raises(RuntimeError, match="evaluate"):
        ObjectCriterion(VerdictOnly([True])).update(0.0)


def test_without_update_is_an_error_naming_the_parameter():
    assert not is_criterion_object(object()) and not is_criterion_object("recall")
    assert not is_criterion_object(StoppingCriterion.create("recall"))
    assert is_criterion_object(VerdictOnly([]))
    with pytest.raises(ValueError, match="stopping_criterion must have an update"):
        ObjectCriterion(object())


def test_names_never_pass_for_a_named_criterion():
    recall_like = MetricCriterion(hits)
    recall_like.name = "recall"  # would be rebuilt as the named criterion from a file
    assert ObjectCriterion(recall_like).name == "MetricCriterion"
    assert ObjectCriterion(MetricCriterion(hits)).name == "MetricCriterion"
    recpack_like = MetricCriterion(hits)
    recpack_like.loss_function = hits  # recpack's criterion holds its function so
    assert ObjectCriterion(recpack_like).name == "hits"


def test_saved_description_comes_back_as_a_placeholder():
    crit = configured(MetricCriterion(hits, minimize=True), top_k=7, stop_early=True)
    back = StoppingCriterion.from_dict(crit.to_dict())
    assert (back.name, back.minimize, back.needs, back.k, back.stop_early) == (
        "MetricCriterion",
        True,
        "topk",
        7,
        True,
    )
    with pytest.raises(ValueError, match="custom stopping criterion"):
        back.evaluate(y_true=sp.csr_matrix((1, 1)), y_pred=sp.csr_matrix((1, 1)))


def test_configured_copies_and_resets_the_object_and_fills_in_min_improvement():
    mine = Scripted([True], best_values=[1.0])
    crit = configured(mine, stop_early=True, max_iter_no_change=3)
    assert isinstance(crit, ObjectCriterion) and crit.obj is not mine
    assert crit.obj.n_resets == 1 and mine.n_resets == 0
    assert (crit.stop_early, crit.max_iter_no_change) == (True, 3)
    _judge(crit, 1)
    assert mine.n_calls == 0 and crit.obj.n_calls == 1
    # recpack's criterion applies min_improvement itself: left at 0 there, the setting fills it.
    metric = MetricCriterion(hits)
    assert configured(metric, min_improvement=0.5).obj.min_improvement == 0.5
    assert metric.min_improvement == 0.0
    with pytest.warns(UserWarning, match="min_improvement=0.5 has no effect"):
        configured(VerdictOnly([]), min_improvement=0.5)
    metric.min_improvement = 0.2
    with pytest.warns(UserWarning, match="own min_improvement=0.2 is kept over 0.5"):
        assert configured(metric, min_improvement=0.5).obj.min_improvement == 0.2


def test_selection_keeps_the_weights_of_a_true_verdict():
    crit = configured(Scripted([False, True, False], best_values=[-1.0, 3.0, 3.0]))
    selection = Selection(crit)
    model = torch.nn.Linear(2, 1)
    y = sp.csr_matrix(np.eye(2))
    for epoch in range(3):
        with torch.no_grad():
            model.weight.fill_(epoch)
        selection.update(epoch, crit.evaluate(y_true=y, y_pred=y), model)
    assert (selection.best_epoch, selection.best_value) == (1, 3.0)
    assert torch.equal(selection.best_state["weight"], torch.ones(1, 2))


# --- in fit ----------------------------------------------------------------------------------


def test_update_sees_the_sampled_validation_rows_once_per_epoch(data):
    X, val_in, val_out = data
    mine = MetricCriterion(hits)
    est = neg(max_epochs=3, stopping_criterion=mine, validation_sample_size=5).fit(
        X, validation_data=(val_in, val_out)
    )
    assert mine.calls == []  # the parameter itself is never updated
    seen = est.stopping_criterion_.obj.calls
    assert len(seen) == 3
    eligible = set(np.flatnonzero(val_out.values.getnnz(axis=1)))
    rows_per_epoch = []
    for y_true, y_pred in seen:
        assert isinstance(y_true, sp.csr_matrix) and isinstance(y_pred, sp.csr_matrix)
        assert y_true.shape == y_pred.shape == val_in.shape
        rows = set(np.flatnonzero(y_pred.getnnz(axis=1)))
        assert rows == set(np.flatnonzero(y_true.getnnz(axis=1)))
        assert len(rows) == 5 and rows <= eligible
        # Full scores: every item of each sampled row; the held-out cells are val_out's.
        assert all(y_pred.getnnz(axis=1)[r] == X.shape[1] for r in rows)
        expected = val_out.values[sorted(rows)]
        assert (y_true[sorted(rows)] != expected).nnz == 0
        rows_per_epoch.append(frozenset(rows))
    assert len(set(rows_per_epoch)) > 1  # drawn afresh each epoch
    assert est.best_value_ == est.stopping_criterion_.obj.best_value
    assert [r["MetricCriterion"] for r in est.history_][-1] == est.best_value_


def test_predict_topk_limits_what_update_sees(data):
    X, val_in, val_out = data
    est = neg(max_epochs=1, stopping_criterion=MetricCriterion(hits), predict_topK=2)
    est.fit(X, validation_data=(val_in, val_out))
    (y_true, y_pred) = est.stopping_criterion_.obj.calls[0]
    nnz = y_pred.getnnz(axis=1)
    assert nnz.max() == 2 and set(np.flatnonzero(nnz)) == set(np.flatnonzero(y_true.getnnz(1)))


def test_the_epoch_of_the_last_true_verdict_is_kept(data):
    X, val_in, val_out = data
    est = neg(max_epochs=3, stopping_criterion=Scripted([True, False, False]))
    est.fit(X, validation_data=(val_in, val_out))
    assert est.best_epoch_ == 0
    assert [r["improved"] for r in est.history_] == [True, False, False]
    assert_same_weights(weights(est), weights(neg(max_epochs=1).fit(X)))
    later = neg(max_epochs=3, stopping_criterion=Scripted([False, True, False]))
    later.fit(X, validation_data=(val_in, val_out))
    assert later.best_epoch_ == 1
    assert_same_weights(weights(later), weights(neg(max_epochs=2).fit(X)))


def test_early_stopping_exception_ends_fit_and_keeps_the_best(data):
    X, val_in, val_out = data
    mine = MetricCriterion(lambda t, p: 1.0, stop_early=True, max_iter_no_change=2)
    est = neg(max_epochs=6, stopping_criterion=mine).fit(X, validation_data=(val_in, val_out))
    # 1.0, then twice no gain: the second raises, and fit ends after that epoch.
    assert [r["improved"] for r in est.history_] == [True, False, False]
    assert est.best_epoch_ == 0 and est.best_value_ == 1.0
    assert_same_weights(weights(est), weights(neg(max_epochs=1).fit(X)))


def test_estimator_patience_applies_to_an_object(data):
    X, val_in, val_out = data
    verdicts = VerdictOnly([True, False, True, False, False, True, True])
    est = neg(max_epochs=7, stopping_criterion=verdicts, stop_early=True, max_iter_no_change=2)
    est.fit(X, validation_data=(val_in, val_out))
    assert [r["improved"] for r in est.history_] == [True, False, True, False, False]
    assert est.best_epoch_ == 2 and est.best_value_ is None


def test_filename_follows_the_objects_direction_and_best_value(data, tmp_path):
    X, val_in, val_out = data
    losses = iter([3.0, 2.0, 2.5])
    mine = MetricCriterion(lambda t, p: next(losses), minimize=True)
    est = neg(max_epochs=3, stopping_criterion=mine)
    assert est.filename == "GRU4RecNegSampling_loss_inf.trch"
    est.fit(X, validation_data=(val_in, val_out))
    assert est.best_value_ == 2.0 and est.best_epoch_ == 1
    assert est.filename == "GRU4RecNegSampling_loss_2.0.trch"
    path = est.save(tmp_path / "m.trch")
    _, meta = load_checkpoint(path)  # weights_only: the metadata is plain data
    assert meta["params"]["stopping_criterion"] == "MetricCriterion"
    back = neg().load(path)
    assert_same_weights(weights(back), weights(est))
    assert back.stopping_criterion_.minimize and back.best_value_ == 2.0
    with pytest.raises(ValueError, match="custom stopping criterion"):
        back.fit(X, validation_data=(val_in, val_out))


def test_save_best_to_file_with_an_object(data, tmp_path, monkeypatch):
    X, val_in, val_out = data
    monkeypatch.chdir(tmp_path)
    est = neg(max_epochs=2, stopping_criterion=Scripted([True, False], best_values=[0.25, 0.25]))
    est.set_params(save_best_to_file=True).fit(X, validation_data=(val_in, val_out))
    assert (tmp_path / "GRU4RecNegSampling_loss_0.25.trch").is_file()


def test_refit_clone_and_pickle_start_from_the_users_object(data):
    X, val_in, val_out = data
    mine = Scripted([True, False, True, True], best_values=[1.0, 1.0, 2.0, 3.0])
    est = neg(max_epochs=2, stopping_criterion=mine)
    est.fit(X, validation_data=(val_in, val_out))
    est.fit(X, validation_data=(val_in, val_out))  # the same two verdicts again
    assert [r["improved"] for r in est.history_] == [True, False] and est.best_epoch_ == 0
    assert mine.n_calls == 0
    twin = clone(est).fit(X, validation_data=(val_in, val_out))
    assert twin.best_epoch_ == 0
    again = pickle.loads(pickle.dumps(est))
    assert again.best_value_ == 1.0 and isinstance(again.stopping_criterion_, ObjectCriterion)
    assert copy.deepcopy(est).stopping_criterion_.obj.n_calls == 2


def test_objects_without_update_are_rejected_by_fit(data):
    X, val_in, val_out = data
    for bad in (object(), 3, lambda t, p: True, MetricCriterion):
        with pytest.raises(ValueError, match="stopping_criterion must be a criterion name"):
            neg(stopping_criterion=bad).fit(X, validation_data=(val_in, val_out))


def test_identifier_names_the_object_without_its_address():
    est = neg(stopping_criterion=MetricCriterion(hits))
    assert "stopping_criterion=MetricCriterion," in est.identifier
    assert " at 0x" not in est.identifier
    assert est.identifier == neg(stopping_criterion=MetricCriterion(hits)).identifier
