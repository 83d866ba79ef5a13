"""Evaluation metrics: next-item ranks, top-K set metrics, sampled pairwise losses, sklearn scorers.

Three families live here, all in numpy/scipy and none of them aware of an estimator:

* **Next-item metrics on ranks** (:func:`recall_at_k`, :func:`mrr_at_k`, :func:`ndcg_at_k`): the
  session-based protocol of the GRU4Rec papers. Each prediction event contributes one 1-based
  *conservative* rank of its target (the number of items scoring at least as high as the target,
  so ties count against the model); values are averaged over events.
* **Top-K metrics against a held-out matrix** (:func:`recall_k`, :func:`calibrated_recall_k`,
  :func:`ndcg_k`, :func:`precision_k`): recpack's semantics, averaged over users that have at least
  one true item. They back the stopping criteria of :mod:`gru4rec.stopping`.
* **Sampled pairwise losses** (:func:`bpr_loss_metric`, :func:`warp_loss_metric`): lower is better.

The sklearn scorers (:func:`make_next_item_scorer`, :data:`recall_scorer`, :data:`mrr_scorer`,
:data:`ndcg_scorer`) only require the fitted estimator to offer
``next_item_ranks(X, last_only=False) -> np.ndarray``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .checks import check_int

__all__ = [
    "NextItemScorer",
    "bpr_loss_metric",
    "calibrated_recall_k",
    "conservative_ranks",
    "make_next_item_scorer",
    "mrr_at_k",
    "mrr_scorer",
    "ndcg_at_k",
    "ndcg_k",
    "ndcg_scorer",
    "precision_k",
    "recall_at_k",
    "recall_k",
    "recall_scorer",
    "warp_loss_metric",
]


# --------------------------------------------------------------------------------------------
# Next-item metrics on conservative ranks
# --------------------------------------------------------------------------------------------


def _check_k(k: Any) -> int:
    return check_int("k", k)


def _check_ranks(ranks: Any) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be a 1-D array, got shape {ranks.shape}")
    if ranks.size == 0:
        raise ValueError("ranks is empty: there are no next-item predictions to evaluate")
    if not np.issubdtype(ranks.dtype, np.integer):
        # Accept integral floats (e.g. ranks that went through a float tensor), refuse the rest.
        if not np.issubdtype(ranks.dtype, np.floating) or not np.all(np.mod(ranks, 1) == 0):
            raise ValueError("ranks must be integers")
        ranks = ranks.astype(np.int64)
    if ranks.min() < 1:
        raise ValueError("ranks are 1-based: every rank must be >= 1")
    return ranks


def recall_at_k(ranks: np.ndarray, k: int = 20) -> float:
    """Next-item Recall@K (hit rate): the share of events whose target ranks in the top ``k``.

    Parameters
    ----------
    ranks : array-like of int, shape (n_events,)
        1-based conservative ranks of the targets (see :func:`conservative_ranks`).
    k : int, default=20
        Cut-off.

    Returns
    -------
    float
        Mean of ``rank <= k`` over events, in [0, 1].

    Raises
    ------
    ValueError
        If ``ranks`` is empty, not 1-D, not integral or contains a rank below 1, or ``k < 1``.
    """
    k = _check_k(k)
    ranks = _check_ranks(ranks)
    return float(np.mean(ranks <= k))


def mrr_at_k(ranks: np.ndarray, k: int = 20) -> float:
    """Next-item MRR@K: mean over events of ``1 / rank`` when ``rank <= k``, else 0.

    In [0, 1]; parameters and errors as for :func:`recall_at_k`.
    """
    k = _check_k(k)
    ranks = _check_ranks(ranks)
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def ndcg_at_k(ranks: np.ndarray, k: int = 20) -> float:
    """Next-item NDCG@K with a single relevant item per event.

    The ideal DCG of one relevant item is 1, so each event contributes ``1 / log2(rank + 1)``
    when ``rank <= k`` and 0 otherwise; the mean over events is in [0, 1]. Parameters and errors
    as for :func:`recall_at_k`.
    """
    k = _check_k(k)
    ranks = _check_ranks(ranks)
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))


def conservative_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Reference conservative ranks for a small dense score matrix.

    The rank of a target is the number of items whose score is ``>=`` the target's score (the
    target itself included), so an item tying with the target pushes it down: a model that gives
    every item the same score gets the worst rank, never the best. The estimator computes the same
    quantity in chunks on its device; this function is the plain definition, for tests and for
    small arrays.

    Parameters
    ----------
    scores : ndarray of shape (n_events, n_items)
        Scores of every item for each event.
    targets : array-like of int, shape (n_events,)
        Column index of each event's target item.

    Returns
    -------
    ndarray of int64, shape (n_events,)
        1-based ranks. A NaN target score gets the worst rank ``n_items``; NaN scores of other
        items never count as ties.

    Raises
    ------
    ValueError
        On mismatched shapes or target indices outside ``[0, n_items)``.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_events, n_items), got shape {scores.shape}")
    if targets.shape != (scores.shape[0],):
        raise ValueError(
            f"targets must have shape ({scores.shape[0]},) to match scores, got {targets.shape}"
        )
    n_items = scores.shape[1]
    if targets.size and (targets.min() < 0 or targets.max() >= n_items):
        raise ValueError(f"targets must lie in [0, {n_items})")
    target_scores = scores[np.arange(scores.shape[0]), targets]
    ranks = (scores >= target_scores[:, None]).sum(axis=1).astype(np.int64)
    ranks[np.isnan(target_scores)] = n_items
    return ranks


# --------------------------------------------------------------------------------------------
# Top-K metrics against a held-out csr matrix (recpack semantics)
# --------------------------------------------------------------------------------------------


def _as_csr(matrix: Any) -> sp.csr_matrix:
    if not sp.issparse(matrix):
        matrix = sp.csr_matrix(np.asarray(matrix))
    matrix = sp.csr_matrix(matrix)  # a copy-free view where possible; csr_array -> csr_matrix
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()  # also sorts indices, which the key lookups below rely on
    return matrix


def _linear_keys(rows: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    return rows.astype(np.int64) * np.int64(n_cols) + cols.astype(np.int64)


def _csr_keys(matrix: sp.csr_matrix) -> np.ndarray:
    """Sorted linear keys ``row * n_cols + col`` of a canonical csr's stored entries."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return _linear_keys(rows, matrix.indices, matrix.shape[1])


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised membership: (found mask, position in ``sorted_keys``) of each key."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool), np.zeros(keys.shape, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys, pos


