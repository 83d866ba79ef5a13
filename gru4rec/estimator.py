"""The estimators: :class:`GRU4RecNegSampling` and :class:`GRU4RecCrossEntropy`.

They keep recpack's constructor, ``fit`` / ``predict`` and properties, and orchestrate the modules
that do the work: the matrix gives session arrays, the schedule orders them into session-parallel
mini-batches, the model, sampler, losses and optimiser are handed to the trainer, which runs the
epochs while the stopping criterion's selection keeps the best one; inference scores sessions and
the checkpoint module persists the result.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from . import advice, constraints, cpu, growth, inputs, parameters, persistence, presets, rollback
from . import device as devices
from .checkpoint import check_writable
from .defaults import ITEM, MAX_ITER_NO_CHANGE, MIN_IMPROVEMENT, SESSION, STOP_EARLY, TIME
from .holdout import Validation, from_pair
from .inference import Scorer
from .losses import LossConfig
from .matrix import InteractionMatrix, SessionArrays, Vocabulary
from .model import GRU4RecNet
from .notices import warn
from .persistence import savable_item_ids
from .prediction import Prediction
from .samplers import NegativeSampler
from .schedule import session_order, session_parallel_schedule
from .selection import Selection
from .step import EpochData, build_optimizer, build_sampler
from .stopping import StoppingCriterion, configured
from .trainer import Callback, Parts, Trainer, TrainingDivergedError, user_callbacks

__all__ = [
    "GRU4RecCrossEntropy",
    "GRU4RecNegSampling",
    "TrainingDivergedError",
]

_EVAL_SLOTS = 512
_SCORE_CHUNK = 32768


class _Run(NamedTuple):
    """What a fit or an update reads from its parameters before any work."""

    selection: Selection
    listeners: list[Callback]
    order: str


class _NewEvents(NamedTuple):
    """An update's events, with the catalogue grown by their new items."""

    X: InteractionMatrix
    sessions: SessionArrays
    vocabulary: Vocabulary | None
    n_items: int


_NO_Y = "y must be None: GRU4Rec learns from the sessions in X alone"


