"""fit(..., callbacks=[...]): called once per epoch with the history record; the Optuna and
MLflow callbacks of gru4rec.callbacks (skipped without those libraries)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from gru4rec import GRU4RecNegSampling
from gru4rec.callbacks import Callback
from gru4rec.datasets import last_item_split

PARAMS = dict(num_negatives=16, batch_size=32, hidden_size=16, max_epochs=3, seed=0, device="cpu")


@pytest.fixture(scope="module")
def data(split):
    _, _, X, X_test = split
    return X, last_item_split(X_test)


def test_callbacks_see_each_epoch_record_as_it_is_appended(data):
    X, _ = data
    seen = []

    def callback(est, record):
        seen.append((record, len(est.history_), est.history_[-1] is record))

    est = GRU4RecNegSampling(**PARAMS).fit(X, callbacks=[callback])
    assert [r["epoch"] for r, _, _ in seen] == [0, 1, 2]
    assert [n for _, n, _ in seen] == [1, 2, 3]  # called after the record joined history_
    assert all(last for _, _, last in seen)
    assert [r for r, _, _ in seen] == est.history_


def test_callback_record_holds_the_criterion_value_with_validation(data):
    X, validation = data
    values = []
    est = GRU4RecNegSampling(**PARAMS, stopping_criterion="mrr")
    est.fit(X, validation, callbacks=[lambda e, r: values.append(r["mrr"])])
    assert values == [r["mrr"] for r in est.history_]
    assert est.best_value_ == max(values)


def test_callbacks_do_not_change_the_fit(data):
    X, _ = data
    a = GRU4RecNegSampling(**PARAMS).fit(X)
    b = GRU4RecNegSampling(**PARAMS).fit(X, callbacks=[lambda e, r: None])
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


class Recorder(Callback):
    """Overrides every method of the protocol, writing down what it was told."""

    def __init__(self):
        self.events = []

    def on_train_begin(self, owner):
        self.events.append(("train_begin", owner, len(owner.history_)))

    def on_epoch_begin(self, owner, epoch):
        self.events.append(("epoch_begin", owner, epoch))

    def on_epoch_end(self, owner, record):
        self.events.append(("epoch_end", owner, record["epoch"], owner.history_[-1] is record))

    def on_train_end(self, owner):
        self.events.append(("train_end", owner, len(owner.history_)))


def test_callback_objects_are_notified_of_every_event_with_the_estimator(data):
    X, _ = data
    recorder = Recorder()
    est = GRU4RecNegSampling(**{**PARAMS, "max_epochs": 2})
    est.fit(X, callbacks=[recorder])
    assert all(owner is est for _, owner, *_ in recorder.events)
    assert [(e, *rest) for e, _, *rest in recorder.events] == [
        ("train_begin", 0),
        ("epoch_begin", 0),
        ("epoch_end", 0, True),
        ("epoch_begin", 1),
        ("epoch_end", 1, True),
        ("train_end", 2),
    ]


def test_an_object_with_some_of_the_methods_needs_not_subclass_callback(data):
    X, _ = data
    epochs = []

    class OnlyEpochBegin:  # not callable, no base class: accepted for its method
        def on_epoch_begin(self, owner, epoch):
            epochs.append(epoch)

    GRU4RecNegSampling(**PARAMS).fit(X, callbacks=[OnlyEpochBegin()])
    assert epochs == [0, 1, 2]


def test_train_end_is_notified_when_a_callback_ends_the_fit(data):
    X, _ = data
    recorder = Recorder()

    def stop(est, record):
        raise Stop

    est = GRU4RecNegSampling(**PARAMS)
    with pytest.raises(Stop):
        est.fit(X, callbacks=[recorder, stop])
    assert [e for e, *_ in recorder.events][-2:] == ["epoch_end", "train_end"]
    assert len(est.history_) == 1


def test_the_trainers_callbacks_run_before_the_users_in_order(data):
    """The user's on_epoch_end sees the epoch judged (criterion value, improved) and in
    history_; a selection that stops early stops before the next epoch begins."""
    X, validation = data
    recorder = Recorder()
    seen = []
    est = GRU4RecNegSampling(
        **{**PARAMS, "max_epochs": 6},
        stopping_criterion="mrr",
        stop_early=True,
        max_iter_no_change=1,
        min_improvement=1.0,  # nothing improves on the first epoch: stop after the second
    )
    est.fit(X, validation, callbacks=[recorder, lambda e, r: seen.append(dict(r))])
    assert all({"mrr", "improved", "train_loss"} <= r.keys() for r in seen)
    assert seen == est.history_
    assert [r["improved"] for r in seen] == [True, False]
    begun = [rest[0] for e, _, *rest in recorder.events if e == "epoch_begin"]
    assert begun == [0, 1]


class Stop(Exception):
    pass


def test_exception_in_callback_propagates_and_keeps_last_completed_epoch(data):
    X, _ = data
    weights = {}

    def callback(est, record):
        weights[record["epoch"]] = {k: v.clone() for k, v in est.model_.state_dict().items()}
        if record["epoch"] == 1:
            with torch.no_grad():  # a misbehaving callback: the weights must come back
                est.model_.item_output.zero_()
            raise Stop

    est = GRU4RecNegSampling(**PARAMS)
    with pytest.raises(Stop):
        est.fit(X, callbacks=[callback])
    assert [r["epoch"] for r in est.history_] == [0, 1]
    for k, v in est.model_.state_dict().items():
        assert torch.equal(v, weights[1][k]), k
    assert est.recommend([0, 1], k=3)[0].shape == (3,)  # still usable


@pytest.mark.parametrize("bad", [lambda e, r: None, [1], "abc", [object()]])
def test_bad_callbacks_raise_before_training(data, bad):
    X, _ = data
    with pytest.raises(ValueError, match="callbacks"):
        GRU4RecNegSampling(**PARAMS).fit(X, callbacks=bad)


# -- Optuna -----------------------------------------------------------------------------------


def test_optuna_pruning_callback_reports_every_epoch_and_prunes(data):
    optuna = pytest.importorskip("optuna", reason="pip install -e '.[optuna]'")
    from gru4rec.callbacks import OptunaPruningCallback

    X, validation = data

    class PruneAfter(optuna.pruners.BasePruner):
        def __init__(self, step):
            self.step = step

        def prune(self, study, trial):
            return trial.last_step is not None and trial.last_step >= self.step

    fitted = {}

    def objective(trial):
        est = GRU4RecNegSampling(**PARAMS, stopping_criterion="mrr")
        fitted[trial.number] = est
        est.fit(X, validation, callbacks=[OptunaPruningCallback(trial)])
        return est.best_value_

    study = optuna.create_study(direction="maximize", pruner=PruneAfter(step=1))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    est = fitted[0]
    assert len(est.history_) == 2  # fit stopped at the pruned epoch, not max_epochs
    assert trial.intermediate_values == {r["epoch"]: r["mrr"] for r in est.history_}

    # Never pruned: every epoch reported, the value returned.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [0, 1, 2]
    assert trial.value == pytest.approx(max(trial.intermediate_values.values()))


def test_optuna_pruning_callback_without_validation_names_the_fix(data):
    optuna = pytest.importorskip("optuna", reason="pip install -e '.[optuna]'")
    from gru4rec.callbacks import OptunaPruningCallback

    X, _ = data
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match="validation_data"):
        GRU4RecNegSampling(**PARAMS).fit(X, callbacks=[OptunaPruningCallback(trial)])
    # Monitoring the training loss needs no validation data.
    GRU4RecNegSampling(**PARAMS).fit(X, callbacks=[OptunaPruningCallback(trial, "train_loss")])
    assert sorted(trial.storage.get_trial(trial._trial_id).intermediate_values) == [0, 1, 2]


# -- MLflow -----------------------------------------------------------------------------------


def test_mlflow_callback_logs_params_and_every_epoch(data, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")
    from gru4rec.callbacks import MLflowCallback

    X, validation = data
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        est = GRU4RecNegSampling(**PARAMS, stopping_criterion="mrr")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with mlflow.start_run() as run:
                est.fit(X, validation, callbacks=[MLflowCallback(prefix="f/")])
        client = mlflow.MlflowClient()
        logged = client.get_run(run.info.run_id).data
        assert logged.params["learning_rate"] == repr(est.learning_rate)
        assert logged.params["dropout_hidden"] == "None"
        for key in ("train_loss", "mrr", "seconds"):
            history = client.get_metric_history(run.info.run_id, f"f/{key}")
            steps = {m.step: m.value for m in history}
            assert steps == pytest.approx({r["epoch"]: r[key] for r in est.history_}), key
        assert "f/improved" not in logged.metrics
    finally:
        mlflow.set_tracking_uri(None)
    assert np.isfinite(est.best_value_)


def test_mlflow_callback_gives_each_fit_of_a_search_its_own_run(data, tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")
    from gru4rec.callbacks import MLflowCallback

    X, validation = data
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        callback = MLflowCallback()
        runs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            for lr in (0.05, 0.1):  # no active run: a run per fit
                GRU4RecNegSampling(**{**PARAMS, "learning_rate": lr}).fit(
                    X, validation, callbacks=[callback]
                )
                runs.append(callback.run_id)
            assert mlflow.active_run() is None
            with mlflow.start_run() as parent:  # a search in one run: a child per fit
                for lr in (0.05, 0.1):
                    GRU4RecNegSampling(**{**PARAMS, "learning_rate": lr}).fit(
                        X, validation, callbacks=[callback]
                    )
                    runs.append(callback.run_id)
                assert mlflow.active_run().info.run_id == parent.info.run_id
        client = mlflow.MlflowClient()
        assert len(set(runs)) == 4
        lrs = [client.get_run(r).data.params["learning_rate"] for r in runs]
        assert lrs == ["0.05", "0.1", "0.05", "0.1"]
        assert runs[2] == parent.info.run_id  # the first fit in an empty run uses it
        child = client.get_run(runs[3]).data.tags
        assert child["mlflow.parentRunId"] == parent.info.run_id
        for r in runs:
            assert len(client.get_metric_history(r, "train_loss")) == PARAMS["max_epochs"]
    finally:
        mlflow.set_tracking_uri(None)
