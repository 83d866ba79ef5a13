"""Stopping criteria: the validation value tracked per epoch, the best epoch, and patience.

A :class:`StoppingCriterion` wraps a metric function and knows three things the training loop
needs: what to hand it (``needs``), whether lower or higher is better (``minimize``), and when to
stop (``stop_early``, ``max_iter_no_change``, ``min_improvement``). The loop calls
:meth:`StoppingCriterion.evaluate` on the validation predictions, then
:meth:`StoppingCriterion.update` with the value, and reads :attr:`StoppingCriterion.should_stop`.

Named criteria (``StoppingCriterion.create(name)``, see :attr:`StoppingCriterion.FUNCTIONS`):

``'recall'``
    Recall@50 of the held-out items (:func:`gru4rec.metrics.recall_k`), maximised. Needs the top-50
    predicted scores per validation user.
``'ndcg'``
    NDCG@50 of the held-out items (:func:`gru4rec.metrics.ndcg_k`), maximised. Needs top-50 scores.
``'precision'``
    Precision@10 of the held-out items (:func:`gru4rec.metrics.precision_k`), maximised. Needs the
    top-10 scores.
``'bpr'``
    Sampled BPR loss (:func:`gru4rec.metrics.bpr_loss_metric`), minimised. Needs full scores.
``'warp'``
    Sampled WARP loss (:func:`gru4rec.metrics.warp_loss_metric`), minimised. Needs full scores.
``'mrr'``
    Next-item MRR@20 at every position of the validation sessions
    (:func:`gru4rec.metrics.mrr_at_k`), maximised. Needs conservative next-item ranks.
``'next_item_recall'``
    Next-item Recall@20 at every position of the validation sessions
    (:func:`gru4rec.metrics.recall_at_k`), maximised. Needs conservative next-item ranks.

The first five carry recpack's names and meanings and only look at the held-out (last) items; the
last two follow the session-based protocol of the GRU4Rec papers.

Any other object with recpack's criterion protocol is accepted as well (see
:class:`ObjectCriterion`): ``update(val_out, X_pred) -> bool`` called once per validated epoch
with the held-out interactions and the predictions of the (sampled) validation rows, True when
that epoch is the best so far; optionally ``best_value``, ``minimize`` and ``reset()``. An
exception named ``EarlyStoppingException`` (recpack's, or :class:`EarlyStoppingException`)
raised by ``update`` ends the training after that epoch.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from gru4rec import metrics

from .checks import check_int
from .defaults import MAX_ITER_NO_CHANGE, MIN_IMPROVEMENT, STOP_EARLY
from .notices import warn

__all__ = [
    "NEEDS",
    "EarlyStoppingException",
    "ObjectCriterion",
    "StoppingCriterion",
    "configured",
    "criterion_name",
    "is_criterion_object",
]

#: What a criterion's function consumes; tells the estimator what to compute on validation data.
NEEDS = ("topk", "scores", "ranks")


class StoppingCriterion:
    """Track a validation metric across epochs: best value, best epoch, early stopping.

    Parameters
    ----------
    func : callable
        The metric. With ``needs="topk"`` or ``"scores"`` it is called as
        ``func(y_true, y_pred, [k=k,] **kwargs)``; with ``needs="ranks"`` as
        ``func(ranks, [k=k,] **kwargs)`` (``k`` is passed only when not None). Must be a
        module-level function for the criterion to pickle.
    minimize : bool, default=False
        Lower values are better (losses) instead of higher (accuracies).
    stop_early : bool, default=False
        Enable :attr:`should_stop`.
    max_iter_no_change : int, default=5
        With ``stop_early``, stop after this many consecutive updates without improvement.
    min_improvement : float, default=0.0
        A value counts as an improvement only when it beats the best so far by *more* than this.
    needs : {"topk", "scores", "ranks"}, default="topk"
        What :meth:`evaluate` takes: ``"topk"``, a csr of the top-``k`` predicted scores per
        validation user plus the held-out csr ``y_true``; ``"scores"``, a csr of full scores plus
        ``y_true``; ``"ranks"``, the conservative 1-based next-item ranks at every position of the
        validation sessions.
    k : int, optional
        Cut-off passed to ``func``; for ``needs="topk"`` it is also how many predictions per user
        the estimator must keep.
    name : str, optional
        Display name (used e.g. in checkpoint file names); defaults to ``func.__name__``.
    **kwargs
        Extra keyword arguments for ``func`` (e.g. ``sample_size``, ``seed``).

    Attributes
    ----------
    best_value : float or None
        Best value seen so far (None before the first update).
    best_iteration : int or None
        0-based index of the :meth:`update` call that produced ``best_value``.
    n_iter_no_change : int
        Consecutive updates since the last improvement.
    n_updates : int
        Number of :meth:`update` calls since construction or :meth:`reset`.
    history : list of float
        Every value passed to :meth:`update`.

    Examples
    --------
    >>> crit = StoppingCriterion.create("recall", stop_early=True, max_iter_no_change=2)
    >>> [crit.update(v) for v in (0.1, 0.2, 0.2, 0.15)]
    [True, True, False, False]
    >>> crit.should_stop, crit.best_value, crit.best_iteration
    (True, 0.2, 1)
    """

    #: The named criteria: function, direction, input kind and default cut-off.
    FUNCTIONS: ClassVar[dict[str, dict[str, Any]]] = {
        "recall": {"func": metrics.recall_k, "minimize": False, "needs": "topk", "k": 50},
        "ndcg": {"func": metrics.ndcg_k, "minimize": False, "needs": "topk", "k": 50},
        "precision": {"func": metrics.precision_k, "minimize": False, "needs": "topk", "k": 10},
        "bpr": {"func": metrics.bpr_loss_metric, "minimize": True, "needs": "scores", "k": None},
        "warp": {"func": metrics.warp_loss_metric, "minimize": True, "needs": "scores", "k": None},
        "mrr": {"func": metrics.mrr_at_k, "minimize": False, "needs": "ranks", "k": 20},
        "next_item_recall": {
            "func": metrics.recall_at_k,
            "minimize": False,
            "needs": "ranks",
            "k": 20,
        },
    }

    def __init__(
        self,
        func: Callable[..., float],
        minimize: bool = False,
        stop_early: bool = STOP_EARLY,
        max_iter_no_change: int = MAX_ITER_NO_CHANGE,
        min_improvement: float = MIN_IMPROVEMENT,
        needs: str = "topk",
        k: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(func):
            raise TypeError(f"func must be callable, got {func!r}")
        if needs not in NEEDS:
            raise ValueError(f"needs must be one of {NEEDS}, got {needs!r}")
        check_int("max_iter_no_change", max_iter_no_change, what="an int >= 1")
        if not (
            isinstance(min_improvement, numbers.Real)
            and not isinstance(min_improvement, bool)
            and min_improvement >= 0
        ):
            raise ValueError(f"min_improvement must be a number >= 0, got {min_improvement!r}")
        check_int("k", k, none=True)
        if needs == "topk" and k is None:
            raise ValueError('needs="topk" requires k: the estimator must know how many to keep')
        self.func = func
        self.minimize = bool(minimize)
        self.stop_early = bool(stop_early)
        self.max_iter_no_change = int(max_iter_no_change)
        self.min_improvement = float(min_improvement)
        self.needs = needs
        self.k = None if k is None else int(k)
        self.name = name if name is not None else getattr(func, "__name__", type(func).__name__)
        self.kwargs = kwargs
        self.reset()

    @classmethod
    def create(cls, name: str, **overrides: Any) -> StoppingCriterion:
        """Build a named criterion from :attr:`FUNCTIONS`.

        Parameters
        ----------
        name : str
            One of the keys of :attr:`FUNCTIONS`.
        **overrides
            Constructor arguments (``k``, ``stop_early``, ``max_iter_no_change``,
            ``min_improvement``, ...) or extra keyword arguments for the function
            (``sample_size``, ``seed``, ...); they replace the named defaults.

        Returns
        -------
        StoppingCriterion

        Raises
        ------
        ValueError
            If ``name`` is not a named criterion; the message lists the valid names.
        """
        if not isinstance(name, str) or name not in cls.FUNCTIONS:
            raise ValueError(
                f"stopping_criterion must be one of {sorted(cls.FUNCTIONS)} or a "
                f"StoppingCriterion instance, got {name!r}"
            )
        params: dict[str, Any] = {**cls.FUNCTIONS[name], "name": name}
        params.update(overrides)
        return cls(**params)

    # -- evaluation ---------------------------------------------------------------------------

    def evaluate(
        self,
        *,
        y_true: Any = None,
        y_pred: Any = None,
        ranks: np.ndarray | None = None,
    ) -> float:
        """Compute the criterion's value from the inputs that :attr:`needs` asks for.

        Parameters
        ----------
        y_true : sparse matrix, optional
            Held-out interactions of the validation users (``needs`` "topk" or "scores").
        y_pred : sparse matrix, optional
            Top-``k`` or full predicted scores of the same users (``needs`` "topk" or "scores").
        ranks : ndarray of int, optional
            Conservative 1-based next-item ranks (``needs="ranks"``).

        Returns
        -------
        float

        Raises
        ------
        ValueError
            When an input that ``needs`` requires is missing or one it does not use is given.
        """
        k_kw = {} if self.k is None else {"k": self.k}
        if self.needs == "ranks":
            if ranks is None or y_true is not None or y_pred is not None:
                raise ValueError(
                    f"criterion {self.name!r} needs ranks=... only (next-item ranks), "
                    "not y_true/y_pred"
                )
            return float(self.func(ranks, **k_kw, **self.kwargs))
        if y_true is None or y_pred is None or ranks is not None:
            raise ValueError(
                f"criterion {self.name!r} needs y_true=... and y_pred=... "
                f"({'top-k' if self.needs == 'topk' else 'full'} scores), not ranks"
            )
        return float(self.func(y_true, y_pred, **k_kw, **self.kwargs))

    # -- tracking -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every value seen; the next :meth:`update` is the first again."""
        self.best_value: float | None = None
        self.best_iteration: int | None = None
        self.n_iter_no_change = 0
        self.n_updates = 0
        self.history: list[float] = []

    def is_better(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_improvement``.

        Anything beats "no value yet" and a NaN best; a NaN value beats nothing else.
        """
        best = self.best_value
        if best is None or math.isnan(best):
            return True
        # A NaN value fails both comparisons below, so it never beats a number.
        if self.minimize:
            return value < best - self.min_improvement
        return value > best + self.min_improvement

    def update(self, value: float) -> bool:
        """Record one epoch's value.

        Parameters
        ----------
        value : float
            The criterion's value for this epoch.

        Returns
        -------
        bool
            True when ``value`` is the new best (it beat the previous best by more than
            ``min_improvement``, or it is the first value); the caller then keeps this epoch's
            weights.
        """
        value = float(value)
        better = self.is_better(value)
        if better:
            self.best_value = value
            self.best_iteration = self.n_updates
            self.n_iter_no_change = 0
        else:
            self.n_iter_no_change += 1
        self.n_updates += 1
        self.history.append(value)
        return better

    @property
    def should_stop(self) -> bool:
        """True when early stopping is on and patience is used up."""
        return self.stop_early and self.n_iter_no_change >= self.max_iter_no_change

    def __repr__(self) -> str:
        return (
            f"StoppingCriterion(name={self.name!r}, minimize={self.minimize}, "
            f"needs={self.needs!r}, k={self.k}, stop_early={self.stop_early}, "
            f"max_iter_no_change={self.max_iter_no_change}, "
            f"min_improvement={self.min_improvement})"
        )

    def __str__(self) -> str:
        """The name, with what differs from the named criterion's defaults (for a custom
        one: its cut-off) in brackets: ``mrr``, ``mrr(k=5)``; no object addresses."""
        named = self.FUNCTIONS.get(self.name)
        parts = []
        if (self.k != named["k"]) if named is not None else self.k is not None:
            parts.append(f"k={self.k}")
        parts += [
            f"{key}={getattr(self, key)}" for key in SETTINGS if getattr(self, key) != SETTINGS[key]
        ]
        parts += [f"{key}={value}" for key, value in sorted(self.kwargs.items())]
        return f"{self.name}({','.join(parts)})" if parts else self.name

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint stores of the criterion: name, direction, input kind, cut-off,
        the early-stopping settings and the function's plain keyword arguments."""
        return {
            "name": self.name,
            "minimize": self.minimize,
            "needs": self.needs,
            "k": self.k,
            "stop_early": self.stop_early,
            "max_iter_no_change": self.max_iter_no_change,
            "min_improvement": self.min_improvement,
            "kwargs": {
                key: value
                for key, value in self.kwargs.items()
                if value is None or isinstance(value, bool | int | float | str)
            },
        }

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> StoppingCriterion:
        """The criterion of :meth:`to_dict`: a named one is rebuilt; a custom one (whose
        function a file cannot hold) becomes a placeholder that says so when evaluated.
        Settings missing from ``meta`` keep their defaults."""
        name = meta["name"]
        settings = {key: meta[key] for key in SETTINGS if key in meta}
        if name in cls.FUNCTIONS:
            k = {} if meta.get("k") is None else {"k": meta["k"]}
            return cls.create(name, **k, **settings, **meta.get("kwargs", {}))
        return cls(
            _custom_criterion_unavailable,
            minimize=bool(meta.get("minimize", False)),
            needs=meta.get("needs", "ranks"),
            k=meta.get("k"),
            name=name,
            **settings,
        )


