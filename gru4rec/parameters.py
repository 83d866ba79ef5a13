"""Every constructor parameter of the estimators, declared once: its default, its annotation
and its documentation.

Plain values with no torch or scikit-learn import, so that the command line builds its
options from this table (``gru4rec --help`` stays fast). The estimators' signatures hold the
same defaults and annotations (a test holds them to this table, in this order); their
docstrings' Parameters sections are rendered from it (:func:`document`). The ranges each
parameter takes are :mod:`gru4rec.constraints`, checked in ``fit``.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

from .defaults import ITEM, MAX_ITER_NO_CHANGE, MIN_IMPROVEMENT, SESSION, STOP_EARLY, TIME

__all__ = ["CROSS_ENTROPY", "NEG_SAMPLING", "PARAMETERS", "Parameter", "document"]


@dataclass(frozen=True)
class Parameter:
    """One constructor parameter: ``default``, ``annotation`` (as the signature writes it),
    its numpydoc type line ``kind`` (without the default) and its description ``doc``;
    ``sampled``: taken by :class:`~gru4rec.GRU4RecNegSampling` alone."""

    default: Any
    annotation: str
    kind: str
    doc: str = ""
    sampled: bool = False


_P = Parameter

#: Every parameter, in :class:`~gru4rec.GRU4RecNegSampling`'s signature order.
PARAMETERS: dict[str, Parameter] = {
    "num_layers": _P(1, "int", "int", "Number of GRU layers."),
    "hidden_size": _P(100, "int", "int", "Units per GRU layer."),
    "num_components": _P(
        250,
        "int",
        "int",
        "Size of the input item embedding (unused with ``constrained_embedding``).",
    ),
    "dropout": _P(
        0.0,
        "float",
        "float",
        "Dropout on the input embedding, and on the GRU outputs unless ``dropout_hidden`` is set.",
    ),
    "loss_fn": _P(
        "bpr",
        "str",
        "{'bpr', 'top1', 'bpr-max', 'top1-max', 'cross-entropy'}",
        "Ranking loss over the sampled columns. 'cross-entropy' is a softmax over targets and "
        "negatives, with the ``logq`` correction. A loss registered with "
        "``gru4rec.losses.register_loss`` is taken by its name too.",
        sampled=True,
    ),
    "optimization_algorithm": _P("adagrad", "str", "{'adagrad', 'sgd'}"),
    "momentum": _P(0.0, "float", "float", "Heavy-ball momentum, for both optimisers."),
    "clipnorm": _P(
        1.0,
        "float | None",
        "float or None",
        "Clip the joint l2 norm of each step's gradients; None for no clipping.",
    ),
    "bptt": _P(1, "int", "int", "Steps between truncations of back-propagation through time."),
    "num_negatives": _P(
        50,
        "int",
        "int",
        "Negatives drawn per mini-batch step and shared by its rows.",
        sampled=True,
    ),
    "batch_size": _P(512, "int", "int", "Sessions processed in parallel."),
    "max_epochs": _P(5, "int", "int"),
    "learning_rate": _P(0.03, "float", "float"),
    "stopping_criterion": _P(
        "recall",
        "str | StoppingCriterion",
        "str, StoppingCriterion or criterion object",
        "How validation epochs are compared (see :class:`gru4rec.stopping.StoppingCriterion`). "
        "An object with recpack's criterion protocol works too, recpack's own "
        "``StoppingCriterion`` included: each validated epoch calls its "
        "``update(val_out, X_pred)`` with the held-out events and the predictions (top "
        "``predict_topK`` when set) of the validation rows that ``validation_sample_size`` "
        "draws; True keeps that epoch's weights (:class:`gru4rec.stopping.ObjectCriterion`).",
    ),
    "stop_early": _P(
        STOP_EARLY, "bool", "bool", "Stop after ``max_iter_no_change`` epochs without improvement."
    ),
    "max_iter_no_change": _P(MAX_ITER_NO_CHANGE, "int", "int"),
    "min_improvement": _P(
        MIN_IMPROVEMENT,
        "float",
        "float",
        "A value counts as better only when it beats the best by more than this.",
    ),
    "seed": _P(
        None,
        "int | None",
        "int or None",
        "Seed of every random draw of ``fit``; the seed used is ``seed_``.",
    ),
    "save_best_to_file": _P(False, "bool", "bool", "Call :meth:`save` at the end of ``fit``."),
    "keep_last": _P(
        False, "bool", "bool", "Keep the last epoch rather than the best one on validation data."
    ),
    "predict_topK": _P(
        None, "int | None", "int or None", "Keep only the K best items of each predicted row."
    ),
    "validation_sample_size": _P(
        None,
        "int | None",
        "int or None",
        "Evaluate the criterion on this many randomly drawn validation users.",
    ),
    "sample_alpha": _P(
        0.0,
        "float",
        "float",
        "Popularity exponent of the negative distribution (0: uniform, as recpack).",
        sampled=True,
    ),
    "bpreg": _P(1.0, "float", "float", "Score regularisation of the bpr-max loss.", sampled=True),
    "elu_param": _P(
        0.0,
        "float",
        "float",
        "ELU applied to the scores before the ranking losses (0: none).",
        sampled=True,
    ),
    "dropout_hidden": _P(
        None,
        "float | None",
        "float or None",
        "Dropout on the GRU outputs; None means ``dropout``.",
    ),
    "constrained_embedding": _P(
        False, "bool", "bool", "Use each item's output vector as its input embedding."
    ),
    "logq": _P(
        0.0, "float", "float", "Sampling-bias correction of the cross-entropy loss.", sampled=True
    ),
    "device": _P(
        "auto",
        "str",
        "{'auto', 'cpu', 'cuda'}",
        "Where to train and predict; 'auto' takes CUDA when available.",
    ),
    "verbose": _P(False, "bool", "bool", "Show a progress bar over the training steps."),
    "num_threads": _P(
        1,
        "int | None",
        "int or None",
        "Torch CPU threads used by ``fit``, ``predict``, ``recommend`` and ``score``; torch's "
        "setting is restored when they return. None leaves torch's setting alone (all cores "
        "unless you changed it). One thread is the default because GRU4Rec's mini-batches are "
        "tens to hundreds of rows, too small for several CPU threads to pay off, and on a busy "
        "machine every extra thread makes each small step wait for the others. Raise it on a "
        "large, otherwise idle machine with big batches or a large catalogue.",
    ),
    "session_col": _P(
        SESSION,
        "str",
        "str",
        "Session column of raw-event DataFrames passed to ``fit``, ``predict`` and friends.",
    ),
    "item_col": _P(ITEM, "str", "str", "Item column of raw-event DataFrames."),
    "time_col": _P(
        TIME,
        "str | None",
        "str or None",
        "Timestamp column of raw-event DataFrames. None: the frames have no time column; "
        "events are in time order within each session (row order) and training visits the "
        "sessions in a seeded random order.",
    ),
    "session_order": _P(
        "time",
        "str",
        "{'time', 'random'}",
        "The order in which each epoch visits the training sessions. 'time': by start time, "
        "oldest first, as the reference implementation does; sessions with equal start times "
        "come in a random order drawn from the seed (never in id order). 'random': a seeded "
        "random order regardless of the times, for data whose start times mean little (user "
        "histories numbered by position, one date per import).",
    ),
}

#: The names :class:`~gru4rec.GRU4RecNegSampling` takes, in its signature's order.
NEG_SAMPLING: tuple[str, ...] = tuple(PARAMETERS)
#: The names :class:`~gru4rec.GRU4RecCrossEntropy` takes (all but the sampled losses' own).
CROSS_ENTROPY: tuple[str, ...] = tuple(n for n, p in PARAMETERS.items() if not p.sampled)


def document(doc: str | None, names: tuple[str, ...]) -> str:
    """The class docstring ``doc`` with the numpydoc Parameters section of ``names`` added
    before its Attributes section (at the end when it has none)."""
    section = "\n".join(["Parameters", "----------", *map(_entry, names)])
    text = inspect.cleandoc(doc or "")
    head, sep, tail = text.partition("\n\nAttributes\n----------")
    return f"{head}\n\n{section}" + (f"\n\nAttributes\n----------{tail}" if sep else "")


def _entry(name: str) -> str:
    param = PARAMETERS[name]
    lines = textwrap.wrap(param.doc, 88)
    return "\n".join(
        [f"{name} : {param.kind}, default={param.default!r}", *("    " + line for line in lines)]
    )
