"""The constraint objects every constructor parameter is declared with, and their tables.

Each estimator class declares its parameters as ``_parameter_constraints`` (as
scikit-learn does), built from the tables here: :data:`COMMON` holds the parameters
both estimators take, :data:`SAMPLED` the sampled losses' own. ``fit`` checks
the class's table (never ``__init__``, as scikit-learn asks). Every constraint also
lists values it rejects (``invalid()``), from which the tests are generated.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import device
from .checks import is_int
from .losses import sampled_loss_names
from .optim import OPTIMIZERS
from .schedule import SESSION_ORDERS
from .stopping import StoppingCriterion, criterion_name, is_criterion_object

__all__ = ["COMMON", "PARAMS", "SAMPLED", "identifier", "validate"]


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (None too when ``none``)."""

    low: int
    high: int | None = None
    none: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.none:
            return
        if not is_int(value, self.low, self.high):
            top = "" if self.high is None else f" and <= {self.high}"
            raise ValueError(f"{name} must be an integer >= {self.low}{top}; got {value!r}")

    def invalid(self) -> list[Any]:
        bad = [str(self.low), float(self.low), np.float64(self.low), True, self.low - 1]
        bad += [self.low + 0.5] + ([] if self.none else [None])
        return bad + ([] if self.high is None else [self.high + 1])


@dataclass(frozen=True)
class Real:
    """A finite number in the interval from ``low`` to ``high`` (open ends as flagged)."""

    low: float
    high: float | None = None
    open_low: bool = False
    open_high: bool = True
    none: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.none:
            return
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
        if ok:
            ok = value > self.low if self.open_low else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.open_high else value <= self.high
        if not ok:
            lo = "(" if self.open_low else "["
            hi = "inf)" if self.high is None else f"{self.high}{')' if self.open_high else ']'}"
            raise ValueError(f"{name} must be a number in {lo}{self.low}, {hi}; got {value!r}")

    def invalid(self) -> list[Any]:
        bad = [str(self.low), True, float("nan"), -float("inf"), self.low - 1.0]
        bad += ([self.low] if self.open_low else []) + ([] if self.none else [None])
        if self.high is None:
            return [*bad, float("inf")]
        return [*bad, self.high if self.open_high else self.high + 0.5, self.high + 1.0]


@dataclass(frozen=True)
class Bool:
    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {value!r}")

    def invalid(self) -> list[Any]:
        return [1, 0, "yes", None]


@dataclass(frozen=True)
class OneOf:
    """One of ``options``: a collection, or a function returning the names allowed at the
    time of the check (a registry that grows after import)."""

    options: Iterable[str] | Callable[[], Iterable[str]]

    def allowed(self) -> tuple[str, ...]:
        return tuple(self.options() if callable(self.options) else self.options)

    def check(self, name: str, value: Any) -> None:
        allowed = self.allowed()
        if not isinstance(value, str) or value not in allowed:
            names = ", ".join(map(repr, allowed))
            raise ValueError(f"{name} must be one of {names}; got {value!r}")

    def invalid(self) -> list[Any]:
        first = self.allowed()[0]
        return [None, [first], first.upper() + "-unknown", 1]


@dataclass(frozen=True)
class Text:
    """A column name (None too when ``none``)."""

    none: bool = False

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) and not (value is None and self.none):
            raise ValueError(f"{name} must be a column name (str); got {value!r}")

    def invalid(self) -> list[Any]:
        return [0, ["session_id"]] + ([] if self.none else [None])


@dataclass(frozen=True)
class Check:
    """Anything ``func(value)`` accepts (it raises ValueError otherwise); ``bad`` lists
    values it rejects."""

    func: Callable[[Any], Any]
    bad: tuple[Any, ...] = ()

    def check(self, name: str, value: Any) -> None:
        self.func(value)

    def invalid(self) -> list[Any]:
        return list(self.bad)


def _criterion(value: Any) -> None:
    if not isinstance(value, (str, StoppingCriterion)) and not is_criterion_object(value):
        raise ValueError(
            "stopping_criterion must be a criterion name, a StoppingCriterion, or an object "
            "with an update(val_out, X_pred) method returning whether the epoch is the best "
            f"so far (recpack's criterion protocol); got {value!r}"
        )


#: The parameters both estimators take.
COMMON: dict[str, Any] = {
    "num_layers": Int(1),
    "hidden_size": Int(1),
    "num_components": Int(1),
    "dropout": Real(0.0, 1.0),
    "optimization_algorithm": OneOf(OPTIMIZERS),
    "momentum": Real(0.0, 1.0),
    "clipnorm": Real(0.0, open_low=True, none=True),
    "bptt": Int(1),
    "batch_size": Int(1),
    "max_epochs": Int(1),
    "learning_rate": Real(0.0, open_low=True),
    "stopping_criterion": Check(_criterion, bad=(None, 1, "auc")),
    "stop_early": Bool(),
    "max_iter_no_change": Int(1),
    "min_improvement": Real(0.0),
    "seed": Int(0, high=2**63 - 1, none=True),
    "save_best_to_file": Bool(),
    "keep_last": Bool(),
    "predict_topK": Int(1, none=True),
    "validation_sample_size": Int(1, none=True),
    "dropout_hidden": Real(0.0, 1.0, none=True),
    "constrained_embedding": Bool(),
    "device": Check(device.resolve, bad=(None, 0, "gpu", "cuda:x", "meta", "tpu")),
    "verbose": Bool(),
    "num_threads": Int(1, none=True),
    "session_col": Text(),
    "item_col": Text(),
    "time_col": Text(none=True),
    "session_order": OneOf(SESSION_ORDERS),
}

#: The sampled losses' own: :class:`~gru4rec.GRU4RecNegSampling` adds them to :data:`COMMON`.
SAMPLED: dict[str, Any] = {
    "loss_fn": OneOf(sampled_loss_names),
    "num_negatives": Int(1),
    "sample_alpha": Real(0.0),
    "bpreg": Real(0.0),
    "elu_param": Real(0.0),
    "logq": Real(0.0),
}

#: Every parameter of either estimator.
PARAMS: dict[str, Any] = {**COMMON, **SAMPLED}


def validate(params: dict[str, Any], constraints: dict[str, Any] | None = None) -> None:
    """Check every parameter of ``params`` (``get_params()``) against ``constraints``
    (a class's ``_parameter_constraints``; :data:`PARAMS` when None).

    Raises
    ------
    ValueError
        Naming the first parameter out of its range.
    """
    table = PARAMS if constraints is None else constraints
    for name, value in params.items():
        table[name].check(name, value)


def identifier(name: str, params: dict[str, Any]) -> str:
    """``name(param=value,...)`` as recpack writes it: values by ``str``, in the order of
    ``params``; a criterion object by its name (its ``str`` may hold an address)."""
    parts = []
    for key, value in params.items():
        if isinstance(value, np.generic):  # e.g. np.str_ from a grid given as an array
            value = value.item()
        if is_criterion_object(value):
            value = criterion_name(value)
        parts.append(f"{key}={value}")
    return f"{name}({','.join(parts)})"