class _GRU4RecBase(Prediction, BaseEstimator):
    """Shared machinery; subclasses define the constructor and the loss."""

    #: The parameters every subclass takes, each with its constraint (checked in ``fit``);
    #: a subclass merges its own into a copy, as scikit-learn's estimators do.
    _parameter_constraints: dict[str, Any] = {**constraints.COMMON}

    def __init__(self, **params: Any) -> None:
        # The one constructor body: store every parameter unchanged (scikit-learn reads
        # the subclasses' explicit signatures).
        for name, value in params.items():
            setattr(self, name, value)

    def _validate_params(self) -> None:
        """Check every parameter against the class's ``_parameter_constraints``.

        Raises
        ------
        ValueError
            Naming the first parameter out of its range.
        """
        constraints.validate(self.get_params(deep=False), self._parameter_constraints)

    # -- subclass hooks ----------------------------------------------------------------------

    def _loss_config(self) -> LossConfig:
        raise NotImplementedError

    def _build_sampler(
        self,
        generator: torch.Generator,
        device: torch.device,
        n_steps: int,
        counts: np.ndarray,
        epochs: int,
    ) -> NegativeSampler | None:
        return None

    # -- recpack properties -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the object's class."""
        return type(self).__name__

    @property
    def identifier(self) -> str:
        """``ClassName(param=value,...)`` over :meth:`get_params`, as recpack writes it
        (values by ``str``, parameters sorted by name).

        Holds no object addresses, so it is the same in every process.
        """
        return constraints.identifier(self.name, self.get_params(deep=False))

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> _GRU4RecBase:
        """An estimator with the parameters of the preset ``name``, then ``overrides``.

        Parameters
        ----------
        name : {'rsc15-best', 'diginetica-best', 'recpack'}
            A published best configuration (:mod:`gru4rec.presets`), or ``'recpack'`` for the
            class's own defaults. Parameters of the preset that this class does not take (the
            sampling ones, for :class:`GRU4RecCrossEntropy`) are left out.
        **overrides
            Constructor parameters that replace the preset's (e.g. ``max_epochs=5``).

        Returns
        -------
        estimator
            Unfitted; ``get_params()`` shows every value it will train with.
        """
        return cls(**presets.for_class(name, set(cls._get_param_names()), overrides, cls.__name__))

    # -- input conversion --------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {self.name} instance is not fitted yet; call fit() before using it."
            )

    def _columns(self) -> inputs.Columns:
        return inputs.Columns(self.session_col, self.item_col, self.time_col)

    # -- fit ---------------------------------------------------------------------------------

    @cpu.with_threads
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
            Training events with timestamps; one user (row) per session. A DataFrame holds raw
            events in the columns named by ``session_col``, ``item_col`` and ``time_col``
            (``session_id``, ``item_id`` and ``timestamp`` by default); timestamps may be numbers,
            datetimes or ISO-8601 strings. recpack's ``InteractionMatrix`` (any object with its
            public surface) is accepted too.
        validation_data : (InteractionMatrix, InteractionMatrix), optional
            ``(validation_in, validation_out)``, both with timestamps and with the items numbered
            as in ``X``: per epoch, predictions from ``validation_in`` are scored against
            ``validation_out`` with the stopping criterion, and the best epoch is kept (unless
            ``keep_last``). Without it, no evaluation runs and the last epoch is kept.
        y : None
            Not used; there for scikit-learn's ``fit(X, y=None)`` convention.
        callbacks : sequence of callables or Callback objects, optional
            A callable is called as ``callback(estimator, record)`` after every completed epoch,
            with that epoch's record of ``history_`` (holding the criterion's value under its name
            when validation ran): to log or report progress, e.g.
            :class:`gru4rec.callbacks.MLflowCallback` or
            :class:`gru4rec.callbacks.OptunaPruningCallback`. An object with the methods of
            :class:`gru4rec.callbacks.Callback` (``on_train_begin``, ``on_epoch_begin``,
            ``on_epoch_end``, ``on_train_end``) has those called, with the estimator first. An
            exception raised by a callback ends ``fit`` and propagates, after the weights of the
            last completed epoch are restored.

        Returns
        -------
        self

        Raises
        ------
        KeyboardInterrupt
            On Ctrl-C, after the epoch in progress is dropped, so a script stops as on any Ctrl-C;
            ``epochs_completed`` on the exception says how many epochs completed. When at least one
            epoch completed, the estimator is fitted with the model it would have kept had training
            ended there (the last completed epoch, or the best one on validation data), saved when
            ``save_best_to_file``, and the last record of ``history_`` says ``interrupted``. When
            no epoch completed, the estimator is left exactly as it was before the call: unfitted
            stays unfitted, a refitted one keeps its previous model. In a notebook, catch it to go
            on with the model::

                try:
                    model.fit(X)
                except KeyboardInterrupt as stop:
                    print(stop)  # which epoch was kept
        """
        if y is not None:
            raise ValueError(_NO_Y)
        self._validate_params()
        before = dict(self.__dict__)  # what a fit interrupted before its first epoch restores
        run = self._begin(X, callbacks, top_k=self.predict_topK)
        frame = isinstance(X, pd.DataFrame)
        X = inputs.as_matrix(X, self._columns())
        sessions = inputs.timed_sessions(X, training=True)
        validation = self._checked_validation(
            validation_data, X.item_vocabulary, X.shape[1], len(sessions.lengths), run.selection
        )
        self._set_data_attributes(X, sessions, frame)
        parts = self._build_parts(sessions, run.order)
        stopped = self._fit_epochs(parts, run, validation, before)
        self.training_state_ = growth.capture(parts.optimizer, self.model_, self.item_counts_, 0)
        if self.save_best_to_file:
            self.save()
        if stopped is not None:
            raise rollback.kept_after_interrupt(stopped, self.best_epoch_, self.keep_last) from None
        return self

    @cpu.with_threads
    def partial_fit(
        self,
        X: InteractionMatrix | pd.DataFrame,
        validation_data: tuple[Any, Any] | None = None,
        *,
        y: None = None,
        epochs: int | None = None,
        count_decay: float = 1.0,
        callbacks: Sequence[Callable[[Any, dict[str, Any]], Any]] | None = None,
    ) -> _GRU4RecBase:
        """Train further on the new events ``X``, growing the catalogue by their new items.

        On an unfitted estimator this is a first :meth:`fit` (of ``epochs`` epochs). On a fitted
        one, training continues from the current weights and optimiser state on the sessions of
        ``X`` alone. Items never seen before get new rows at the end of every item table and of the
        optimiser's state, initialised as :meth:`fit` initialises rows; known items keep their
        rows, their state and their indices, so ``item_vocabulary_``, ``n_items_`` and the columns
        of :meth:`predict` grow and results computed before the update still line up. Update ``k``
        (counted since the fit) draws its random numbers from ``(seed_, k)``: a model saved and
        loaded between two updates updates as the one that was saved.

        Parameters
        ----------
        X : InteractionMatrix or pandas.DataFrame
            New training events, in any form :meth:`fit` takes (the same kind as the fit: raw ids
            of the vocabulary's type, or item indices). An empty DataFrame changes nothing (with a
            warning).
        validation_data : (validation_in, validation_out), optional
            As in :meth:`fit`: each epoch is scored, and the best one kept unless ``keep_last``
            (the optimiser's state is the last epoch's either way). Items of the validation data
            must be known after the update.
        y : None
            Not used.
        epochs : int or None, default=None
            Passes over ``X``; None means ``max_epochs``, the passes the model was fitted with.
            ``epochs=1`` is scikit-learn's single pass.
        count_decay : float in [0, 1], default=1.0
            How the negative sampler's counts (``P ~ count ** sample_alpha``, and the ``logq``
            correction) learn the new popularity: ``decay * old + new``. 1 counts every event so
            far, as a refit would; 0 only the new slice. Without ``sample_alpha`` or ``logq`` the
            counts do not enter training.
        callbacks : sequence of callables, optional
            As in :meth:`fit`.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            When parameters that shape the network (``hidden_size``, ``num_layers``,
            ``num_components``, ``constrained_embedding``) changed since the fit, or the model
            holds no training state (loaded from a file saved without it); TypeError when the item
            ids are of another type than the vocabulary's. Nothing is trained then. A diverged or
            interrupted update leaves the model as it was before the call.
        """
        if y is not None:
            raise ValueError(_NO_Y)
        constraints.Int(1, none=True).check("epochs", epochs)
        constraints.Real(0.0, 1.0, open_high=False).check("count_decay", count_decay)
        if not hasattr(self, "model_"):
            return self._first_fit(X, validation_data, epochs, callbacks)
        self._validate_params()
        state = growth.check_continuable(
            self.model_.config(), self._network(0).config(), getattr(self, "training_state_", None)
        )
        run = self._begin(X, callbacks, top_k=None)
        frame = isinstance(X, pd.DataFrame)
        new = self._update_input(X)
        if new is None:
            return self
        validation = self._checked_validation(
            validation_data, new.vocabulary, new.n_items, len(new.sessions.lengths), run.selection
        )
        self._run_update(new, frame, state, epochs, count_decay, run, validation)
        return self

    # -- the steps of fit and partial_fit ----------------------------------------------------

    def _first_fit(
        self, X: Any, validation_data: Any, epochs: int | None, callbacks: Any
    ) -> _GRU4RecBase:
        """``partial_fit`` on an unfitted estimator: a fit of ``epochs`` epochs (None: as
        many as ``max_epochs``)."""
        if epochs is None:
            return self.fit(X, validation_data, callbacks=callbacks)
        max_epochs = self.max_epochs
        self.max_epochs = epochs
        try:
            return self.fit(X, validation_data, callbacks=callbacks)
        finally:
            self.max_epochs = max_epochs

    def _fit_epochs(
        self, parts: Parts, run: _Run, validation: Validation | None, before: dict[str, Any]
    ) -> KeyboardInterrupt | None:
        """Run the fit's epochs and keep the best; return the Ctrl-C that stopped them after an
        epoch completed (None: not stopped). One before that puts back the state ``before``."""
        trainer = Trainer(parts, self.learning_rate)
        selection = run.selection
        self.stopping_criterion_, self.history_ = selection.criterion, trainer.history
        stopped = None
        try:
            self._train(trainer, self.max_epochs, run, validation)
        except KeyboardInterrupt as exc:
            error = rollback.fit_interruption(self, before, exc)
            if error is not None:
                raise error from None
            stopped = exc
        except BaseException:
            self.best_value_, self.best_epoch_ = selection.best_value, selection.best_epoch
            raise
        self.best_value_, self.best_epoch_ = selection.best_value, selection.best_epoch
        self._keep_best(selection, validation)
        return stopped

    def _update_input(self, X: Any) -> _NewEvents | None:
        """An update's events with the grown vocabulary: the matrix, its sessions renumbered,
        the vocabulary and the catalogue size; None (with a warning) when there are none."""
        frame = isinstance(X, pd.DataFrame)
        # An empty frame still has its columns checked (a misnamed one is an error).
        X = inputs.as_matrix(
            X,
            self._columns(),
            vocabulary=Vocabulary([]) if frame and len(X) == 0 else None,
            allow_empty=True,
        )
        if X.num_interactions == 0:
            warn("partial_fit got an empty X: there is nothing to learn, the model is unchanged")
            return None
        sessions = inputs.timed_sessions(X, training=True)
        vocabulary, n_items, sessions = growth.extend_vocabulary(
            self.item_vocabulary_, self.n_items_, X.item_vocabulary, sessions, X.shape[1]
        )
        return _NewEvents(X, sessions, vocabulary, n_items)

    def _run_update(
        self,
        new: _NewEvents,
        frame: bool,
        state: growth.TrainingState,
        epochs: int | None,
        count_decay: float,
        run: _Run,
        validation: Validation | None,
    ) -> None:
        """Grow the model by the new items and train it on the new sessions, all or nothing;
        then the fitted attributes take the update's results."""
        sessions, n_items, selection = new.sessions, new.n_items, run.selection
        epochs = self.max_epochs if epochs is None else int(epochs)
        update = state.updates + 1
        seed, rng = growth.update_seeds(self.seed_, update)
        generator = torch.Generator(device=self.device_)
        generator.manual_seed(seed)
        counts = growth.update_counts(state.sampler_counts, n_items, sessions.items, count_decay)
        with rollback.all_or_nothing(self, growth.UPDATED):
            self.model_ = growth.grow_model(self.model_, n_items, generator)
            self.n_items_, self.item_vocabulary_ = n_items, new.vocabulary
            self.stopping_criterion_ = selection.criterion
            parts = self._build_parts(sessions, run.order, generator, rng, counts, epochs)
            growth.restore_optimizer(parts.optimizer, self.model_, state)
            history = self._train(Trainer(parts, self.learning_rate), epochs, run, validation)
        self._keep_best(selection, validation)
        if validation is not None:
            self.best_value_, self.best_epoch_ = selection.best_value, selection.best_epoch
        self.item_counts_ = growth.merged_counts(self.item_counts_, sessions.items, n_items)
        self.history_ = [*self.history_, *({**r, "update": update} for r in history)]
        self.training_state_ = growth.capture(parts.optimizer, self.model_, counts, update)
        if frame and getattr(self, "_fit_session_hashes", None) is not None:
            self._fit_session_hashes = inputs.session_hashes(new.X, self._fit_session_hashes)
        if self.save_best_to_file:
            self.save()

    def _begin(self, X: Any, callbacks: Any, top_k: int | None) -> _Run:
        """What a fit or an update reads from its parameters before any work: the selection
        of the best epoch, the user's callbacks and the order of the sessions."""
        selection = Selection(
            configured(
                self.stopping_criterion,
                top_k=top_k,
                stop_early=self.stop_early,
                max_iter_no_change=self.max_iter_no_change,
                min_improvement=self.min_improvement,
            )
        )
        listeners = user_callbacks(self, callbacks)
        # Events without times carry no session order worth keeping: row order would
        # train in id order.
        no_times = isinstance(X, pd.DataFrame) and self.time_col is None
        return _Run(selection, listeners, "random" if no_times else self.session_order)

    def _checked_validation(
        self,
        validation_data: Any,
        vocabulary: Vocabulary | None,
        n_items: int,
        n_sessions: int,
        selection: Selection,
    ) -> Validation | None:
        """The validation data converted, the model file checked and the settings warned
        of: every check that can fail or warn before the training starts."""
        validation = (
            None
            if validation_data is None
            else from_pair(
                validation_data, self._columns(), vocabulary, n_items, self.validation_sample_size
            )
        )
        if self.save_best_to_file:  # fail now, not after the training
            savable_item_ids(vocabulary)
            check_writable(self.filename)
        criterion = None if validation is None else selection.criterion
        advice.warn_about_settings(self, n_items, n_sessions, criterion, self._loss_config().full)
        return validation

    def _train(
        self, trainer: Trainer, epochs: int, run: _Run, validation: Validation | None
    ) -> list[dict[str, Any]]:
        """Run the epochs, with the selection of the best one when there is validation data."""
        return trainer.run(
            epochs,
            run.listeners,
            *(() if validation is None else (run.selection, self._evaluator(validation))),
            verbose=self.verbose,
            desc=self.name,
        )

    def _keep_best(self, selection: Selection, validation: Validation | None) -> None:
        """Load the best epoch's weights, unless ``keep_last`` or without validation data."""
        if validation is not None and not self.keep_last and selection.best_state is not None:
            self.model_.load_state_dict(selection.best_state)

    def _set_data_attributes(
        self, X: InteractionMatrix, sessions: SessionArrays, frame: bool
    ) -> None:
        """The device, the seed, what the model learns about the data (with the hashes of a
        frame's sessions) and the untrained network."""
        self.device_ = devices.resolve(self.device)
        self.seed_ = (
            int(self.seed)
            if self.seed is not None
            else int(np.random.SeedSequence().generate_state(1)[0])
        )
        self.n_items_ = X.shape[1]
        self.item_vocabulary_: Vocabulary | None = X.item_vocabulary
        self.item_counts_ = np.bincount(sessions.items, minlength=self.n_items_)
        self._fit_session_hashes = inputs.session_hashes(X) if frame else None
        self.model_ = self._build_model()

    def _network(self, n_items: int) -> GRU4RecNet:
        """An untrained network of ``n_items`` items with the parameters' architecture."""
        return GRU4RecNet(
            n_items,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            embedding_size=self.num_components,
            constrained=self.constrained_embedding,
        )

    def _build_model(self) -> GRU4RecNet:
        model = self._network(self.n_items_)
        model.reset_parameters(torch.Generator().manual_seed(self.seed_))
        return model.to(self.device_)

    def _build_parts(
        self,
        sessions: SessionArrays,
        order: str,
        generator: torch.Generator | None = None,
        rng: np.random.Generator | None = None,
        counts: np.ndarray | None = None,
        epochs: int | None = None,
    ) -> Parts:
        """The parts of a fit of ``self.model_`` (an update passes its own draws, sampler
        counts and number of epochs)."""
        device = self.device_
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed_)
        # A stream of its own, so the validation sample draws stay as they were.
        rng = np.random.default_rng((self.seed_, 1)) if rng is None else rng
        counts = self.item_counts_ if counts is None else counts
        epochs = self.max_epochs if epochs is None else epochs
        schedule = session_parallel_schedule(
            sessions.offsets, session_order(sessions.start_times, rng, order), self.batch_size
        )
        optimizer = build_optimizer(
            self.model_, self.optimization_algorithm, lr=self.learning_rate, momentum=self.momentum
        )
        return Parts(
            model=self.model_,
            data=EpochData.build(sessions.items, schedule, device),
            optimizer=optimizer,
            loss=self._loss_config(),
            sampler=self._build_sampler(generator, device, schedule.n_steps, counts, epochs),
            generator=generator,
            dropout_embed=self.dropout,
            dropout_hidden=self.dropout if self.dropout_hidden is None else self.dropout_hidden,
            clipnorm=self.clipnorm,
            bptt=self.bptt,
        )

    def _scorer(self) -> Scorer:
        return Scorer(self.model_, self.device_, _EVAL_SLOTS, _SCORE_CHUNK)

    def _evaluator(self, validation: Validation) -> Callable[[], float]:
        rng = np.random.default_rng(self.seed_)  # the draws of validation_sample_size
        return lambda: validation.evaluate(self.stopping_criterion_, self._scorer(), rng)

    # -- files and pickles (gru4rec.persistence, on plain data) -----------------------------

    @property
    def filename(self) -> str:
        """Name of the file at which :meth:`save` writes the model, in recpack's format:
        ``{name}_loss_{best value}.trch`` (the criterion's starting value, ``-inf`` or
        ``inf``, before any epoch was scored)."""
        criterion = getattr(self, "stopping_criterion_", None) or self.stopping_criterion
        return persistence.filename(self.name, getattr(self, "best_value_", None), criterion)

    def save(self, path: str | os.PathLike[str] | None = None) -> pathlib.Path:
        """Save the current model, atomically, to ``path`` (default: :attr:`filename`;
        a directory, existing or ending in a path separator: :attr:`filename` in it).

        Returns the path written. The file holds the weights and plain
        metadata (parameters, architecture, item ids, history), and the state that
        :meth:`partial_fit` continues from (the optimiser's state, the sampler's counts,
        the number of updates); it loads with ``torch.load(weights_only=True)``.
        """
        self._check_fitted()
        fitted = {key: getattr(self, key, None) for key in persistence.SAVED}
        meta = persistence.metadata(
            self.name, self.get_params(deep=False), self.model_.config(), fitted
        )
        return persistence.write(path, self.filename, self.model_.state_dict(), meta)

    @cpu.with_threads
    def load(self, filename: str) -> _GRU4RecBase:
        """Load a model saved with :meth:`save` into this estimator (also a fresh one)."""
        weights, meta = persistence.read(filename, self.name)
        params, fitted = persistence.restored(meta)
        model = persistence.network(meta["architecture"], weights)  # all read before a change
        own = self.get_params(deep=False)
        self.set_params(**{key: value for key, value in params.items() if key in own})
        self.device_ = devices.runtime(self.device)
        for key, value in fitted.items():
            setattr(self, key, value)
        self.model_ = model.to(self.device_)
        return self

    def __getstate__(self) -> dict[str, Any]:
        return persistence.pack(super().__getstate__())

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(persistence.unpack(state))

    # -- scikit-learn ------------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.two_d_array = False
        tags.non_deterministic = devices.may_be_nondeterministic(self.device)
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {
            "requires_y": False,
            "non_deterministic": devices.may_be_nondeterministic(self.device),
        }


