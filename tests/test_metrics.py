"""Tests of gru4rec.metrics: hand computations, brute-force equivalence, properties, scorers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gru4rec import metrics
from gru4rec.metrics import (
    NextItemScorer,
    bpr_loss_metric,
    calibrated_recall_k,
    conservative_ranks,
    make_next_item_scorer,
    mrr_at_k,
    mrr_scorer,
    ndcg_at_k,
    ndcg_k,
    ndcg_scorer,
    precision_k,
    recall_at_k,
    recall_k,
    recall_scorer,
    warp_loss_metric,
)

FAST = settings(max_examples=40, deadline=None)

# --------------------------------------------------------------------------------------------
# Next-item metrics on ranks
# --------------------------------------------------------------------------------------------


def test_rank_metrics_by_hand():
    ranks = np.array([1, 2, 5, 30])
    assert recall_at_k(ranks, k=5) == pytest.approx(3 / 4)
    assert recall_at_k(ranks, k=1) == pytest.approx(1 / 4)
    assert mrr_at_k(ranks, k=5) == pytest.approx((1 + 1 / 2 + 1 / 5 + 0) / 4)
    assert mrr_at_k(ranks, k=30) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 30) / 4)
    expected_ndcg = (1 + 1 / np.log2(3) + 1 / np.log2(6) + 0) / 4
    assert ndcg_at_k(ranks, k=20) == pytest.approx(expected_ndcg)


def test_rank_metrics_default_k_is_20():
    ranks = np.array([20, 21])
    assert recall_at_k(ranks) == 0.5
    assert mrr_at_k(ranks) == pytest.approx(1 / 40)
    assert ndcg_at_k(ranks) == pytest.approx(1 / np.log2(21) / 2)


@pytest.mark.parametrize("func", [recall_at_k, mrr_at_k, ndcg_at_k])
@pytest.mark.parametrize(
    "bad", [np.array([], dtype=int), np.array([0, 1]), np.array([[1, 2]]), np.array([1.5])]
)
def test_rank_metrics_reject_bad_ranks(func, bad):
    with pytest.raises(ValueError):
        func(bad, k=5)


@pytest.mark.parametrize("func", [recall_at_k, mrr_at_k, ndcg_at_k])
@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_rank_metrics_reject_bad_k(func, k):
    with pytest.raises(ValueError):
        func(np.array([1, 2]), k=k)


def test_rank_metrics_accept_integral_floats():
    assert recall_at_k(np.array([1.0, 3.0]), k=2) == 0.5


ranks_strategy = hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(1, 60))


@FAST
@given(ranks=ranks_strategy, k=st.integers(1, 40))
def test_rank_metrics_bounded_and_monotone_in_k(ranks, k):
    for func in (recall_at_k, mrr_at_k, ndcg_at_k):
        value, bigger = func(ranks, k=k), func(ranks, k=k + 1)
        assert 0.0 <= value <= 1.0
        assert bigger >= value
    # MRR and NDCG never exceed recall: each hit contributes at most 1.
    assert mrr_at_k(ranks, k) <= recall_at_k(ranks, k) + 1e-12
    assert ndcg_at_k(ranks, k) <= recall_at_k(ranks, k) + 1e-12


def test_conservative_ranks_by_hand():
    scores = np.array(
        [
            [0.1, 0.5, 0.3, 0.5],  # target 1 ties with item 3: rank 2, not 1
            [0.9, 0.1, 0.2, 0.3],  # target 0 is the strict best: rank 1
            [1.0, 1.0, 1.0, 1.0],  # all tie: worst rank
            [0.0, np.nan, 0.2, 0.1],  # NaN target: worst rank
        ]
    )
    ranks = conservative_ranks(scores, np.array([1, 0, 2, 1]))
    np.testing.assert_array_equal(ranks, [2, 1, 4, 4])
    assert ranks.dtype == np.int64


def test_conservative_ranks_validates():
    with pytest.raises(ValueError):
        conservative_ranks(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError):
        conservative_ranks(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError):
        conservative_ranks(np.zeros(3), np.array([0]))


small_scores = st.tuples(st.integers(1, 8), st.integers(1, 10)).flatmap(
    lambda shape: st.tuples(
        # Few distinct values so ties are common.
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0])),
        hnp.arrays(np.int64, shape[0], elements=st.integers(0, shape[1] - 1)),
    )
)


@FAST
@given(data=small_scores)
def test_conservative_ranks_match_brute_force(data):
    scores, targets = data
    expected = []
    for row, t in zip(scores, targets, strict=True):
        expected.append(sum(1 for s in row if s >= row[t]))
    np.testing.assert_array_equal(conservative_ranks(scores, targets), expected)


@FAST
@given(data=small_scores, col=st.integers(0, 9))
def test_tying_with_the_target_worsens_its_rank(data, col):
    scores, targets = data
    n_items = scores.shape[1]
    col %= n_items
    before = conservative_ranks(scores, targets)
    tied = scores.copy()
    rows = np.arange(len(targets))
    # Move one other item to tie with the target where it was strictly below it.
    was_below = (col != targets) & (scores[rows, col] < scores[rows, targets])
    tied[was_below, col] = scores[was_below, targets[was_below]]
    after = conservative_ranks(tied, targets)
    np.testing.assert_array_equal(after, before + was_below)


# --------------------------------------------------------------------------------------------
# Top-K metrics against a csr truth
# --------------------------------------------------------------------------------------------

Y_TRUE = sp.csr_matrix(
    np.array(
        [
            [1, 0, 0, 1, 0],  # two true items
            [0, 0, 0, 0, 0],  # no truth: ignored
            [0, 1, 0, 0, 0],  # one true item
            [0, 0, 1, 0, 0],  # truth but no prediction: counts as 0
        ]
    )
)
Y_PRED = sp.csr_matrix(
    np.array(
        [
            [0.9, 0.8, 0.0, 0.1, 0.0],  # top-2: items 0, 1 -> one hit at rank 1
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.5, 0.4, 0.3, 0.2, 0.0],  # top-2: items 0, 1 -> one hit at rank 2
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
)


def test_recall_k_by_hand():
    # recpack: hits / number of true items.
    assert recall_k(Y_TRUE, Y_PRED, k=2) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert recall_k(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert recall_k(Y_TRUE, Y_PRED, k=4) == pytest.approx((2 / 2 + 1 + 0) / 3)


def test_calibrated_recall_k_by_hand():
    # Divides by min(k, n_true): user 0 at k=1 has one possible hit and got it.
    assert calibrated_recall_k(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 + 0 + 0) / 3)
    assert calibrated_recall_k(Y_TRUE, Y_PRED, k=2) == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_ndcg_k_by_hand():
    idcg2 = 1 + 1 / np.log2(3)
    user0 = 1 / idcg2
    user2 = 1 / np.log2(3)
    assert ndcg_k(Y_TRUE, Y_PRED, k=2) == pytest.approx((user0 + user2 + 0) / 3)
    # k=1: IDCG of min(1, n_true) = 1 hit.
    assert ndcg_k(Y_TRUE, Y_PRED, k=1) == pytest.approx((1 + 0 + 0) / 3)


def test_precision_k_by_hand():
    assert precision_k(Y_TRUE, Y_PRED, k=2) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    # Only 3 stored predictions for user 0 at k=10: missing places are misses.
    assert precision_k(Y_TRUE, Y_PRED, k=10) == pytest.approx((2 / 10 + 1 / 10 + 0) / 3)


def test_topk_defaults_follow_recpack():
    import inspect

    assert inspect.signature(recall_k).parameters["k"].default == 50
    assert inspect.signature(ndcg_k).parameters["k"].default == 50
    assert inspect.signature(precision_k).parameters["k"].default == 10


def test_topk_ties_broken_by_lower_item_index():
    y_true = sp.csr_matrix(np.array([[0, 1, 0]]))
    y_pred = sp.csr_matrix(np.array([[0.5, 0.5, 0.5]]))
    assert recall_k(y_true, y_pred, k=1) == 0.0  # item 0 wins the tie
    assert recall_k(y_true, y_pred, k=2) == 1.0


def test_topk_metrics_validate():
    with pytest.raises(ValueError, match="shape"):
        recall_k(Y_TRUE, Y_PRED[:, :3], k=2)
    with pytest.raises(ValueError, match="no row"):
        ndcg_k(sp.csr_matrix((2, 3)), sp.csr_matrix((2, 3)), k=2)
    with pytest.raises(ValueError):
        precision_k(Y_TRUE, Y_PRED, k=0)


def test_topk_metrics_accept_non_canonical_and_coo_input():
    y_pred = sp.coo_matrix(Y_PRED)
    y_true = sp.csr_matrix(Y_TRUE.toarray()[:, ::-1])[:, ::-1]  # column slicing unsorts indices
    assert recall_k(y_true, y_pred, k=2) == pytest.approx(recall_k(Y_TRUE, Y_PRED, k=2))


def _dense_topk_reference(y_true: np.ndarray, y_pred: np.ndarray, k: int):
    """Plain loop over users: top-k of stored (non-zero) scores, ties to lower index."""
    recalls, cal, ndcgs, precs = [], [], [], []
    for t, p in zip(y_true, y_pred, strict=True):
        true = set(np.flatnonzero(t))
        if not true:
            continue
        candidates = [j for j in range(len(p)) if p[j] != 0]
        ranked = sorted(candidates, key=lambda j: (-p[j], j))[:k]
        hits = [r + 1 for r, j in enumerate(ranked) if j in true]
        recalls.append(len(hits) / len(true))
        cal.append(len(hits) / min(k, len(true)))
        idcg = sum(1 / np.log2(j + 1) for j in range(1, min(k, len(true)) + 1))
        ndcgs.append(sum(1 / np.log2(r + 1) for r in hits) / idcg)
        precs.append(len(hits) / k)
    return np.mean(recalls), np.mean(cal), np.mean(ndcgs), np.mean(precs)


dense_pair = st.tuples(st.integers(1, 6), st.integers(1, 9)).flatmap(
    lambda shape: st.tuples(
        hnp.arrays(np.int8, shape, elements=st.sampled_from([0, 0, 1])),
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.1, 0.2, 0.7, -0.3, 2.0])),
    )
)


@FAST
@given(data=dense_pair, k=st.integers(1, 10))
def test_topk_metrics_match_brute_force(data, k):
    y_true, y_pred = data
    if not y_true.any():
        y_true[0, 0] = 1
    expected = _dense_topk_reference(y_true, y_pred, k)
    t, p = sp.csr_matrix(y_true), sp.csr_matrix(y_pred)
    got = (recall_k(t, p, k), calibrated_recall_k(t, p, k), ndcg_k(t, p, k), precision_k(t, p, k))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    for value in got:
        assert 0.0 <= value <= 1.0 + 1e-12
    # Recall can only grow with the list length.
    assert recall_k(t, p, k + 1) >= got[0]


# --------------------------------------------------------------------------------------------
# Sampled pairwise losses
# --------------------------------------------------------------------------------------------


def test_bpr_loss_by_hand_with_a_single_possible_negative():
    # Each user has exactly one non-true item, so the sampled triples are forced.
    y_true = sp.csr_matrix(np.array([[1, 0], [0, 1]]))
    y_pred = sp.csr_matrix(np.array([[2.0, 0.5], [1.0, -1.0]]))
    diffs = np.array([2.0 - 0.5, -1.0 - 1.0])
    expected = np.mean(np.log1p(np.exp(-diffs)))
    assert bpr_loss_metric(y_true, y_pred) == pytest.approx(expected)


def test_bpr_loss_reads_missing_scores_as_zero_and_never_samples_true_items():
    # User 0 truth {0, 1}; its only negative is item 2, which is not stored (score 0).
    y_true = sp.csr_matrix(np.array([[1, 1, 0]]))
    y_pred = sp.csr_matrix(np.array([[3.0, -3.0, 0.0]]))
    expected = np.mean(np.log1p(np.exp(-np.array([3.0, -3.0]))))
    assert bpr_loss_metric(y_true, y_pred, seed=123) == pytest.approx(expected)


def test_bpr_loss_sampling_is_seeded_and_sized():
    rng = np.random.default_rng(0)
    y_true = sp.csr_matrix((rng.random((30, 40)) < 0.1).astype(float))
    y_pred = sp.csr_matrix(rng.normal(size=(30, 40)))
    a = bpr_loss_metric(y_true, y_pred, sample_size=50, seed=1)
    assert a == bpr_loss_metric(y_true, y_pred, sample_size=50, seed=1)
    assert a != bpr_loss_metric(y_true, y_pred, sample_size=50, seed=2)
    # Perfectly separating scores give a loss near 0, reversed ones a large loss.
    good = sp.csr_matrix(np.where(y_true.toarray() > 0, 20.0, -20.0))
    bad = sp.csr_matrix(np.where(y_true.toarray() > 0, -20.0, 20.0))
    assert bpr_loss_metric(y_true, good) < 1e-6
    assert bpr_loss_metric(y_true, bad) > 39.0
    with pytest.raises(ValueError):
        bpr_loss_metric(y_true, y_pred, sample_size=0)


def test_warp_loss_by_hand_with_forced_negatives():
    # One user of two items, truth {0}; the only negative is item 1, so every draw is item 1
    # and violates (0.5 + margin 1 > 1.0): the positive is estimated at rank 2 of 2 (all of
    # the draws violate, times 2 items), weight ln(2 + 1), times the hinge 0.5. Numbers
    # worked out by hand, not the implementation's expression.
    y_true = sp.csr_matrix(np.array([[1, 0]]))
    y_pred = sp.csr_matrix(np.array([[1.0, 0.5]]))
    for U in (1, 4, 50):  # the share of violating draws, not their count, sets the rank
        assert warp_loss_metric(y_true, y_pred, margin=1.0, U=U) == pytest.approx(0.5493061443)
    # Scores and margin scaled by 3 scale the hinge, not the rank weight.
    scaled = sp.csr_matrix(np.array([[3.0, 1.5]]))
    assert warp_loss_metric(y_true, scaled, margin=3.0, U=4) == pytest.approx(3 * 0.5493061443)
    # With a score gap above the margin nothing violates: loss 0.
    y_pred_ok = sp.csr_matrix(np.array([[2.0, 0.5]]))
    assert warp_loss_metric(y_true, y_pred_ok, margin=1.0, U=4) == 0.0


def test_warp_loss_counts_violations_in_the_rank_weight():
    # Truth {0} of three items; negative 1 violates (hinge 0.5 + 0.9 - 1.0 = 0.4), negative 2
    # does not. With U = 2 draws the estimated rank is 0, 1.5 or 3 (none, one or both draws
    # hit item 1), so the loss is 0, 0.4 ln 2.5 or 0.4 ln 4, worked out by hand.
    y_true = sp.csr_matrix(np.array([[1, 0, 0]]))
    y_pred = sp.csr_matrix(np.array([[1.0, 0.9, -5.0]]))
    values = {
        round(warp_loss_metric(y_true, y_pred, margin=0.5, U=2, seed=seed), 6) for seed in range(40)
    }
    assert values == {0.0, 0.366516, 0.554518}
    # When both negatives violate every draw does: rank 3, weight ln 4; the hinge is the worst
    # violator's (0.5 + 0.9 - 1.0), not the other's (0.5 + 0.7 - 1.0).
    both = sp.csr_matrix(np.array([[1.0, 0.9, 0.7]]))
    for seed in range(5):
        value = warp_loss_metric(y_true, both, margin=0.5, U=10, seed=seed)
        assert value == pytest.approx(0.554518, abs=1e-6)


def test_losses_are_lower_for_better_scores():
    rng = np.random.default_rng(3)
    truth = (rng.random((20, 30)) < 0.15).astype(float)
    truth[:, 0] = 1
    y_true = sp.csr_matrix(truth)
    noise = rng.normal(scale=0.1, size=truth.shape)
    good = sp.csr_matrix(truth * 3 + noise)
    bad = sp.csr_matrix(-truth * 3 + noise)
    assert bpr_loss_metric(y_true, good) < bpr_loss_metric(y_true, bad)
    assert warp_loss_metric(y_true, good) < warp_loss_metric(y_true, bad)


def test_losses_skip_users_with_every_item_true():
    y_true = sp.csr_matrix(np.array([[1, 1], [1, 0]]))
    y_pred = sp.csr_matrix(np.array([[5.0, 5.0], [0.0, 0.0]]))
    assert bpr_loss_metric(y_true, y_pred) == pytest.approx(np.log(2))
    with pytest.raises(ValueError):
        bpr_loss_metric(sp.csr_matrix(np.ones((2, 2))), sp.csr_matrix(np.ones((2, 2))))
    with pytest.raises(ValueError):
        warp_loss_metric(y_true, y_pred, U=0)


# --------------------------------------------------------------------------------------------
# sklearn scorers
# --------------------------------------------------------------------------------------------


class _RankingEstimator:
    """Duck-typed stand-in: next-item ranks are the first column of X, or every other row."""

    def next_item_ranks(self, X, last_only=False):
        ranks = np.asarray(X)[:, 0]
        return ranks[1::2] if last_only else ranks


def test_scorers_reduce_the_estimators_ranks():
    X = np.array([[1], [3], [25], [2]])
    est = _RankingEstimator()
    assert make_next_item_scorer("recall", k=2)(est, X) == pytest.approx(2 / 4)
    assert make_next_item_scorer("mrr", k=20)(est, X) == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert make_next_item_scorer("ndcg", k=1)(est, X) == pytest.approx(1 / 4)
    # last_only reaches the estimator: ranks [3, 2].
    last = make_next_item_scorer("mrr", k=20, last_only=True)
    assert last(est, X, None) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert recall_scorer(est, X) == pytest.approx(3 / 4)
    assert mrr_scorer(est, X) == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert ndcg_scorer(est, X) == pytest.approx((1 + 1 / np.log2(4) + 1 / np.log2(3)) / 4)


def test_scorer_validation_and_errors():
    with pytest.raises(ValueError, match="metric"):
        make_next_item_scorer("auc")
    with pytest.raises(ValueError):
        make_next_item_scorer("mrr", k=0)
    with pytest.raises(TypeError, match="next_item_ranks"):
        recall_scorer(object(), np.zeros((2, 1)))


def test_scorers_pickle_and_compare():
    for scorer in (recall_scorer, mrr_scorer, ndcg_scorer, make_next_item_scorer("mrr", 5, True)):
        clone = pickle.loads(pickle.dumps(scorer))
        assert clone == scorer
        assert isinstance(clone, NextItemScorer)
        assert repr(clone) == repr(scorer)
    assert make_next_item_scorer("mrr", 5) != make_next_item_scorer("mrr", 6)


def test_scorer_drives_grid_search_to_the_better_parameter():
    from sklearn.base import BaseEstimator
    from sklearn.model_selection import GridSearchCV, KFold

    class Ranker(BaseEstimator):
        def __init__(self, offset=0):
            self.offset = offset

        def fit(self, X, y=None):
            self.fitted_ = True
            return self

        def next_item_ranks(self, X, last_only=False):
            return np.asarray(X)[:, 0] + self.offset

    X = np.arange(1, 41).reshape(-1, 1) % 15 + 1
    search = GridSearchCV(
        Ranker(),
        {"offset": [0, 10, 3]},
        scoring=make_next_item_scorer("mrr", k=20),
        cv=KFold(2),
    ).fit(X)
    assert search.best_params_ == {"offset": 0}
    assert search.best_score_ == pytest.approx(mrr_at_k(X[:, 0], 20), rel=0.05)


def test_module_exports():
    for name in metrics.__all__:
        assert hasattr(metrics, name)