def _custom_criterion_unavailable(*args: Any, **kwargs: Any) -> float:
    raise ValueError(
        "this model was saved with a custom stopping criterion, which cannot be stored in a "
        "file; pass it again with set_params(stopping_criterion=...) before fitting"
    )


#: The settings an estimator passes on to its criterion, with their defaults (the same on
#: both sides).
SETTINGS = {
    "stop_early": STOP_EARLY,
    "max_iter_no_change": MAX_ITER_NO_CHANGE,
    "min_improvement": MIN_IMPROVEMENT,
}


class EarlyStoppingException(Exception):
    """Raised by a criterion object's ``update`` to end the training after this epoch.

    Any exception whose class (or a base class) has this name counts, recpack's included.
    """


def _is_early_stop(exc: BaseException) -> bool:
    # Matched by name: recpack's own class must work without importing recpack.
    return any(cls.__name__ == "EarlyStoppingException" for cls in type(exc).__mro__)


def is_criterion_object(criterion: Any) -> bool:
    """Whether ``criterion`` is a user's criterion object: not a name, not a
    :class:`StoppingCriterion`, and with a callable ``update`` (recpack's protocol)."""
    # A class is not an instance: its update would be called unbound.
    return not isinstance(criterion, str | StoppingCriterion | type) and callable(
        getattr(criterion, "update", None)
    )