def _own(frame: dict[str, Any]) -> dict[str, Any]:
    """A constructor's arguments from its ``locals()``."""
    return {k: v for k, v in frame.items() if k not in ("self", "__class__")}


class GRU4RecNegSampling(_GRU4RecBase):
    """GRU4Rec with sampled negatives: recpack's API, the reference implementation's training.

    Each mini-batch holds ``batch_size`` sessions in parallel; the targets of the other rows plus
    ``num_negatives`` items drawn once per step (``P ~ count ** sample_alpha``) are the negatives
    of every row.

    Attributes
    ----------
    model_ : GRU4RecNet
    history_ : list of dict
        Per epoch: epoch, train_loss (per event), criterion value, seconds, events_per_second.
    best_value_, best_epoch_ : float, int or None
    seed_ : int
    n_items_ : int
    item_vocabulary_ : Vocabulary or None
    item_counts_ : np.ndarray
        Training events per item (over ``fit`` and every ``partial_fit``).
    training_state_ : gru4rec.growth.TrainingState or None
        What :meth:`partial_fit` continues from (optimiser state, sampler counts, updates).
    """

    _parameter_constraints: dict[str, Any] = {
        **_GRU4RecBase._parameter_constraints,
        **constraints.SAMPLED,
    }

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
        stop_early: bool = STOP_EARLY,
        max_iter_no_change: int = MAX_ITER_NO_CHANGE,
        min_improvement: float = MIN_IMPROVEMENT,
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
        session_col: str = SESSION,
        item_col: str = ITEM,
        time_col: str | None = TIME,
        session_order: str = "time",
    ) -> None:
        super().__init__(**_own(locals()))

    def _loss_config(self) -> LossConfig:
        return LossConfig(
            name=self.loss_fn, bpreg=self.bpreg, elu_param=self.elu_param, logq=self.logq
        )

    def _build_sampler(
        self,
        generator: torch.Generator,
        device: torch.device,
        n_steps: int,
        counts: np.ndarray,
        epochs: int,
    ) -> NegativeSampler:
        return build_sampler(
            counts,
            float(self.sample_alpha),
            self.num_negatives,
            generator,
            device,
            # No more draws than the whole fit can use (tiny fits stay cheap).
            buffer_size=min(2**22, self.num_negatives * n_steps * epochs),
        )


