"""Every constructor parameter of the estimators, its type and range, in one table.

Both estimators validate against :data:`PARAMS` in ``fit`` (never in ``__init__``, as
scikit-learn asks); each checks the parameters of its own signature.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import device
from .losses import LOSSES
from .optim import OPTIMIZERS
from .schedule import SESSION_ORDERS
from .stopping import StoppingCriterion, is_criterion_object

__all__ = ["PARAMS", "validate"]


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (None too when ``none``)."""

    low: int
    high: int | None = None
    none: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.none:
            return
        ok = not isinstance(value, bool) and isinstance(value, numbers.Integral)
        if not ok or value < self.low or (self.high is not None and value > self.high):
            top = "" if self.high is None else f" and <= {self.high}"
            raise ValueError(f"{name} must be an integer >= {self.low}{top}; got {value!r}")


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


@dataclass(frozen=True)
class Bool:
    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {value!r}")


@dataclass(frozen=True)
class OneOf:
    """One of ``options``."""

    options: Iterable[str]

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or value not in self.options:
            allowed = ", ".join(map(repr, self.options))
            raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


@dataclass(frozen=True)
class Text:
    """A column name (None too when ``none``)."""

    none: bool = False

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) and not (value is None and self.none):
            raise ValueError(f"{name} must be a column name (str); got {value!r}")


@dataclass(frozen=True)
class Check:
    """Anything ``func(value)`` accepts (it raises ValueError otherwise)."""

    func: Callable[[Any], Any]

    def check(self, name: str, value: Any) -> None:
        self.func(value)


def _criterion(value: Any) -> None:
    if not isinstance(value, (str, StoppingCriterion)) and not is_criterion_object(value):
        raise ValueError(
            "stopping_criterion must be a criterion name, a StoppingCriterion, or an object "
            "with an update(val_out, X_pred) method returning whether the epoch is the best "
            f"so far (recpack's criterion protocol); got {value!r}"
        )


PARAMS: dict[str, Any] = {
    "num_layers": Int(1),
    "hidden_size": Int(1),
    "num_components": Int(1),
    "dropout": Real(0.0, 1.0),
    "loss_fn": OneOf(LOSSES),
    "optimization_algorithm": OneOf(OPTIMIZERS),
    "momentum": Real(0.0, 1.0),
    "clipnorm": Real(0.0, open_low=True, none=True),
    "bptt": Int(1),
    "num_negatives": Int(1),
    "batch_size": Int(1),
    "max_epochs": Int(1),
    "learning_rate": Real(0.0, open_low=True),
    "stopping_criterion": Check(_criterion),
    "stop_early": Bool(),
    "max_iter_no_change": Int(1),
    "min_improvement": Real(0.0),
    "seed": Int(0, high=2**63 - 1, none=True),
    "save_best_to_file": Bool(),
    "keep_last": Bool(),
    "predict_topK": Int(1, none=True),
    "validation_sample_size": Int(1, none=True),
    "sample_alpha": Real(0.0),
    "bpreg": Real(0.0),
    "elu_param": Real(0.0),
    "dropout_hidden": Real(0.0, 1.0, none=True),
    "constrained_embedding": Bool(),
    "logq": Real(0.0),
    "device": Check(device.resolve),
    "verbose": Bool(),
    "num_threads": Int(1, none=True),
    "session_col": Text(),
    "item_col": Text(),
    "time_col": Text(none=True),
    "session_order": OneOf(SESSION_ORDERS),
}


def validate(params: dict[str, Any]) -> None:
    """Check every parameter of ``params`` (``get_params()``) against :data:`PARAMS`.

    Raises
    ------
    ValueError
        Naming the first parameter out of its range.
    """
    for name, value in params.items():
        PARAMS[name].check(name, value)