def _truth(y_true: Any, y_pred: Any) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    y_true = _as_csr(y_true)
    y_pred = _as_csr(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
    # Binary relevance: any stored non-zero is a true item.
    y_true = y_true.copy()
    y_true.data = (y_true.data != 0).astype(np.float64)
    y_true.eliminate_zeros()
    return y_true, y_pred


def _topk_hits(
    y_true: sp.csr_matrix, y_pred: sp.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits among each row's top-``k`` stored predictions.

    Returns the row, the 1-based rank within the row, and a hit flag of every top-k entry.
    Candidates are the stored entries of ``y_pred`` (an unscored item is never recommended).
    Ties in score are broken by the lower column index, so the result is deterministic.
    """
    n_cols = y_pred.shape[1]
    rows = np.repeat(np.arange(y_pred.shape[0], dtype=np.int64), np.diff(y_pred.indptr))
    cols = y_pred.indices.astype(np.int64)
    # One global sort by (row, -score, col) replaces a per-row argsort loop.
    order = np.lexsort((cols, -y_pred.data, rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(rows.size, dtype=np.int64) - y_pred.indptr[rows] + 1
    keep = rank <= k
    rows, cols, rank = rows[keep], cols[keep], rank[keep]
    hit, _ = _lookup(_csr_keys(y_true), _linear_keys(rows, cols, n_cols))
    return rows, rank, hit


def _users_with_truth(y_true: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    n_true = np.diff(y_true.indptr)
    users = np.flatnonzero(n_true)
    if users.size == 0:
        raise ValueError("y_true has no row with a true item: nothing to evaluate")
    return users, n_true


def recall_k(y_true: sp.spmatrix, y_pred: sp.spmatrix, k: int = 50) -> float:
    """Recall@K as in recpack: hits in the top ``k`` over the user's number of true items.

    For every user (row) with at least one true item,
    ``|top_k(u) ∩ true(u)| / |true(u)|``; the result is the mean over those users. Rows without a
    true item are ignored; rows with truth but no prediction score 0. With a single held-out item
    per user (last-item evaluation) this equals the hit rate.

    Parameters
    ----------
    y_true : sparse matrix of shape (n_users, n_items)
        Held-out interactions; any stored non-zero counts as relevant (binary relevance).
    y_pred : sparse matrix of shape (n_users, n_items)
        Predicted scores; only stored entries are candidates, higher is better. Ties are broken by
        the lower item index.
    k : int, default=50
        Length of the recommendation list.

    Returns
    -------
    float
        Mean recall over users with truth, in [0, 1].

    Raises
    ------
    ValueError
        On a shape mismatch, ``k < 1`` or when no row has a true item.

    See Also
    --------
    calibrated_recall_k : divides by ``min(k, |true(u)|)`` instead.
    """
    return _recall(y_true, y_pred, k, calibrated=False)


def calibrated_recall_k(y_true: sp.spmatrix, y_pred: sp.spmatrix, k: int = 50) -> float:
    """Calibrated Recall@K: hits in the top ``k`` over ``min(k, |true(u)|)``.

    Unlike :func:`recall_k` a user with more than ``k`` true items can still reach 1. Same
    conventions as :func:`recall_k` otherwise.
    """
    return _recall(y_true, y_pred, k, calibrated=True)


def _graded(y_true: Any, y_pred: Any, k: Any) -> tuple[Any, ...]:
    """The checked inputs of a top-``k`` metric and what it is computed from: ``k``, the
    number of rows, the users with truth and their number of true items, and per kept
    prediction its row, rank and whether it is a hit."""
    k = _check_k(k)
    y_true, y_pred = _truth(y_true, y_pred)
    users, n_true = _users_with_truth(y_true)
    return (k, y_true.shape[0], users, n_true, *_topk_hits(y_true, y_pred, k))


def _recall(y_true: Any, y_pred: Any, k: int, *, calibrated: bool) -> float:
    k, n_rows, users, n_true, rows, _, hit = _graded(y_true, y_pred, k)
    hits = np.bincount(rows[hit], minlength=n_rows)
    denom = np.minimum(n_true, k) if calibrated else n_true
    return float(np.mean(hits[users] / denom[users]))


def ndcg_k(y_true: sp.spmatrix, y_pred: sp.spmatrix, k: int = 50) -> float:
    """NDCG@K as in recpack, with binary relevance.

    Per user with truth: ``DCG = sum over hits in the top k of 1 / log2(rank + 1)`` divided by the
    ideal ``IDCG = sum_{j=1}^{min(k, |true(u)|)} 1 / log2(j + 1)``; averaged over users with truth,
    in [0, 1]. Parameters and conventions as in :func:`recall_k`.
    """
    k, n_rows, users, n_true, rows, rank, hit = _graded(y_true, y_pred, k)
    dcg = np.bincount(rows[hit], weights=1.0 / np.log2(rank[hit] + 1.0), minlength=n_rows)
    # idcg_cache[j] = ideal DCG of j hits.
    idcg_cache = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = idcg_cache[np.minimum(n_true[users], k)]
    return float(np.mean(dcg[users] / idcg))


def precision_k(y_true: sp.spmatrix, y_pred: sp.spmatrix, k: int = 10) -> float:
    """Precision@K as in recpack: hits in the top ``k`` divided by ``k``.

    A list shorter than ``k`` (fewer stored predictions) is not rewarded: the missing places count
    as misses. The mean over users with truth, in [0, 1]; parameters (``k`` defaults to 10 here)
    and conventions as in :func:`recall_k`.
    """
    k, n_rows, users, _, rows, _, hit = _graded(y_true, y_pred, k)
    return float(np.mean(np.bincount(rows[hit], minlength=n_rows)[users] / k))


# --------------------------------------------------------------------------------------------
# Sampled pairwise losses (lower is better)
# --------------------------------------------------------------------------------------------


def _sample_positives(
    y_true: sp.csr_matrix, sample_size: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of positives: every true pair once, or ``sample_size`` drawn with replacement.

    Users whose every item is true cannot have a negative and are left out.
    """
    n_items = y_true.shape[1]
    n_true = np.diff(y_true.indptr)
    rows = np.repeat(np.arange(y_true.shape[0], dtype=np.int64), n_true)
    cols = y_true.indices.astype(np.int64)
    usable = n_true[rows] < n_items
    rows, cols = rows[usable], cols[usable]
    if rows.size == 0:
        raise ValueError("y_true has no true item in a row that leaves room for a negative")
    if sample_size is not None:
        if isinstance(sample_size, bool) or int(sample_size) != sample_size or sample_size < 1:
            raise ValueError(f"sample_size must be a positive integer or None, got {sample_size!r}")
        pick = rng.integers(0, rows.size, size=int(sample_size))
        rows, cols = rows[pick], cols[pick]
    return rows, cols


def _sample_negatives(
    y_true: sp.csr_matrix, users: np.ndarray, n_per_user: int, rng: np.random.Generator
) -> np.ndarray:
    """Items drawn uniformly among each user's non-true items, shape (len(users), n_per_user).

    Rejection sampling, vectorised: only the draws that hit a true item are redrawn. Callers
    guarantee every user has at least one non-true item, so this terminates.
    """
    n_items = y_true.shape[1]
    true_keys = _csr_keys(y_true)
    users_rep = np.repeat(users, n_per_user)
    neg = rng.integers(0, n_items, size=users_rep.size)
    bad = np.flatnonzero(_lookup(true_keys, _linear_keys(users_rep, neg, n_items))[0])
    while bad.size:
        neg[bad] = rng.integers(0, n_items, size=bad.size)
        still = _lookup(true_keys, _linear_keys(users_rep[bad], neg[bad], n_items))[0]
        bad = bad[still]
    return neg.reshape(users.size, n_per_user)


def _scores_at(y_pred: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Scores of ``y_pred`` at (rows, cols); entries that are not stored read as 0."""
    found, pos = _lookup(_csr_keys(y_pred), _linear_keys(rows, cols, y_pred.shape[1]))
    if y_pred.nnz == 0:
        return np.zeros(rows.shape, dtype=np.float64)
    return np.where(found, y_pred.data[pos].astype(np.float64), 0.0)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable log(sigmoid(x)) = -log(1 + exp(-x)) for large |x|.
    return -np.logaddexp(0.0, -x)


def bpr_loss_metric(
    y_true: sp.spmatrix,
    y_pred: sp.spmatrix,
    sample_size: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> float:
    """Sampled BPR loss: mean of ``-log sigmoid(s_pos - s_neg)`` over (user, positive, negative).

    Positives are the true (user, item) pairs of ``y_true`` (each once, or ``sample_size`` drawn
    uniformly with replacement); each gets one negative drawn uniformly among that user's
    non-true items. Users whose every item is true are skipped (they have no negative).

    Parameters
    ----------
    y_true : sparse matrix of shape (n_users, n_items)
        Held-out interactions (binary relevance).
    y_pred : sparse matrix of shape (n_users, n_items)
        Full predicted scores of the rows concerned. Entries that are not stored read as score 0,
        so pass full (dense-as-sparse) scores, not a top-K cut, for a meaningful value.
    sample_size : int, optional
        Number of positives to draw; ``None`` uses every true pair exactly once.
    seed : int, Generator or None, default=0
        Seed of the ``np.random.default_rng`` that draws the samples. The fixed default makes
        successive epochs evaluate on the same triples, so their values are comparable.

    Returns
    -------
    float
        The mean loss (lower is better), >= 0.
    """
    y_true, y_pred = _truth(y_true, y_pred)
    rng = np.random.default_rng(seed)
    users, pos = _sample_positives(y_true, sample_size, rng)
    neg = _sample_negatives(y_true, users, 1, rng)[:, 0]
    diff = _scores_at(y_pred, users, pos) - _scores_at(y_pred, users, neg)
    return float(-np.mean(_log_sigmoid(diff)))


def warp_loss_metric(
    y_true: sp.spmatrix,
    y_pred: sp.spmatrix,
    margin: float = 1.9,
    U: int = 20,
    sample_size: int | None = None,
    seed: int | np.random.Generator | None = 0,
) -> float:
    """Sampled WARP loss on scores (higher score = more relevant).

    For each sampled positive ``p`` of user ``u`` draw ``U`` negatives (uniformly among the user's
    non-true items). A negative ``n`` *violates* when ``s_n + margin > s_p``. With ``M`` violators
    among the ``U`` draws, the positive's rank among the ``J = n_items`` items is estimated as
    ``M * J / U`` and the positive contributes

    ``log(M * J / U + 1) * max(0, max_n (margin + s_n - s_p))``,

    i.e. the hinge of its worst violator weighted by the log of its estimated rank, as in WARP
    (Weston et al., 2010) and recpack's estimate (which applies it to distances; here it is
    applied to scores, so the sign is the one that makes sense for scores). The result is the mean
    over sampled positives.

    Parameters
    ----------
    y_true : sparse matrix of shape (n_users, n_items)
        Held-out interactions (binary relevance).
    y_pred : sparse matrix of shape (n_users, n_items)
        Full predicted scores of the rows concerned; entries that are not stored read as 0.
    margin : float, default=1.9
        Required score margin between a positive and a negative (recpack's default).
    U : int, default=20
        Number of negatives drawn per positive (recpack's default).
    sample_size : int, optional
        Number of positives to draw; ``None`` uses every true pair exactly once.
    seed : int, Generator or None, default=0
        Seed of the ``np.random.default_rng`` that draws the samples.

    Returns
    -------
    float
        The mean loss (lower is better), >= 0.
    """
    if isinstance(U, bool) or int(U) != U or U < 1:
        raise ValueError(f"U must be a positive integer, got {U!r}")
    U = int(U)
    y_true, y_pred = _truth(y_true, y_pred)
    rng = np.random.default_rng(seed)
    n_items = y_true.shape[1]
    users, pos = _sample_positives(y_true, sample_size, rng)
    neg = _sample_negatives(y_true, users, U, rng)
    s_pos = _scores_at(y_pred, users, pos)
    s_neg = _scores_at(y_pred, np.repeat(users, U), neg.ravel()).reshape(users.size, U)
    hinge = margin + s_neg - s_pos[:, None]
    n_violations = (hinge > 0).sum(axis=1)
    weight = np.log(n_violations * n_items / U + 1.0)
    return float(np.mean(weight * np.maximum(hinge.max(axis=1), 0.0)))


# --------------------------------------------------------------------------------------------
# scikit-learn scorers
# --------------------------------------------------------------------------------------------

_RANK_METRICS = {"recall": recall_at_k, "mrr": mrr_at_k, "ndcg": ndcg_at_k}


class NextItemScorer:
    """A scikit-learn scorer of next-item predictions (greater is better).

    Calls ``estimator.next_item_ranks(X, last_only=last_only)`` (the conservative 1-based rank of
    every next-item prediction in ``X``'s sessions, or of each session's last item only) and
    reduces the ranks with Recall@K, MRR@K or NDCG@K. Works by duck typing on any fitted estimator
    offering that method, and pickles (it is a plain class holding three values), so it can be
    passed as ``scoring=`` to ``GridSearchCV`` with ``n_jobs > 1``.

    Parameters
    ----------
    metric : {"recall", "mrr", "ndcg"}, default="recall"
        Reduction of the ranks.
    k : int, default=20
        Cut-off.
    last_only : bool, default=False
        Evaluate only the last item of each session instead of every position.
    """

    def __init__(self, metric: str = "recall", k: int = 20, last_only: bool = False) -> None:
        if metric not in _RANK_METRICS:
            raise ValueError(f"metric must be one of {sorted(_RANK_METRICS)}, got {metric!r}")
        self.metric = metric
        self.k = _check_k(k)
        self.last_only = bool(last_only)

    def __call__(self, estimator: Any, X: Any, y: Any = None, **kwargs: Any) -> float:
        """Score ``estimator`` on ``X``; ``y`` and extra keyword arguments are ignored."""
        next_item_ranks = getattr(estimator, "next_item_ranks", None)
        if not callable(next_item_ranks):
            raise TypeError(
                f"{type(estimator).__name__} has no next_item_ranks(X, last_only=...) method; "
                "next-item scorers need a session-based estimator"
            )
        ranks = next_item_ranks(X, last_only=self.last_only)
        return _RANK_METRICS[self.metric](ranks, k=self.k)

    def __repr__(self) -> str:
        return (
            f"make_next_item_scorer(metric={self.metric!r}, k={self.k}, last_only={self.last_only})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NextItemScorer):
            return NotImplemented
        return (self.metric, self.k, self.last_only) == (other.metric, other.k, other.last_only)

    def __hash__(self) -> int:
        return hash((self.metric, self.k, self.last_only))


def make_next_item_scorer(
    metric: str = "recall", k: int = 20, last_only: bool = False
) -> NextItemScorer:
    """Build a scikit-learn scorer ``scorer(estimator, X, y=None) -> float`` of next-item accuracy.

    Parameters
    ----------
    metric : {"recall", "mrr", "ndcg"}, default="recall"
        Recall@K, MRR@K or NDCG@K of the conservative next-item ranks.
    k : int, default=20
        Cut-off.
    last_only : bool, default=False
        Only the last item of each session (recpack-style) instead of every position
        (the GRU4Rec protocol).

    Returns
    -------
    NextItemScorer
        A picklable callable, greater is better; usable as ``GridSearchCV(scoring=...)`` or in a
        dict of scorers.

    Examples
    --------
    >>> scorer = make_next_item_scorer("mrr", k=10)
    >>> scorer
    make_next_item_scorer(metric='mrr', k=10, last_only=False)
    """
    return NextItemScorer(metric=metric, k=k, last_only=last_only)


#: Next-item Recall@20 at every position of the sessions.
recall_scorer = make_next_item_scorer("recall", k=20)
#: Next-item MRR@20 at every position of the sessions.
mrr_scorer = make_next_item_scorer("mrr", k=20)
#: Next-item NDCG@20 at every position of the sessions.
ndcg_scorer = make_next_item_scorer("ndcg", k=20)