class GRU4RecCrossEntropy(_GRU4RecBase):
    """GRU4Rec trained with a softmax over the whole catalogue (recpack's cross-entropy variant).

    The parameters of :class:`GRU4RecNegSampling` without ``loss_fn``, ``num_negatives`` and
    the sampling-related extras. Every step scores every item, so a step costs O(catalogue);
    prefer ``GRU4RecNegSampling(loss_fn='cross-entropy', logq=1.0)`` on large catalogues.
    """

    # The common parameters alone.
    _parameter_constraints: dict[str, Any] = {**_GRU4RecBase._parameter_constraints}

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
        stop_early: bool = STOP_EARLY,
        max_iter_no_change: int = MAX_ITER_NO_CHANGE,
        min_improvement: float = MIN_IMPROVEMENT,
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
        session_col: str = SESSION,
        item_col: str = ITEM,
        time_col: str | None = TIME,
        session_order: str = "time",
    ) -> None:
        super().__init__(**_own(locals()))

    def _loss_config(self) -> LossConfig:
        return LossConfig(name="full-cross-entropy")


# The Parameters sections come from gru4rec.parameters, which declares every parameter once
# (default, annotation, description); the signatures above hold the same defaults.
GRU4RecNegSampling.__doc__ = parameters.document(
    GRU4RecNegSampling.__doc__, parameters.NEG_SAMPLING
)
GRU4RecCrossEntropy.__doc__ = parameters.document(
    GRU4RecCrossEntropy.__doc__, parameters.CROSS_ENTROPY
)