def _object_name(obj: Any) -> str:
    """A criterion object's display name: its ``name``, else its metric function's name
    (recpack's criteria hold it as ``loss_function``), else its class name. Never one of the
    named criteria, which a saved model would rebuild in its place."""
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        name = getattr(getattr(obj, "loss_function", None), "__name__", None)
    if not isinstance(name, str) or not name or name in StoppingCriterion.FUNCTIONS:
        name = type(obj).__name__
    return name


def criterion_name(criterion: Any) -> str:
    """The display name of a ``stopping_criterion`` parameter: a name, a
    :class:`StoppingCriterion` or a criterion object."""
    if isinstance(criterion, str):
        return criterion
    if isinstance(criterion, StoppingCriterion):
        return criterion.name
    return _object_name(criterion)


class ObjectCriterion(StoppingCriterion):
    """A criterion object with recpack's protocol behind this package's interface.

    Each validated epoch, :meth:`evaluate` hands the object the held-out interactions of the
    (sampled) validation rows and the predictions for the same rows,
    ``obj.update(y_true, y_pred)``, exactly as recpack's estimators do; the bool it returns
    says whether this epoch is the best so far, and so whether its weights are kept.

    Parameters
    ----------
    obj : object
        Has ``update(y_true, y_pred) -> bool``. Optional: ``best_value`` (read after every
        update: the estimator's ``best_value_`` and the model's file name),
        ``minimize`` (the direction, for the file name before any epoch), ``reset()``
        (called at the start of every fit) and ``name``. ``update`` may raise an exception
        named ``EarlyStoppingException`` (as recpack's criterion does when its own
        ``stop_early`` patience is used up): the training ends after that epoch, which
        counts as not improved.
    k : int, optional
        When given, ``y_pred`` holds each row's top-``k`` scores only (an estimator's
        ``predict_topK``, as in recpack); else every item's score.
    stop_early, max_iter_no_change : optional
        Patience counted here on the epochs whose ``update`` returned False.
    min_improvement : float, default=0.0
        Not applied here: the object decides what improves. Kept for the record.

    Notes
    -----
    The per-epoch value in an estimator's ``history_`` is the object's ``best_value`` after
    that epoch's update (NaN without one): ``update`` reports a verdict, not the value.
    """

    def __init__(
        self,
        obj: Any,
        *,
        k: int | None = None,
        stop_early: bool = STOP_EARLY,
        max_iter_no_change: int = MAX_ITER_NO_CHANGE,
        min_improvement: float = MIN_IMPROVEMENT,
    ) -> None:
        if not callable(getattr(obj, "update", None)):
            raise ValueError(
                "stopping_criterion must have an update(val_out, X_pred) method returning "
                f"whether the epoch is the best so far; got {obj!r}"
            )
        self.obj = obj
        self._verdict: bool | None = None
        self._stopped = False
        super().__init__(
            obj.update,
            minimize=bool(getattr(obj, "minimize", False)),
            stop_early=stop_early,
            max_iter_no_change=max_iter_no_change,
            min_improvement=min_improvement,
            needs="scores" if k is None else "topk",
            k=k,
            name=_object_name(obj),
        )

    def reset(self) -> None:
        """Forget every verdict seen; resets the object too when it has ``reset()``."""
        reset = getattr(self.obj, "reset", None)
        if callable(reset):
            reset()
        self.best_iteration: int | None = None
        self.n_iter_no_change = 0
        self.n_updates = 0
        self.history: list[float] = []
        self._verdict = None
        self._stopped = False

    @property
    def best_value(self) -> float | None:  # type: ignore[override]
        """The object's ``best_value`` (None before the first update or without one)."""
        if self.n_updates == 0:
            return None
        try:
            return float(self.obj.best_value)
        except (AttributeError, TypeError, ValueError):
            return None

    def evaluate(
        self,
        *,
        y_true: Any = None,
        y_pred: Any = None,
        ranks: np.ndarray | None = None,
    ) -> float:
        """Call the object's ``update(y_true, y_pred)`` and hold its verdict for
        :meth:`update`; returns the object's best value after it (NaN without one)."""
        if y_true is None or y_pred is None or ranks is not None:
            raise ValueError(f"criterion {self.name!r} needs y_true=... and y_pred=..., not ranks")
        try:
            verdict = self.obj.update(y_true, y_pred)
        except Exception as exc:
            if not _is_early_stop(exc):
                raise
            verdict, self._stopped = False, True
        if not isinstance(verdict, bool | np.bool_):
            raise TypeError(
                f"stopping_criterion.update must return a bool (whether this epoch is the best "
                f"so far), got {verdict!r}"
            )
        self._verdict = bool(verdict)
        try:
            return float(self.obj.best_value)
        except (AttributeError, TypeError, ValueError):
            return math.nan

    def update(self, value: float) -> bool:
        """Record the epoch judged by the last :meth:`evaluate`; True when the object said
        it is the best so far. ``value`` goes to :attr:`history` only."""
        if self._verdict is None:
            raise RuntimeError(
                f"criterion {self.name!r} judges an epoch in evaluate(); call it first"
            )
        better, self._verdict = self._verdict, None
        if better:
            self.best_iteration = self.n_updates
            self.n_iter_no_change = 0
        else:
            self.n_iter_no_change += 1
        self.n_updates += 1
        self.history.append(float(value))
        return better

    @property
    def should_stop(self) -> bool:
        """True when the object raised ``EarlyStoppingException``, or when early stopping is
        on and patience is used up."""
        return self._stopped or super().should_stop

    def __repr__(self) -> str:
        return (
            f"ObjectCriterion({self.obj!r}, k={self.k}, stop_early={self.stop_early}, "
            f"max_iter_no_change={self.max_iter_no_change})"
        )


