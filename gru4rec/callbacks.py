"""Callbacks for ``fit(..., callbacks=[...])``: the protocol, Optuna pruning, MLflow logging.

``fit`` calls each callable callback as ``callback(estimator, record)`` after every completed
epoch, with that epoch's record of ``history_``; an object with the methods of
:class:`Callback` (``on_train_begin``, ``on_epoch_begin``, ``on_epoch_end``, ``on_train_end``)
has those called, with the estimator first. The two below connect the estimators to libraries
that are optional dependencies (``pip install gru4rec[optuna]``, ``gru4rec[mlflow]``),
imported only when a callback is first called.
"""

from __future__ import annotations

import numbers
import time
from typing import Any

from .trainer import Callback

__all__ = ["Callback", "MLflowCallback", "OptunaPruningCallback"]


def _monitored(estimator: Any, record: dict[str, Any], monitor: str | None) -> tuple[str, float]:
    name = monitor if monitor is not None else estimator.stopping_criterion_.name
    if name not in record:
        raise ValueError(
            f"epoch {record.get('epoch')} has no {name!r} value to report: pass "
            "validation_data=(validation_in, validation_out) to fit, or monitor= a key of "
            f"history_ ({', '.join(map(repr, record))})"
        )
    return name, float(record[name])


class OptunaPruningCallback:
    """Report each epoch's validation value to an Optuna trial, and prune the trial early.

    After every epoch the value of the estimator's stopping criterion (``monitor``, by default
    ``stopping_criterion``'s name, e.g. ``'mrr'``) is reported as the trial's intermediate
    value at step ``epoch``; when the study's pruner decides the trial is hopeless,
    ``optuna.TrialPruned`` is raised, which ends ``fit`` (the estimator keeps the last
    completed epoch) and marks the trial pruned in ``study.optimize``. Give the study the
    criterion's direction (``'maximize'`` for ``'mrr'``, ``'recall'``, ...).

    Parameters
    ----------
    trial : optuna.trial.Trial
    monitor : str, optional
        The ``history_`` key to report; needs ``validation_data`` in ``fit`` unless it is
        ``'train_loss'``.
    """

    def __init__(self, trial: Any, monitor: str | None = None) -> None:
        self.trial = trial
        self.monitor = monitor

    def __call__(self, estimator: Any, record: dict[str, Any]) -> None:
        import optuna

        name, value = _monitored(estimator, record, self.monitor)
        epoch = int(record["epoch"])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {name} = {value:.6g}")


class MLflowCallback:
    """Log the estimator's parameters once and every epoch's record to MLflow, one run per fit.

    At the first epoch the constructor parameters are logged as run parameters; every epoch,
    the numeric entries of its ``history_`` record (``train_loss``, ``seconds``,
    ``events_per_second``, the criterion's value when validation ran) are logged as metrics at
    step ``epoch``. Where they go:

    * with an active run (``with mlflow.start_run(): model.fit(...)``) that holds no other
      parameter values, into that run (one run per Optuna trial, say);
    * with an active run that already holds other parameter values (several fits in one run,
      e.g. a grid search), into a new child run of it for each fit;
    * without an active run, into a new run for each fit.

    Parameters
    ----------
    prefix : str, default=''
        Put before every metric name (e.g. ``'fold0/'``).
    log_params : bool, default=True
        Log ``estimator.get_params()`` at the first epoch.
    """

    def __init__(self, prefix: str = "", log_params: bool = True) -> None:
        self.prefix = prefix
        self.log_params = log_params
        self.run_id: str | None = None  #: the run the current fit logs into

    def __call__(self, estimator: Any, record: dict[str, Any]) -> None:
        import mlflow

        client = mlflow.MlflowClient()
        epoch = int(record["epoch"])
        if epoch == 0 or self.run_id is None:
            params = {k: _param_text(v) for k, v in estimator.get_params().items()}
            self.run_id = self._run_for(mlflow, client, params if self.log_params else {})
            if self.log_params:
                entries = [mlflow.entities.Param(k, v) for k, v in params.items()]
                client.log_batch(self.run_id, params=entries)
        metrics = {
            f"{self.prefix}{key}": float(value)
            for key, value in record.items()
            if key != "epoch"
            and isinstance(value, numbers.Real)
            and not isinstance(value, bool)  # e.g. "improved"
        }
        now = int(time.time() * 1000)
        entries = [mlflow.entities.Metric(k, v, now, epoch) for k, v in metrics.items()]
        client.log_batch(self.run_id, metrics=entries)

    @staticmethod
    def _run_for(mlflow: Any, client: Any, params: dict[str, str]) -> str:
        """The id of the run this fit logs into (created, and closed at once, when needed:
        logging by id needs no open run, and leaves the user's run stack as it was)."""
        active = mlflow.active_run()
        if active is not None:
            held = client.get_run(active.info.run_id).data.params
            if all(held.get(key, value) == value for key, value in params.items()):
                return active.info.run_id
        with mlflow.start_run(nested=active is not None) as run:
            return run.info.run_id


def _param_text(value: Any) -> str:
    # MLflow stores parameters as text; repr keeps None and strings distinguishable.
    return value if isinstance(value, str) else repr(value)
