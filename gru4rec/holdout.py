"""Validation data, converted once per fit, and the criterion's value of each epoch.

``(validation_in, validation_out)`` becomes flat session arrays once: the histories of the
validation sessions (for criteria on predicted items) and, for criteria on next-item ranks,
each whole session (history followed by its held-out events). Each epoch then only takes
the sampled sessions' slices, with numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import inputs
from .inference import Scorer
from .matrix import InteractionMatrix, Vocabulary
from .stopping import StoppingCriterion

__all__ = ["Validation", "from_pair"]


class Validation:
    """Evaluates a stopping criterion on validation data, one call per epoch.

    Parameters
    ----------
    val_in, val_out : InteractionMatrix
        Histories and held-out events, rows aligned, with timestamps and the training items
        (see :func:`gru4rec.inputs.check_items`).
    sample_size : int or None
        Evaluate on this many randomly drawn sessions per epoch (None: all).

    Raises
    ------
    ValueError
        When the pair does not fit the training data or leaves nothing to evaluate.
    """

    def __init__(
        self,
        val_in: InteractionMatrix,
        val_out: InteractionMatrix,
        sample_size: int | None,
    ) -> None:
        _check(val_in, val_out)
        history = val_in.session_arrays()
        self._y_true = val_out.values
        self.users = np.intersect1d(history.users, np.flatnonzero(self._y_true.getnnz(axis=1)))
        if len(self.users) == 0:
            raise ValueError(
                "validation_data: no session has events in both validation_in and validation_out"
            )
        self.shape = val_in.shape
        self.sample_size = sample_size
        self._history = (history.items, history.offsets, history.users)
        self._val_out = val_out
        self._whole: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._history_ts = history.timestamps

    def evaluate(
        self, criterion: StoppingCriterion, scorer: Scorer, rng: np.random.Generator
    ) -> float:
        """The criterion's value for the model of ``scorer`` (one epoch's evaluation);
        ``rng`` draws the sessions when ``sample_size`` asks for fewer than all."""
        users = self.users
        if self.sample_size is not None and len(users) > self.sample_size:
            users = np.sort(rng.choice(users, self.sample_size, replace=False))
        if criterion.needs == "ranks":
            items, offsets, _ = _sessions_of(self._whole_sessions(), users)
            return criterion.evaluate(ranks=scorer.next_item_ranks(items, offsets))
        items, offsets, rows = _sessions_of(self._history, users)
        k = criterion.k if criterion.needs == "topk" else None
        y_pred = scorer.predict(items, offsets, rows, self.shape, k)
        return criterion.evaluate(y_true=_rows_only(self._y_true, users), y_pred=y_pred)

    def _whole_sessions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each session's history followed by its held-out events, ordered by time (a tie
        keeps the history first), built on first use."""
        if self._whole is None:
            out = self._val_out.session_arrays()
            h_items, h_offsets, h_users = self._history
            user = np.concatenate(
                [np.repeat(h_users, np.diff(h_offsets)), np.repeat(out.users, out.lengths)]
            )
            ts = np.concatenate([self._history_ts, out.timestamps])
            source = np.repeat([0, 1], [len(h_items), out.n_events])
            order = np.lexsort((np.arange(len(user)), source, ts, user))
            users, counts = np.unique(user[order], return_counts=True)
            offsets = np.zeros(len(users) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            self._whole = (np.concatenate([h_items, out.items])[order], offsets, users)
        return self._whole


def _check(val_in: InteractionMatrix, val_out: InteractionMatrix) -> None:
    if val_out.num_interactions == 0:
        raise ValueError("validation_data: validation_out holds no events")
    if val_in.shape[0] != val_out.shape[0]:
        raise ValueError(
            f"validation_in has {val_in.shape[0]} rows but validation_out {val_out.shape[0]}"
        )


def _sessions_of(
    sessions: tuple[np.ndarray, np.ndarray, np.ndarray], users: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sessions of ``users`` (a sorted subset of the sessions' users): items, offsets,
    users."""
    items, offsets, all_users = sessions
    pick = np.searchsorted(all_users, users)
    lengths = np.diff(offsets)[pick]
    new_offsets = np.zeros(len(pick) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    take = np.repeat(offsets[pick] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return items[take], new_offsets, users


def _rows_only(y: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``y`` with every row but ``rows`` emptied (same shape)."""
    keep = np.zeros(y.shape[0], dtype=bool)
    keep[rows] = True
    counts = np.diff(y.indptr)
    mask = np.repeat(keep, counts)
    indptr = np.zeros(y.shape[0] + 1, dtype=y.indptr.dtype)
    np.cumsum(counts * keep, out=indptr[1:])
    return sp.csr_matrix((y.data[mask], y.indices[mask], indptr), shape=y.shape)


def from_pair(
    validation_data: Any,
    columns: inputs.Columns,
    vocab: Vocabulary | None,
    n_items: int,
    sample_size: int | None,
) -> Validation:
    """The ``(validation_in, validation_out)`` pair of a fit, checked and converted once (with
    the training ``vocab`` and catalogue size ``n_items``)."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a (validation_in, validation_out) pair")
    first, second = validation_data
    val_in = inputs.as_matrix(first, columns, "validation_in", vocab)
    # Rows of validation_out are the sessions of validation_in; row-number times (no
    # time column) count on after a DataFrame validation_in.
    first_row = len(first) if isinstance(first, pd.DataFrame) else 0
    val_out = inputs.as_matrix(
        second, columns, "validation_out", vocab, val_in.user_vocabulary, first_row
    )
    for m, what in ((val_in, "validation_in"), (val_out, "validation_out")):
        inputs.check_items(m, n_items, vocab, what, fitted=False)
        inputs.timed_sessions(m, what)
    return Validation(val_in, val_out, sample_size)
