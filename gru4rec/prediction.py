"""The estimators' inference API: ``predict``, ``next_item_ranks``, ``score`` and ``recommend``.

A mixin of the estimators: it reads their fitted attributes, turns the input into sessions of
the training vocabulary and hands them to the estimator's :class:`~gru4rec.inference.Scorer`,
which does the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import constraints, cpu, inputs
from .matrix import InteractionMatrix, SessionArrays
from .metrics import recall_at_k

__all__ = ["Prediction"]


class Prediction:
    """``predict``, ``next_item_ranks``, ``score`` and ``recommend`` of a fitted estimator
    (whose ``_scorer`` gives the :class:`~gru4rec.inference.Scorer`)."""

    def _input(self, X: Any) -> tuple[SessionArrays, int]:
        """Inference input: fitted check, training vocabulary, item check; the sessions
        and the number of users (rows)."""
        self._check_fitted()
        vocabulary = self.item_vocabulary_
        if isinstance(X, pd.DataFrame):
            # A model fitted on item indices reads a frame's item ids as those indices.
            vocabulary = inputs.model_vocabulary(vocabulary, self.n_items_)
        frame = isinstance(X, pd.DataFrame)
        X = inputs.as_matrix(X, self._columns(), vocabulary=vocabulary, allow_empty=True)
        inputs.check_items(X, self.n_items_, self.item_vocabulary_)
        if frame:
            inputs.warn_of_shared_sessions(X, getattr(self, "_fit_session_hashes", None))
        return inputs.timed_sessions(X), X.shape[0]

    @cpu.with_threads
    def predict(self, X: InteractionMatrix | pd.DataFrame) -> sp.csr_matrix:
        """Scores of every item for every user (session) with history in ``X``.

        Each row is computed from the network's state after the user's last
        event. With ``predict_topK`` only the ``predict_topK`` best items of each
        row are kept. Already seen items are not masked. The rows of a DataFrame's
        sessions are numbered in their order of first appearance (as
        ``InteractionMatrix.from_events(X).user_vocabulary`` numbers them); an empty
        DataFrame gives a matrix without rows.

        Returns
        -------
        scipy.sparse.csr_matrix of shape ``X.shape``
        """
        s, n_users = self._input(X)
        shape = (n_users, self.n_items_)
        return self._scorer().predict(s.items, s.offsets, s.users, shape, self.predict_topK)

    @cpu.with_threads
    def next_item_ranks(self, X: InteractionMatrix | pd.DataFrame, last_only: bool = False):
        """Conservative rank of each next item of ``X``'s sessions against the whole catalogue.

        The hidden state starts from zero for each session; every position of
        every session is predicted (``last_only``: only the last one). Rank =
        number of items scoring at least as high as the true next item.
        """
        s, _ = self._input(X)
        return self._scorer().next_item_ranks(s.items, s.offsets, last_only=last_only)

    @cpu.with_threads
    def score(self, X: InteractionMatrix | pd.DataFrame, y: Any = None, *, k: int = 20) -> float:
        """Next-item Recall@``k`` over every position of ``X``'s sessions (greater is better).

        Parameters
        ----------
        X : InteractionMatrix or pandas.DataFrame
        y : None
            Not used; there for scikit-learn.
        k : int, default=20
            The cut-off. Other metrics: ``make_next_item_scorer("mrr", k=10)(model, X)``
            (:func:`gru4rec.metrics.make_next_item_scorer`; also NDCG and the last item
            only), or the ranks of :meth:`next_item_ranks` with the functions of
            :mod:`gru4rec.metrics`.
        """
        constraints.Int(1).check("k", k)
        ranks = self.next_item_ranks(X)
        if len(ranks) == 0:
            raise ValueError("X has no session with 2 or more events to score")
        return recall_at_k(ranks, k)

    @cpu.with_threads
    def recommend(
        self,
        sessions: Sequence[Any] | Sequence[Sequence[Any]],
        k: int = 20,
        *,
        exclude_seen: bool = False,
        items: Sequence[Any] | None = None,
        filter_items: Sequence[Any] | None = None,
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
            ``k`` unseen candidates exist, the last places hold seen items with
            score ``-inf``.
        items : list of item ids, optional
            Rank among these items only (an allow-list, e.g. what is in stock).
        filter_items : list of item ids, optional
            Items never returned. Both filters apply inside the scoring, before
            the top-``k`` is taken; ids unknown to the model are ignored with a
            warning naming the parameter.

        Returns
        -------
        item_ids, scores : np.ndarray
            Shape ``(m,)`` for one session, ``(n_sessions, m)`` for a batch,
            best first, with ``m = min(k, number of candidates)`` (the
            candidates: every item, or those the filters leave): every item
            once at most, never a filtered one.
        """
        self._check_fitted()
        constraints.Int(1).check("k", k)
        constraints.Bool().check("exclude_seen", exclude_seen)
        blocked, _ = inputs.blocked_items(items, filter_items, self.item_vocabulary_, self.n_items_)
        flat, offsets, single = inputs.session_lists(sessions, self.item_vocabulary_, self.n_items_)
        idx, scores = self.recommend_indices(flat, offsets, k, exclude_seen, blocked)
        ids = inputs.item_ids(idx, self.item_vocabulary_)
        return (ids[0], scores[0]) if single else (ids, scores)

    @cpu.with_threads
    def recommend_indices(
        self,
        items: np.ndarray,
        offsets: np.ndarray,
        k: int = 20,
        exclude_seen: bool = False,
        blocked: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend` on model item indices, for callers that hold sessions as
        indices already (the command line, :func:`gru4rec.distributed.recommend_dask`).

        Parameters
        ----------
        items : np.ndarray of int
            The sessions' item indices, one session after the other.
        offsets : np.ndarray of int
            Session ``s`` is ``items[offsets[s]:offsets[s + 1]]``; an empty session is
            scored from the empty state.
        k : int, default=20
        exclude_seen : bool, default=False
        blocked : np.ndarray of bool, optional
            One flag per item: True for an item never to return.

        Returns
        -------
        indices, scores : np.ndarray
            Shape ``(n_sessions, m)``, best first (as :meth:`recommend`); the raw ids of the
            indices are ``gru4rec.inputs.item_ids(indices, model.item_vocabulary_)``.
        """
        self._check_fitted()
        constraints.Int(1).check("k", k)
        constraints.Bool().check("exclude_seen", exclude_seen)
        items, offsets = np.asarray(items), np.asarray(offsets)
        inputs.check_index_sessions(items, offsets, blocked, self.n_items_)
        return self._scorer().recommend(items, offsets, k, exclude_seen, blocked)
