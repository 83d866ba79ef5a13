"""The estimators: :class:`GRU4RecNegSampling` and :class:`GRU4RecCrossEntropy`.

They keep recpack's constructor, ``fit`` / ``predict`` and properties, and
orchestrate the modules that do the work: the matrix gives session arrays, the
sampler module turns them into a session-parallel schedule and draws negatives,
the model, losses and optimiser train, the stopping criterion picks the best
epoch, and the checkpoint module persists it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import itertools
import numbers
import os
import pathlib
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from . import inference
from .checkpoint import load_checkpoint, save_checkpoint
from .losses import LOSSES
from .matrix import InteractionMatrix, SessionArrays, Vocabulary, as_interaction_matrix
from .metrics import recall_at_k
from .model import GRU4RecNet
from .optim import OPTIMIZERS, make_optimizer
from .samplers import SESSION_ORDERS, NegativeSampler, session_order, session_parallel_schedule
from .stopping import StoppingCriterion
from .training import EpochData, LossConfig, train_epoch

__all__ = ["GRU4RecCrossEntropy", "GRU4RecNegSampling", "TrainingDivergedError"]

_EVAL_SLOTS = 512
_ROW_TIME = "__gru4rec_row__"
_SCORE_CHUNK = 32768


# -- parameter checks (run in fit, never in __init__) ------------------------------------------


def _check_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


def _check_float(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    open_high: bool = True,
    allow_none: bool = False,
    open_low: bool = False,
) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        lo = "(" if open_low else "["
        hi = "inf)" if high is None else (f"{high})" if open_high else f"{high}]")
        raise ValueError(f"{name} must be a number in {lo}{low}, {hi}; got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")


def _resolve_device(device: Any) -> torch.device:
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(
                f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}"
            ) from None
    else:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'cpu' or 'auto'")
    return dev


# -- torch threads (set per call, restored after) -----------------------------------------------

_THREADS = threading.local()  # OpenMP thread counts are per OS thread, so is this flag


@contextlib.contextmanager
def _torch_threads(num_threads: int | None):
    """Run the block with ``torch.set_num_threads(num_threads)``, restoring the count after.

    None leaves torch alone. Nested calls (fit -> validation ranks) keep the outer setting.
    """
    if num_threads is None or getattr(_THREADS, "active", False):
        yield
        return
    _check_int("num_threads", num_threads, 1, allow_none=True)
    before = torch.get_num_threads()
    if before != num_threads:
        torch.set_num_threads(num_threads)
    _THREADS.active = True
    try:
        yield
    finally:
        _THREADS.active = False
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _with_threads(method):
    """Decorator: run an estimator method under the estimator's ``num_threads``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _torch_threads(getattr(self, "num_threads", None)):
            return method(self, *args, **kwargs)

    return wrapper