def _configured_object(obj: Any, top_k: int | None, settings: dict[str, Any]) -> ObjectCriterion:
    """A fresh :class:`ObjectCriterion` around a copy of the user's object (the parameter
    itself is never updated), reset when it can be."""
    if isinstance(obj, ObjectCriterion):
        obj = obj.obj
    try:
        obj = copy.deepcopy(obj)
    except Exception:  # an object that cannot be copied is used itself, as recpack does
        pass
    wanted = settings.get("min_improvement", SETTINGS["min_improvement"])
    if wanted != SETTINGS["min_improvement"]:
        own = getattr(obj, "min_improvement", None)
        if own == SETTINGS["min_improvement"]:
            obj.min_improvement = float(wanted)  # recpack's criterion applies it itself
        elif own is None:
            warn(
                f"min_improvement={wanted!r} has no effect: the stopping criterion object "
                "decides itself which epoch improves"
            )
        elif own != wanted:
            warn(f"the stopping criterion's own min_improvement={own!r} is kept over {wanted!r}")
    return ObjectCriterion(
        obj,
        k=top_k,
        stop_early=settings.get("stop_early", SETTINGS["stop_early"]),
        max_iter_no_change=settings.get("max_iter_no_change", SETTINGS["max_iter_no_change"]),
        min_improvement=float(wanted),
    )


def configured(criterion: Any, *, top_k: int | None = None, **settings: Any) -> StoppingCriterion:
    """A fresh criterion for one fit: a named one built with ``settings``, a reset copy
    of a given instance, or a criterion object (recpack's protocol) behind an
    :class:`ObjectCriterion`.

    On a copy, ``settings`` fill in what the instance leaves at its defaults; what the user
    set on the instance is kept, with a warning when ``settings`` asked for something else.
    ``top_k`` (an estimator's ``predict_topK``) is how many predictions per row a criterion
    object sees (None: all), as recpack hands its criterion the estimator's predictions.
    """
    if isinstance(criterion, ObjectCriterion) or is_criterion_object(criterion):
        return _configured_object(criterion, top_k, settings)
    if not isinstance(criterion, StoppingCriterion):
        return StoppingCriterion.create(criterion, **settings)
    crit = copy.deepcopy(criterion)
    crit.reset()
    for key, value in settings.items():
        own = getattr(crit, key)
        if own == SETTINGS[key]:
            setattr(crit, key, type(own)(value))
        elif value != SETTINGS[key] and value != own:
            warn(f"the stopping criterion's own {key}={own!r} is kept over {key}={value!r}")
    return crit