class TrainingDivergedError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite; the estimator keeps its last good model."""


class _GRU4RecBase(BaseEstimator):
    """Shared machinery; subclasses define the constructor and the loss."""

    # -- subclass hooks ----------------------------------------------------------------------

    def _loss_config(self) -> LossConfig:
        raise NotImplementedError

    def _n_negatives(self) -> int:
        return 0

    def _extra_params(self) -> dict[str, Any]:
        return {}

    # -- recpack properties -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the object's class."""
        return type(self).__name__

    @property
    def identifier(self) -> str:
        """``ClassName(param=value, ...)`` over :meth:`get_params`, sorted by name.

        Contains no object reprs or addresses, so it is the same in every process.
        """
        parts = []
        for key, value in self.get_params(deep=False).items():
            if isinstance(value, StoppingCriterion):
                value = value.name
            if isinstance(value, np.generic):  # e.g. np.str_ from a grid given as an array
                value = value.item()
            if isinstance(value, torch.device):
                value = str(value)
            parts.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
        return f"{self.name}({','.join(parts)})"

    @property
    def filename(self) -> str:
        """File that :meth:`save` writes: class name, criterion name and best value."""
        criterion = getattr(self, "stopping_criterion_", None)
        crit_name = (
            criterion.name if criterion is not None else _criterion_name(self.stopping_criterion)
        )
        best = getattr(self, "best_value_", None)
        if best is None:
            return f"{self.name}_{crit_name}.trch"
        return f"{self.name}_{crit_name}_{best:.4f}.trch"

    # -- validation --------------------------------------------------------------------------

    def _validate_params(self) -> None:
        _check_int("num_layers", self.num_layers, 1)
        _check_int("hidden_size", self.hidden_size, 1)
        _check_int("num_components", self.num_components, 1)
        _check_float("dropout", self.dropout, 0.0, 1.0)
        _check_float("dropout_hidden", self.dropout_hidden, 0.0, 1.0, allow_none=True)
        if self.optimization_algorithm not in OPTIMIZERS:
            raise ValueError(
                f"optimization_algorithm must be one of {OPTIMIZERS}; "
                f"got {self.optimization_algorithm!r}"
            )
        _check_float("momentum", self.momentum, 0.0, 1.0)
        _check_float("clipnorm", self.clipnorm, 0.0, open_low=True, allow_none=True)
        _check_int("bptt", self.bptt, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("max_epochs", self.max_epochs, 1)
        _check_float("learning_rate", self.learning_rate, 0.0, open_low=True)
        if not isinstance(self.stopping_criterion, (str, StoppingCriterion)):
            raise ValueError(
                "stopping_criterion must be a criterion name or a StoppingCriterion; "
                f"got {self.stopping_criterion!r}"
            )
        _check_bool("stop_early", self.stop_early)
        _check_int("max_iter_no_change", self.max_iter_no_change, 1)
        _check_float("min_improvement", self.min_improvement, 0.0)
        _check_int("seed", self.seed, 0, allow_none=True)
        if self.seed is not None and self.seed >= 2**63:
            raise ValueError(f"seed must be below 2**63; got {self.seed!r}")
        _check_bool("save_best_to_file", self.save_best_to_file)
        _check_bool("keep_last", self.keep_last)
        _check_int("predict_topK", self.predict_topK, 1, allow_none=True)
        _check_int("validation_sample_size", self.validation_sample_size, 1, allow_none=True)
        _check_bool("constrained_embedding", self.constrained_embedding)
        _check_bool("verbose", self.verbose)
        _check_int("num_threads", self.num_threads, 1, allow_none=True)
        for name in ("session_col", "item_col", "time_col"):
            value = getattr(self, name)
            if not isinstance(value, str) and not (name == "time_col" and value is None):
                raise ValueError(f"{name} must be a column name (str); got {value!r}")
        if self.session_order not in SESSION_ORDERS:
            raise ValueError(
                f"session_order must be one of {SESSION_ORDERS}; got {self.session_order!r}"
            )
        _resolve_device(self.device)

    def _make_criterion(self) -> StoppingCriterion:
        settings = {
            "stop_early": self.stop_early,
            "max_iter_no_change": self.max_iter_no_change,
            "min_improvement": self.min_improvement,
        }
        if isinstance(self.stopping_criterion, StoppingCriterion):
            crit = copy.deepcopy(self.stopping_criterion)
            for key, value in settings.items():
                setattr(crit, key, value)
            crit.reset()
            return crit
        return StoppingCriterion.create(self.stopping_criterion, **settings)

    # -- input conversion --------------------------------------------------------------------

    def _as_matrix(
        self,
        X: Any,
        what: str = "X",
        vocabulary: Vocabulary | None = None,
        user_vocabulary: Vocabulary | None = None,
        first_row: int = 0,
    ) -> InteractionMatrix:
        """``X`` as a matrix; a DataFrame of raw events is encoded with ``vocabulary``
        (None: a new one, as in ``fit``). With ``time_col=None`` the events are timed by
        their row number plus ``first_row``."""
        if isinstance(X, InteractionMatrix):
            return X
        if isinstance(X, pd.DataFrame):
            time_col = self.time_col
            if time_col is None:
                # Row order is the time order: the row number serves as the timestamp
                # (counted on from first_row, so validation_out follows validation_in).
                time_col = _ROW_TIME
                X = X.assign(**{_ROW_TIME: np.arange(first_row, first_row + len(X))})
            return InteractionMatrix.from_events(
                X,
                session_col=self.session_col,
                item_col=self.item_col,
                time_col=time_col,
                item_vocabulary=vocabulary,
                user_vocabulary=user_vocabulary,
            )
        # Objects with recpack's InteractionMatrix surface are converted; anything else
        # (a scipy matrix has no event order) is a TypeError saying what to pass.
        return as_interaction_matrix(X, what)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {self.name} instance is not fitted yet; call fit() before using it."
            )

    def _check_columns(self, X: InteractionMatrix, what: str = "X") -> None:
        if X.shape[1] != self.n_items_:
            raise ValueError(
                f"{what} has {X.shape[1]} items (columns) but the model was fitted on "
                f"{self.n_items_}; build it with the training item vocabulary"
            )
        ours, theirs = self.item_vocabulary_, X.item_vocabulary
        if (
            ours is not None
            and theirs is not None
            and theirs is not ours
            and not np.array_equal(ours.ids, theirs.ids)
        ):
            raise ValueError(
                f"{what} was built with another item vocabulary than the training data; "
                "build it with InteractionMatrix.from_events(..., "
                "item_vocabulary=model.item_vocabulary_)"
            )

    def _input(self, X: Any, what: str = "X") -> InteractionMatrix:
        """Inference input: fitted check, encoding with the training vocabulary, shape check."""
        self._check_fitted()
        X = self._as_matrix(X, what, vocabulary=self.item_vocabulary_)
        self._check_columns(X, what)
        return X

    @staticmethod
    def _sessions(X: InteractionMatrix, what: str = "X") -> SessionArrays:
        if not X.has_timestamps:
            raise ValueError(
                f"{what} has no timestamps: GRU4Rec learns from the order of events in a "
                "session, so it needs an InteractionMatrix with a timestamp column"
            )
        return X.session_arrays()

    # -- fit ---------------------------------------------------------------------------------

    @_with_threads
    def fit(
        self,
        X: InteractionMatrix | pd.DataFrame,
        validation_data: tuple[Any, Any] | None = None,
        *,
        y: None = None,
        callbacks: Sequence[Callable[[Any, dict[str, Any]], Any]] | None = None,
    ) -> _GRU4RecBase:
        """Fit the network on the sessions of ``X``.

        Parameters
        ----------
        X : InteractionMatrix or pandas.DataFrame
            Training events with timestamps; one user (row) per session. A
            DataFrame holds raw events in the columns named by ``session_col``,
            ``item_col`` and ``time_col`` (``session_id``, ``item_id`` and
            ``timestamp`` by default); timestamps may be numbers, datetimes or
            ISO-8601 strings. recpack's ``InteractionMatrix`` (any object with
            its public surface) is accepted too.
        validation_data : (InteractionMatrix, InteractionMatrix), optional
            ``(validation_in, validation_out)``, both with timestamps and with the
            items numbered as in ``X``: per epoch, predictions from
            ``validation_in`` are scored against ``validation_out`` with the
            stopping criterion, and the best epoch is kept (unless
            ``keep_last``). Without it, no evaluation runs and the last epoch
            is kept.
        y : None
            Not used; there for scikit-learn's ``fit(X, y=None)`` convention.
        callbacks : sequence of callables, optional
            Each is called as ``callback(estimator, record)`` after every
            completed epoch, with that epoch's record of ``history_`` (holding
            the criterion's value under its name when validation ran): to log
            or report progress, e.g. :class:`gru4rec.callbacks.MLflowCallback`
            or :class:`gru4rec.callbacks.OptunaPruningCallback`. An exception
            raised by a callback ends ``fit`` and propagates, after the weights
            of the last completed epoch are restored.

        Returns
        -------
        self

        Notes
        -----
        Training runs with ``num_threads`` torch threads (default 1): GRU4Rec's
        mini-batches are tens to hundreds of rows, too small for several CPU
        threads to pay off, and on a busy machine every extra thread makes each
        small step wait for the others. Raise it on a large, otherwise idle
        machine with big batches or a large catalogue; ``None`` keeps torch's
        own setting.
        """
        if y is not None:
            raise ValueError("y must be None: GRU4Rec learns from the sessions in X alone")
        self._validate_params()
        callbacks = _check_callbacks(callbacks)
        criterion = self._make_criterion()
        raw_X = X
        X = self._as_matrix(X)
        sessions = self._sessions(X)
        if sessions.n_events == 0:
            raise ValueError("X holds no events")
        if int(sessions.lengths.max()) < 2:
            raise ValueError(
                "X has no session with 2 or more events; GRU4Rec learns from consecutive pairs"
            )
        if validation_data is not None:
            validation_data = self._check_validation(validation_data, X)

        device = _resolve_device(self.device)
        self.device_ = device
        self.seed_ = (
            int(self.seed)
            if self.seed is not None
            else int(np.random.SeedSequence().generate_state(1)[0])
        )
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed_)
        self._val_rng = np.random.default_rng(self.seed_)

        n_items = X.shape[1]
        self.n_items_ = n_items
        self.item_vocabulary_: Vocabulary | None = X.item_vocabulary
        self.item_counts_ = np.bincount(sessions.items, minlength=n_items)

        model = GRU4RecNet(
            n_items,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            embedding_size=self.num_components,
            constrained=self.constrained_embedding,
        )
        model.reset_parameters(torch.Generator().manual_seed(self.seed_))
        model.to(device)
        self.model_ = model

        order = session_order(sessions.start_times, self._order_rng(), self._session_order(raw_X))
        schedule = session_parallel_schedule(sessions.offsets, order, self.batch_size)
        data = EpochData.build(sessions.items, schedule, device)
        loss_cfg = self._loss_config()
        sampler = None
        if self._n_negatives() > 0:
            sampler = NegativeSampler(
                self.item_counts_,
                self._sample_alpha(),
                self._n_negatives(),
                generator,
                device,
                # On the CPU, scoring each distinct negative once (weighted) is cheaper;
                # on a GPU the variable count would cost a host sync per refill only,
                # but duplicates are cheap there anyway.
                dedup=device.type == "cpu",
                # No more draws than the whole fit can use (tiny fits stay cheap).
                buffer_size=min(2**22, self._n_negatives() * schedule.n_steps * self.max_epochs),
            )
        log_counts = None
        if loss_cfg.logq > 0:
            log_counts = torch.as_tensor(
                np.log(np.maximum(self.item_counts_, 1)), dtype=torch.float32, device=device
            )
        optimizer = make_optimizer(
            self.optimization_algorithm,
            model.dense_parameters(),
            model.item_tables(),
            lr=self.learning_rate,
            momentum=self.momentum,
        )
        dropout_hidden = self.dropout if self.dropout_hidden is None else self.dropout_hidden

        self.history_: list[dict[str, Any]] = []
        self.stopping_criterion_ = criterion
        self.best_value_: float | None = None
        self.best_epoch_: int | None = None
        best_state = None
        # The weights after the last completed epoch: what an interrupted or
        # diverged fit falls back to, so no half-updated model is ever left behind.
        last_state = _snapshot(model)
        progress = _progress(self.max_epochs, self.verbose, self.name)
        try:
            for epoch in range(self.max_epochs):
                record = self._run_epoch(
                    epoch,
                    model,
                    data,
                    optimizer,
                    loss_cfg,
                    sampler,
                    generator,
                    dropout_hidden,
                    log_counts,
                )
                b0 = int(data.step_offsets[1])  # the first step's rows: a bounded probe
                probe = (data.inputs[:b0], data.targets[:b0])
                if not (np.isfinite(record["train_loss"]) and _all_finite(model, *probe)):
                    fallback = best_state if best_state is not None else last_state
                    self._restore(fallback)
                    kept = "best" if best_state is not None else "last completed epoch's"
                    raise TrainingDivergedError(
                        f"training loss became {record['train_loss']} in epoch {epoch}; try a "
                        f"lower learning_rate (now {self.learning_rate}). The {kept} model "
                        "was kept, so the estimator stays usable."
                    )
                if validation_data is not None:
                    value = self._evaluate_criterion(criterion, *validation_data)
                    improved = criterion.update(value)
                    record[criterion.name] = value
                    record["improved"] = improved
                    if improved:
                        self.best_value_ = float(value)
                        self.best_epoch_ = epoch
                        best_state = _snapshot(model, into=best_state)
                self.history_.append(record)
                last_state = _snapshot(model, into=last_state)
                progress.update(record)
                try:
                    for callback in callbacks:
                        callback(self, record)
                except BaseException:
                    self._restore(last_state)  # whatever the callback did to the weights
                    raise
                if validation_data is not None and criterion.should_stop:
                    break
        except KeyboardInterrupt:
            self._restore(last_state)
            done = len(self.history_)
            warnings.warn(
                f"fit interrupted during epoch {done}; the estimator keeps the model after "
                + (f"epoch {done - 1}" if done else "initialisation (no epoch completed)"),
                UserWarning,
                stacklevel=2,
            )
        finally:
            progress.close()
        if validation_data is not None and not self.keep_last:
            self._restore(best_state)
        if self.save_best_to_file:
            self.save()
        return self

    def _run_epoch(
        self,
        epoch,
        model,
        data,
        optimizer,
        loss_cfg,
        sampler,
        generator,
        dropout_hidden,
        log_counts,
    ) -> dict[str, Any]:
        start = time.perf_counter()
        total = train_epoch(
            model,
            data,
            optimizer,
            loss_cfg,
            sampler,
            generator,
            dropout_embed=self.dropout,
            dropout_hidden=dropout_hidden,
            clipnorm=self.clipnorm,
            bptt=self.bptt,
            log_counts=log_counts,
        )
        train_loss = float(total) / max(1, data.n_rows)  # the one host read of the epoch
        seconds = time.perf_counter() - start
        return {
            "epoch": epoch,
            "train_loss": train_loss,
            "seconds": seconds,
            "events_per_second": data.n_rows / seconds if seconds > 0 else float("inf"),
        }

    def _restore(self, state: dict[str, torch.Tensor] | None) -> None:
        if state is not None:
            self.model_.load_state_dict(state)

    def _sample_alpha(self) -> float:
        return 0.0

    def _session_order(self, X: Any) -> str:
        # Events without times carry no session order worth keeping: row order would
        # train in id order.
        if isinstance(X, pd.DataFrame) and self.time_col is None:
            return "random"
        return self.session_order

    def _order_rng(self) -> np.random.Generator:
        # A stream of its own, so the validation sample draws stay as they were.
        return np.random.default_rng((self.seed_, 1))

    def _check_validation(self, validation_data: Any, X: InteractionMatrix) -> tuple[Any, Any]:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a (validation_in, validation_out) pair")
        n_items = X.shape[1]
        val_in = self._as_matrix(validation_data[0], "validation_in", X.item_vocabulary)
        # Rows of validation_out must be the same sessions as those of validation_in.
        val_out = self._as_matrix(
            validation_data[1],
            "validation_out",
            X.item_vocabulary,
            val_in.user_vocabulary,
            # (row numbers count on only after a DataFrame; other inputs carry their times)
            first_row=len(validation_data[0])
            if isinstance(validation_data[0], pd.DataFrame)
            else 0,
        )
        for m, what in ((val_in, "validation_in"), (val_out, "validation_out")):
            if m.shape[1] != n_items:
                raise ValueError(
                    f"validation_data: {what} has {m.shape[1]} items (columns) but X has {n_items}"
                )
            ours, theirs = X.item_vocabulary, m.item_vocabulary
            if ours is not None and theirs is not None and theirs is not ours:
                if not np.array_equal(ours.ids, theirs.ids):
                    raise ValueError(
                        f"validation_data: {what} numbers its items differently from X (another "
                        "item vocabulary); build it with InteractionMatrix.from_events(..., "
                        "item_vocabulary=X.item_vocabulary)"
                    )
            if not m.has_timestamps:
                self._sessions(m, what)  # the error naming it
        if val_out.num_interactions == 0:
            raise ValueError("validation_data: validation_out holds no events")
        if val_in.shape[0] != val_out.shape[0]:
            raise ValueError(
                f"validation_in has {val_in.shape[0]} rows but validation_out {val_out.shape[0]}"
            )
        in_users = self._sessions(val_in, "validation_in").users
        if not np.isin(in_users, np.flatnonzero(val_out.values.getnnz(axis=1))).any():
            raise ValueError(
                "validation_data: no session has events in both validation_in and validation_out"
            )
        return val_in, val_out

    def _evaluate_criterion(
        self, criterion: StoppingCriterion, val_in: InteractionMatrix, val_out: InteractionMatrix
    ) -> float:
        users = np.intersect1d(
            val_in.session_arrays().users, np.flatnonzero(val_out.values.getnnz(axis=1))
        )
        if self.validation_sample_size is not None and len(users) > self.validation_sample_size:
            users = np.sort(self._val_rng.choice(users, self.validation_sample_size, replace=False))
        val_in, val_out = val_in.users_in(users), val_out.users_in(users)
        if criterion.needs == "ranks":
            # Every position of the validation sessions: input followed by held-out items.
            full = _concat(val_in, val_out)
            return criterion.evaluate(ranks=self.next_item_ranks(full))
        k = criterion.k if criterion.needs == "topk" else None
        y_pred = self._predict_matrix(val_in, k)
        return criterion.evaluate(y_true=val_out.values, y_pred=y_pred)

    # -- inference ---------------------------------------------------------------------------

    def _states(self, sessions: SessionArrays) -> torch.Tensor:
        return inference.final_states(
            self.model_, sessions.items, sessions.offsets, _EVAL_SLOTS, self.device_
        )

    def _predict_matrix(self, X: InteractionMatrix, top_k: int | None) -> sp.csr_matrix:
        sessions = self._sessions(X)
        n_users = X.shape[0]
        if sessions.n_sessions == 0:
            return sp.csr_matrix((n_users, self.n_items_), dtype=np.float32)
        states = self._states(sessions)
        users = sessions.users
        if top_k is not None:
            val, idx = inference.score_topk(
                self.model_, states, top_k, _SCORE_CHUNK, block_rows=_EVAL_SLOTS
            )
            k = val.shape[1]
            rows = np.repeat(users, k)
            return sp.csr_matrix(
                (val.cpu().numpy().ravel(), (rows, idx.cpu().numpy().ravel())),
                shape=(n_users, self.n_items_),
            )
        # Full rows: the output itself is users x items, so build it a block of users at a time.
        block = max(1, (1 << 22) // max(1, self.n_items_))
        parts = []
        with torch.no_grad():
            for s in range(0, len(users), block):
                scores = self.model_.score(
                    states[s : s + block], self.model_.item_output, self.model_.item_bias
                )
                parts.append(sp.csr_matrix(scores.cpu().numpy()))
        dense_rows = sp.vstack(parts, format="csr")
        expand = sp.csr_matrix(
            (np.ones(len(users), dtype=np.float32), (users, np.arange(len(users)))),
            shape=(n_users, len(users)),
        )
        return (expand @ dense_rows).tocsr()

    @_with_threads
    def predict(self, X: InteractionMatrix | pd.DataFrame) -> sp.csr_matrix:
        """Scores of every item for every user (session) with history in ``X``.

        Each row is computed from the network's state after the user's last
        event. With ``predict_topK`` only the ``predict_topK`` best items of each
        row are kept. Already seen items are not masked.

        Returns
        -------
        scipy.sparse.csr_matrix of shape ``X.shape``
        """
        X = self._input(X)
        return self._predict_matrix(X, self.predict_topK)

    @_with_threads
    def next_item_ranks(self, X: InteractionMatrix | pd.DataFrame, last_only: bool = False):
        """Conservative rank of each next item of ``X``'s sessions against the whole catalogue.

        The hidden state starts from zero for each session; every position of
        every session is predicted (``last_only``: only the last one). Rank =
        number of items scoring at least as high as the true next item.
        """
        X = self._input(X)
        sessions = self._sessions(X)
        return inference.next_item_ranks(
            self.model_,
            sessions.items,
            sessions.offsets,
            _EVAL_SLOTS,
            self.device_,
            last_only=last_only,
            chunk_size=_SCORE_CHUNK,
        )

    @_with_threads
    def score(self, X: InteractionMatrix | pd.DataFrame, y: Any = None) -> float:
        """Next-item Recall@20 over every position of ``X``'s sessions (greater is better)."""
        ranks = self.next_item_ranks(X)
        if len(ranks) == 0:
            raise ValueError("X has no session with 2 or more events to score")
        return recall_at_k(ranks, 20)

    @_with_threads
    def recommend(
        self,
        sessions: Sequence[Any] | Sequence[Sequence[Any]],
        k: int = 20,
        *,
        exclude_seen: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` next items for one session or a batch of sessions, in raw item ids.

        Parameters
        ----------
        sessions : list of item ids, or list of such lists
            Each session's items so far, oldest first, as the raw ids the model
            was fitted with (indices when it was fitted on an index-built
            matrix). Unknown items are skipped with a warning; a session with
            no known item is scored from the empty state.
        k : int, default=20
        exclude_seen : bool, default=False
            Leave out the items already in the session (implicit's
            ``filter_already_liked_items``). Off by default: in session data,
            going back to an item seen a few clicks ago is a real and frequent
            next event, and the evaluation protocol counts it. Where fewer than
            ``k`` unseen items exist, the last places hold seen items with
            score ``-inf``.

        Returns
        -------
        item_ids, scores : np.ndarray
            Shape ``(k,)`` for one session, ``(n_sessions, k)`` for a batch,
            best first.
        """
        self._check_fitted()
        _check_int("k", k, 1)
        _check_bool("exclude_seen", exclude_seen)
        single = _is_single_session(sessions)
        batch = [sessions] if single else list(sessions)
        lengths = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        flat = list(itertools.chain.from_iterable(batch))
        items = self._item_indices(flat)
        known = items >= 0
        if not known.all():
            warnings.warn(
                f"recommend skipped {int((~known).sum())} of {len(items)} items unknown to the "
                "model" + self._id_type_hint(flat, known),
                UserWarning,
                stacklevel=2,
            )
        owner = np.repeat(np.arange(len(batch)), lengths)[known]
        items = items[known]
        kept = np.bincount(owner, minlength=len(batch))
        states = torch.zeros(len(batch), self.model_.hidden_size, device=self.device_)
        nonempty = np.flatnonzero(kept)
        if len(nonempty):
            offsets = np.zeros(len(nonempty) + 1, dtype=np.int64)
            np.cumsum(kept[nonempty], out=offsets[1:])
            found = inference.final_states(self.model_, items, offsets, _EVAL_SLOTS, self.device_)
            states[torch.as_tensor(nonempty, device=self.device_)] = found
        n_extra = int(kept.max()) if exclude_seen and len(kept) and len(items) else 0
        scores, idx = inference.score_topk(
            self.model_, states, k + n_extra, _SCORE_CHUNK, block_rows=_EVAL_SLOTS
        )
        idx_np = idx.cpu().numpy()
        scores_np = scores.cpu().numpy()
        if n_extra:
            idx_np, scores_np = _drop_seen(idx_np, scores_np, owner, items, self.n_items_, k)
        vocab = self.item_vocabulary_
        ids = vocab.to_raw(idx_np.ravel()).reshape(idx_np.shape) if vocab is not None else idx_np
        return (ids[0], scores_np[0]) if single else (ids, scores_np)

    def _id_type_hint(self, raw: list[Any], known: np.ndarray) -> str:
        """When no item is known and the ids are of another kind than the model's: say so."""
        vocab = self.item_vocabulary_
        if known.any() or vocab is None or not raw:
            return ""
        theirs, ours = _id_kind(np.asarray(pd.Index(raw, dtype=object))), _id_kind(vocab.ids)
        if theirs == ours:
            return ""
        return (
            f"; the request's ids are {theirs}s but the model's item ids are {ours}s "
            f"(e.g. {_plain(vocab.ids[0])!r}): convert them to the type used in fit"
        )

    def _item_indices(self, raw: list[Any]) -> np.ndarray:
        """Model indices of raw item ids, -1 for unknown ones."""
        if self.item_vocabulary_ is not None:
            return self.item_vocabulary_.index_of(raw) if raw else np.zeros(0, dtype=np.int64)
        arr = np.asarray(raw)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                "this model was fitted on item indices, so sessions must hold integer item "
                f"indices; got {arr.dtype} values"
            )
        arr = arr.astype(np.int64)
        return np.where((arr >= 0) & (arr < self.n_items_), arr, -1)

    # -- scikit-learn ------------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.two_d_array = False
        tags.non_deterministic = _may_use_cuda(self.device)
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_y": False, "non_deterministic": _may_use_cuda(self.device)}

    # -- persistence -------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        if isinstance(params.get("stopping_criterion"), StoppingCriterion):
            params["stopping_criterion"] = params["stopping_criterion"].name
        if isinstance(params.get("device"), torch.device):
            params["device"] = str(params["device"])
        crit = self.stopping_criterion_
        vocab = self.item_vocabulary_
        return {
            "class": self.name,
            "params": params,
            "architecture": self.model_.config(),
            "n_items": int(self.n_items_),
            "seed": int(self.seed_),
            "best_value": self.best_value_,
            "best_epoch": self.best_epoch_,
            "criterion": {
                "name": crit.name,
                "minimize": crit.minimize,
                "needs": crit.needs,
                "k": crit.k,
            },
            "item_ids": None if vocab is None else vocab.ids.tolist(),
            "item_counts": self.item_counts_.tolist(),
            "history": self.history_,
        }

    def save(self, path: str | os.PathLike[str] | None = None) -> pathlib.Path:
        """Save the current model, atomically, to ``path`` (default: :attr:`filename`).

        Returns the path written. The file holds the weights and plain
        metadata (parameters, architecture, item ids, history) and loads with
        ``torch.load(weights_only=True)``.
        """
        self._check_fitted()
        target = self.filename if path is None else path
        return save_checkpoint(target, self.model_.state_dict(), self._metadata())

    def load(self, filename: str) -> _GRU4RecBase:
        """Load a model saved with :meth:`save` into this estimator (also a fresh one)."""
        state, meta = load_checkpoint(filename, map_location="cpu")
        if meta.get("class") != self.name:
            raise ValueError(f"{filename} holds a {meta.get('class')!r} model, not a {self.name}")
        params = dict(meta["params"])
        self.set_params(**{k: v for k, v in params.items() if k in self.get_params(deep=False)})
        self.stopping_criterion_ = _restored_criterion(meta["criterion"])
        if self.stopping_criterion not in StoppingCriterion.FUNCTIONS:
            # A custom criterion was saved by name only; keep a placeholder that says so.
            self.stopping_criterion = self.stopping_criterion_
        self.device_ = _runtime_device(self.device)
        self.n_items_ = int(meta["n_items"])
        self.seed_ = int(meta["seed"])
        self.best_value_ = meta["best_value"]
        self.best_epoch_ = meta["best_epoch"]
        self.history_ = list(meta["history"])
        self.item_counts_ = np.asarray(meta["item_counts"], dtype=np.int64)
        ids = meta["item_ids"]
        self.item_vocabulary_ = None if ids is None else Vocabulary(np.asarray(ids))
        # The architecture the weights were trained with (older files: the parameters).
        arch = meta.get("architecture") or {
            "n_items": self.n_items_,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "embedding_size": self.num_components,
            "constrained": self.constrained_embedding,
        }
        model = GRU4RecNet(**arch)
        model.load_state_dict(state)
        self.model_ = model.to(self.device_)
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_val_rng", None)
        if "model_" in state:
            buf = io.BytesIO()
            torch.save({k: v.cpu() for k, v in self.model_.state_dict().items()}, buf)
            # The architecture travels with the weights: parameters may have been
            # changed with set_params since the fit.
            state["model_"] = (self.model_.config(), buf.getvalue())
            state["device_"] = str(self.device_)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.get("model_")
        self.__dict__.update(state)
        if isinstance(packed, tuple):
            arch, blob = packed
            weights = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            device = _runtime_device(state["device_"])
            model = GRU4RecNet(**arch)
            model.load_state_dict(weights)
            self.model_ = model.to(device)
            self.device_ = device


def _check_callbacks(callbacks: Any) -> list[Callable[[Any, dict[str, Any]], Any]]:
    if callbacks is None:
        return []
    if callable(callbacks) or isinstance(callbacks, str | bytes):
        raise ValueError("callbacks must be a sequence of callables, e.g. [callback]")
    callbacks = list(callbacks)
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise ValueError(f"callbacks[{i}] is not callable: {callback!r}")
    return callbacks


def _is_single_session(sessions: Any) -> bool:
    if isinstance(sessions, (str, bytes)) or not hasattr(sessions, "__len__"):
        raise ValueError(
            "sessions must be a list of item ids or a list of such lists; "
            f"got {type(sessions).__name__}"
        )
    if len(sessions) == 0:
        return True
    first = next(iter(sessions))  # not sessions[0]: a pandas Series indexes by label
    return isinstance(first, (str, bytes)) or not hasattr(first, "__len__")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _id_kind(ids: np.ndarray) -> str:
    """'number' or 'string': the kind of raw ids (those of an object array by their values)."""
    if ids.dtype.kind in "biuf":
        return "number"
    if ids.dtype.kind in "US":
        return "string"
    if all(isinstance(v, (str, bytes)) for v in ids[:100]):
        return "string"
    if all(isinstance(v, (numbers.Number, np.number)) for v in ids[:100]):
        return "number"
    return "mixed"


def _drop_seen(
    idx: np.ndarray, scores: np.ndarray, owner: np.ndarray, items: np.ndarray, n_items: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's candidates that are not among its session's ``items``.

    ``owner[j]`` is the row of ``items[j]``; seen candidates move to the end with score -inf.
    """
    rows = np.arange(idx.shape[0])[:, None]
    seen = np.isin(rows * n_items + idx, owner.astype(np.int64) * n_items + items)
    order = np.argsort(seen, axis=1, kind="stable")[:, :k]  # unseen first, in score order
    idx = np.take_along_axis(idx, order, axis=1)
    scores = np.where(np.take_along_axis(seen, order, axis=1), -np.inf, scores[rows, order])
    return idx, scores.astype(np.float32, copy=False)


def _may_use_cuda(device: Any) -> bool:
    # GPU kernels (index_add, scatter) are not bit-for-bit reproducible.
    text = str(device)
    return text.startswith("cuda") or (text == "auto" and torch.cuda.is_available())


def _runtime_device(device: Any) -> torch.device:
    """The device to load onto: the saved one, or the CPU when its CUDA is not available."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(
            f"the model was trained on {device}, which is not available; loading it on the CPU",
            UserWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
    return _resolve_device(device)


def _custom_criterion_unavailable(*args: Any, **kwargs: Any) -> float:
    raise ValueError(
        "this model was saved with a custom stopping criterion, which cannot be stored in a "
        "file; pass it again with set_params(stopping_criterion=...) before fitting"
    )


def _restored_criterion(meta: Any) -> StoppingCriterion:
    if isinstance(meta, str):
        meta = {"name": meta}
    name = meta["name"]
    if name in StoppingCriterion.FUNCTIONS:
        overrides = {} if meta.get("k") is None else {"k": meta["k"]}
        return StoppingCriterion.create(name, **overrides)
    return StoppingCriterion(
        _custom_criterion_unavailable,
        minimize=bool(meta.get("minimize", False)),
        needs=meta.get("needs", "ranks"),
        k=meta.get("k"),
        name=name,
    )


def _criterion_name(criterion: str | StoppingCriterion) -> str:
    return criterion.name if isinstance(criterion, StoppingCriterion) else str(criterion)


@torch.no_grad()
def _all_finite(model: GRU4RecNet, inputs: torch.Tensor, targets: torch.Tensor) -> bool:
    """Whether the weights, and the scores of a probe step from ``inputs``, are finite.

    Weights can blow up to huge finite values that overflow in the next forward pass,
    so a short forward pass is checked too (one device read per epoch).
    """
    was_training = model.training
    model.eval()
    out, _ = model.step(model.input_vectors(inputs), model.init_hidden(len(inputs), inputs.device))
    scores = model.score_items(out, targets)
    model.train(was_training)
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    flags.append(torch.isfinite(scores).all())
    return bool(torch.stack(flags).all())


def _snapshot(
    model: torch.nn.Module, into: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """A copy of the model's weights, written into ``into`` when given (no second copy)."""
    if into is None:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k, v in model.state_dict().items():
        into[k].copy_(v)
    return into


def _concat(a: InteractionMatrix, b: InteractionMatrix) -> InteractionMatrix:
    """The events of ``a`` and ``b`` in one matrix (for every-position validation)."""
    da, db = a.to_dataframe(), b.to_dataframe()
    df = pd.concat([da, db], ignore_index=True)
    cols = InteractionMatrix
    return InteractionMatrix(
        df, cols.ITEM_IX, cols.USER_IX, timestamp_ix=cols.TIMESTAMP_IX, shape=a.shape
    )


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="epoch")

    def update(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in record.items() if isinstance(v, float)}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(total: int, enabled: bool, desc: str) -> _Progress:
    return _Progress(total, enabled, desc)


class GRU4RecNegSampling(_GRU4RecBase):
    """GRU4Rec with sampled negatives: recpack's API, the reference implementation's training.

    Each mini-batch holds ``batch_size`` sessions in parallel; the targets of
    the other rows plus ``num_negatives`` items drawn once per step
    (``P ~ count ** sample_alpha``) are the negatives of every row.

    Parameters
    ----------
    num_layers : int, default=1
        Number of GRU layers.
    hidden_size : int, default=100
        Units per GRU layer.
    num_components : int, default=250
        Size of the input item embedding (unused with ``constrained_embedding``).
    dropout : float, default=0.0
        Dropout on the input embedding, and on the GRU outputs unless
        ``dropout_hidden`` is set.
    loss_fn : {'bpr', 'top1', 'bpr-max', 'top1-max', 'cross-entropy'}, default='bpr'
        Ranking loss over the sampled columns. 'cross-entropy' is a softmax
        over targets and negatives, with the ``logq`` correction.
    optimization_algorithm : {'adagrad', 'sgd'}, default='adagrad'
    momentum : float, default=0.0
        Heavy-ball momentum, for both optimisers.
    clipnorm : float or None, default=1.0
        Clip the joint l2 norm of each step's gradients; None for no clipping.
    bptt : int, default=1
        Steps between truncations of back-propagation through time.
    num_negatives : int, default=50
        Negatives drawn per mini-batch step and shared by its rows.
    batch_size : int, default=512
        Sessions processed in parallel.
    max_epochs : int, default=5
    learning_rate : float, default=0.03
    stopping_criterion : str or StoppingCriterion, default='recall'
        How validation epochs are compared (see :class:`gru4rec.stopping.StoppingCriterion`).
    stop_early : bool, default=False
        Stop after ``max_iter_no_change`` epochs without improvement.
    max_iter_no_change : int, default=5
    min_improvement : float, default=0.0
        A value counts as better only when it beats the best by more than this.
    seed : int or None, default=None
        Seed of every random draw of ``fit``; the seed used is ``seed_``.
    save_best_to_file : bool, default=False
        Call :meth:`save` at the end of ``fit``.
    keep_last : bool, default=False
        Keep the last epoch rather than the best one on validation data.
    predict_topK : int or None, default=None
        Keep only the K best items of each predicted row.
    validation_sample_size : int or None, default=None
        Evaluate the criterion on this many randomly drawn validation users.
    sample_alpha : float, default=0.0
        Popularity exponent of the negative distribution (0: uniform, as recpack).
    bpreg : float, default=1.0
        Score regularisation of the bpr-max loss.
    elu_param : float, default=0.0
        ELU applied to the scores before the ranking losses (0: none).
    dropout_hidden : float or None, default=None
        Dropout on the GRU outputs; None means ``dropout``.
    constrained_embedding : bool, default=False
        Use each item's output vector as its input embedding.
    logq : float, default=0.0
        Sampling-bias correction of the cross-entropy loss.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
        Where to train and predict; 'auto' takes CUDA when available.
    verbose : bool, default=False
        Show a progress bar per epoch.
    num_threads : int or None, default=1
        Torch CPU threads used by ``fit``, ``predict``, ``recommend`` and
        ``score``; torch's setting is restored when they return. None leaves
        torch's setting alone (all cores unless you changed it).
    session_col, item_col, time_col : str, default='session_id', 'item_id', 'timestamp'
        Columns of raw-event DataFrames passed to ``fit``, ``predict`` and friends.
        ``time_col=None``: the frames have no time column; events are in time order
        within each session (row order) and training visits the sessions in a seeded
        random order.
    session_order : {'time', 'random'}, default='time'
        The order in which each epoch visits the training sessions. 'time': by start
        time, oldest first, as the reference implementation does; sessions with equal
        start times come in a random order drawn from the seed (never in id order).
        'random': a seeded random order regardless of the times, for data whose start
        times mean little (user histories numbered by position, one date per import).

    Attributes
    ----------
    model_ : GRU4RecNet
    history_ : list of dict
        Per epoch: epoch, train_loss (per event), criterion value, seconds,
        events_per_second.
    best_value_, best_epoch_ : float, int or None
    seed_ : int
    n_items_ : int
    item_vocabulary_ : Vocabulary or None
    """

    def __init__(
        self,
        num_layers: int = 1,
        hidden_size: int = 100,
        num_components: int = 250,
        dropout: float = 0.0,
        loss_fn: str = "bpr",
        optimization_algorithm: str = "adagrad",
        momentum: float = 0.0,
        clipnorm: float | None = 1.0,
        bptt: int = 1,
        num_negatives: int = 50,
        batch_size: int = 512,
        max_epochs: int = 5,
        learning_rate: float = 0.03,
        stopping_criterion: str | StoppingCriterion = "recall",
        stop_early: bool = False,
        max_iter_no_change: int = 5,
        min_improvement: float = 0.0,
        seed: int | None = None,
        save_best_to_file: bool = False,
        keep_last: bool = False,
        predict_topK: int | None = None,
        validation_sample_size: int | None = None,
        sample_alpha: float = 0.0,
        bpreg: float = 1.0,
        elu_param: float = 0.0,
        dropout_hidden: float | None = None,
        constrained_embedding: bool = False,
        logq: float = 0.0,
        device: str = "auto",
        verbose: bool = False,
        num_threads: int | None = 1,
        session_col: str = "session_id",
        item_col: str = "item_id",
        time_col: str | None = "timestamp",
        session_order: str = "time",
    ) -> None:
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.num_components = num_components
        self.dropout = dropout
        self.loss_fn = loss_fn
        self.optimization_algorithm = optimization_algorithm
        self.momentum = momentum
        self.clipnorm = clipnorm
        self.bptt = bptt
        self.num_negatives = num_negatives
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.stopping_criterion = stopping_criterion
        self.stop_early = stop_early
        self.max_iter_no_change = max_iter_no_change
        self.min_improvement = min_improvement
        self.seed = seed
        self.save_best_to_file = save_best_to_file
        self.keep_last = keep_last
        self.predict_topK = predict_topK
        self.validation_sample_size = validation_sample_size
        self.sample_alpha = sample_alpha
        self.bpreg = bpreg
        self.elu_param = elu_param
        self.dropout_hidden = dropout_hidden
        self.constrained_embedding = constrained_embedding
        self.logq = logq
        self.device = device
        self.verbose = verbose
        self.num_threads = num_threads
        self.session_col = session_col
        self.item_col = item_col
        self.time_col = time_col
        self.session_order = session_order

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.loss_fn not in LOSSES:
            raise ValueError(
                f"loss_fn must be one of {', '.join(map(repr, LOSSES))}; got {self.loss_fn!r}"
            )
        _check_int("num_negatives", self.num_negatives, 1)
        _check_float("sample_alpha", self.sample_alpha, 0.0)
        _check_float("bpreg", self.bpreg, 0.0)
        _check_float("elu_param", self.elu_param, 0.0)
        _check_float("logq", self.logq, 0.0)

    def _loss_config(self) -> LossConfig:
        return LossConfig(
            name=self.loss_fn,
            bpreg=self.bpreg,
            elu_param=self.elu_param,
            logq=self.logq,
            sample_alpha=self.sample_alpha,
        )

    def _n_negatives(self) -> int:
        return int(self.num_negatives)

    def _sample_alpha(self) -> float:
        return float(self.sample_alpha)


class GRU4RecCrossEntropy(_GRU4RecBase):
    """GRU4Rec trained with a softmax over the whole catalogue (recpack's cross-entropy variant).

    Same parameters as :class:`GRU4RecNegSampling` without ``loss_fn``,
    ``num_negatives`` and the sampling-related extras. Every step scores every
    item, so a step costs O(catalogue); prefer
    ``GRU4RecNegSampling(loss_fn='cross-entropy', logq=1.0)`` on large catalogues.
    """

    def __init__(
        self,
        num_layers: int = 1,
        hidden_size: int = 100,
        num_components: int = 250,
        dropout: float = 0.0,
        optimization_algorithm: str = "adagrad",
        momentum: float = 0.0,
        clipnorm: float | None = 1.0,
        bptt: int = 1,
        batch_size: int = 512,
        max_epochs: int = 5,
        learning_rate: float = 0.03,
        stopping_criterion: str | StoppingCriterion = "recall",
        stop_early: bool = False,
        max_iter_no_change: int = 5,
        min_improvement: float = 0.0,
        seed: int | None = None,
        save_best_to_file: bool = False,
        keep_last: bool = False,
        predict_topK: int | None = None,
        validation_sample_size: int | None = None,
        dropout_hidden: float | None = None,
        constrained_embedding: bool = False,
        device: str = "auto",
        verbose: bool = False,
        num_threads: int | None = 1,
        session_col: str = "session_id",
        item_col: str = "item_id",
        time_col: str | None = "timestamp",
        session_order: str = "time",
    ) -> None:
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.num_components = num_components
        self.dropout = dropout
        self.optimization_algorithm = optimization_algorithm
        self.momentum = momentum
        self.clipnorm = clipnorm
        self.bptt = bptt
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.stopping_criterion = stopping_criterion
        self.stop_early = stop_early
        self.max_iter_no_change = max_iter_no_change
        self.min_improvement = min_improvement
        self.seed = seed
        self.save_best_to_file = save_best_to_file
        self.keep_last = keep_last
        self.predict_topK = predict_topK
        self.validation_sample_size = validation_sample_size
        self.dropout_hidden = dropout_hidden
        self.constrained_embedding = constrained_embedding
        self.device = device
        self.verbose = verbose
        self.num_threads = num_threads
        self.session_col = session_col
        self.item_col = item_col
        self.time_col = time_col
        self.session_order = session_order

    def _loss_config(self) -> LossConfig:
        return LossConfig(name="full-cross-entropy")
