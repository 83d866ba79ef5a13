"""Tests of gru4rec.stopping.StoppingCriterion."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gru4rec import metrics
from gru4rec.selection import Selection
from gru4rec.stopping import NEEDS, StoppingCriterion, configured

Y_TRUE = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]))
Y_PRED = sp.csr_matrix(np.array([[0.9, 0.1, 0.0, 0.0], [0.5, 0.4, 0.3, 0.0], [0.1, 0, 0, 0]]))


def _run(crit: StoppingCriterion, values):
    """Feed values until should_stop; return (flags, index of the update that stopped or None)."""
    flags = []
    for i, v in enumerate(values):
        flags.append(crit.update(v))
        if crit.should_stop:
            return flags, i
    return flags, None


def test_patience_and_min_improvement_stop_at_the_right_iteration():
    crit = StoppingCriterion(
        metrics.recall_k, k=10, stop_early=True, max_iter_no_change=3, min_improvement=0.05
    )
    # 0.10 first (better); 0.20 (+0.10, better); 0.24 (+0.04 <= 0.05, no);
    # 0.25 (+0.05 exactly: not MORE than 0.05, no); 0.30 (+0.10 over 0.20, better);
    # then three without improvement -> stop at index 7.
    values = [0.10, 0.20, 0.24, 0.25, 0.30, 0.34, 0.29, 0.31, 0.99]
    flags, stopped = _run(crit, values)
    assert flags == [True, True, False, False, True, False, False, False]
    assert stopped == 7
    assert crit.best_value == 0.30
    assert crit.best_iteration == 4
    assert crit.n_iter_no_change == 3
    assert crit.n_updates == 8
    assert crit.history == values[:8]


def test_minimize_direction():
    crit = StoppingCriterion(
        metrics.bpr_loss_metric,
        minimize=True,
        needs="scores",
        stop_early=True,
        max_iter_no_change=2,
        min_improvement=0.1,
    )
    flags, stopped = _run(crit, [1.0, 0.8, 0.75, 0.5, 0.6, 0.45, 0.0])
    # 0.75 improves by 0.05 only; 0.5 by 0.3; 0.6 worse; 0.45 by 0.05 only -> stop at index 5.
    assert flags == [True, True, False, True, False, False]
    assert stopped == 5
    assert (crit.best_value, crit.best_iteration) == (0.5, 3)


def test_maximise_treats_a_decrease_as_no_improvement():
    crit = StoppingCriterion(metrics.recall_k, k=5)
    assert crit.update(0.5) is True
    assert crit.update(0.4) is False
    assert crit.update(0.6) is True
    assert (crit.best_value, crit.best_iteration, crit.n_iter_no_change) == (0.6, 2, 0)


def test_without_stop_early_never_stops_but_tracks_the_best():
    crit = StoppingCriterion(metrics.recall_k, k=5, max_iter_no_change=1)
    for v in [0.3, 0.2, 0.1, 0.0]:
        crit.update(v)
        assert not crit.should_stop
    assert (crit.best_value, crit.best_iteration, crit.n_iter_no_change) == (0.3, 0, 3)


def test_first_value_always_counts_and_nan_handling():
    crit = StoppingCriterion(metrics.recall_k, k=5, min_improvement=10.0)
    assert crit.update(0.1) is True  # first, despite the huge min_improvement
    assert crit.update(float("nan")) is False
    nan_first = StoppingCriterion(metrics.recall_k, k=5)
    assert nan_first.update(float("nan")) is True
    assert nan_first.best_iteration == 0
    assert nan_first.update(0.0) is True  # any number beats a NaN best
    assert nan_first.best_value == 0.0


def test_reset_forgets_everything():
    crit = StoppingCriterion(metrics.recall_k, k=5, stop_early=True, max_iter_no_change=1)
    crit.update(0.5)
    crit.update(0.1)
    assert crit.should_stop
    crit.reset()
    assert crit.best_value is None and crit.best_iteration is None
    assert crit.n_iter_no_change == 0 and crit.n_updates == 0 and crit.history == []
    assert not crit.should_stop
    assert crit.update(0.01) is True


EXPECTED_NAMED = {
    "recall": (metrics.recall_k, False, "topk", 50),
    "ndcg": (metrics.ndcg_k, False, "topk", 50),
    "precision": (metrics.precision_k, False, "topk", 10),
    "bpr": (metrics.bpr_loss_metric, True, "scores", None),
    "warp": (metrics.warp_loss_metric, True, "scores", None),
    "mrr": (metrics.mrr_at_k, False, "ranks", 20),
    "next_item_recall": (metrics.recall_at_k, False, "ranks", 20),
}


def test_functions_lists_exactly_the_named_criteria():
    assert set(StoppingCriterion.FUNCTIONS) == set(EXPECTED_NAMED)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMED))
def test_create_every_named_criterion(name):
    func, minimize, needs, k = EXPECTED_NAMED[name]
    crit = StoppingCriterion.create(name)
    assert (crit.func, crit.minimize, crit.needs, crit.k, crit.name) == (
        func,
        minimize,
        needs,
        k,
        name,
    )
    assert crit.stop_early is False and crit.max_iter_no_change == 5
    assert crit.min_improvement == 0.0
    # It evaluates on the input its `needs` names and pickles with its state.
    if needs == "ranks":
        value = crit.evaluate(ranks=np.array([1, 2, 30]))
    else:
        value = crit.evaluate(y_true=Y_TRUE, y_pred=Y_PRED)
    assert np.isfinite(value)
    crit.update(value)
    clone = pickle.loads(pickle.dumps(crit))
    assert clone.func is func and clone.best_value == value and clone.history == [value]


def test_create_applies_overrides_and_function_kwargs():
    crit = StoppingCriterion.create(
        "bpr", stop_early=True, max_iter_no_change=2, min_improvement=0.01, sample_size=7, seed=3
    )
    assert crit.stop_early and crit.max_iter_no_change == 2 and crit.min_improvement == 0.01
    assert crit.kwargs == {"sample_size": 7, "seed": 3}
    expected = metrics.bpr_loss_metric(Y_TRUE, Y_PRED, sample_size=7, seed=3)
    assert crit.evaluate(y_true=Y_TRUE, y_pred=Y_PRED) == expected
    recall5 = StoppingCriterion.create("recall", k=1)
    assert recall5.k == 1
    assert recall5.evaluate(y_true=Y_TRUE, y_pred=Y_PRED) == metrics.recall_k(Y_TRUE, Y_PRED, k=1)


def test_create_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="stopping_criterion") as info:
        StoppingCriterion.create("auc")
    for name in EXPECTED_NAMED:
        assert repr(name) in str(info.value)


def test_evaluate_hand_values_per_needs():
    # topk: user 0 hit at rank 1, user 1 hit at rank 3, user 2 has no truth.
    assert StoppingCriterion.create("recall", k=2).evaluate(y_true=Y_TRUE, y_pred=Y_PRED) == 0.5
    ndcg = StoppingCriterion.create("ndcg").evaluate(y_true=Y_TRUE, y_pred=Y_PRED)
    assert ndcg == pytest.approx((1 + 1 / np.log2(4)) / 2)
    prec = StoppingCriterion.create("precision").evaluate(y_true=Y_TRUE, y_pred=Y_PRED)
    assert prec == pytest.approx((1 / 10 + 1 / 10) / 2)
    # ranks
    ranks = np.array([1, 4, 21])
    assert StoppingCriterion.create("mrr").evaluate(ranks=ranks) == pytest.approx((1 + 1 / 4) / 3)
    nir = StoppingCriterion.create("next_item_recall").evaluate(ranks=ranks)
    assert nir == pytest.approx(2 / 3)
    # scores
    warp = StoppingCriterion.create("warp", U=5).evaluate(y_true=Y_TRUE, y_pred=Y_PRED)
    assert warp == metrics.warp_loss_metric(Y_TRUE, Y_PRED, U=5)


def test_evaluate_rejects_the_wrong_input():
    with pytest.raises(ValueError, match="ranks"):
        StoppingCriterion.create("mrr").evaluate(y_true=Y_TRUE, y_pred=Y_PRED)
    with pytest.raises(ValueError, match="ranks"):
        StoppingCriterion.create("mrr").evaluate(ranks=np.array([1]), y_true=Y_TRUE)
    with pytest.raises(ValueError, match="y_true"):
        StoppingCriterion.create("recall").evaluate(ranks=np.array([1, 2]))
    with pytest.raises(ValueError, match="y_true"):
        StoppingCriterion.create("bpr").evaluate(y_true=Y_TRUE)


def _custom_metric(y_true, y_pred, scale=1.0):
    return scale * y_pred.sum()


def test_custom_function_criterion():
    crit = StoppingCriterion(_custom_metric, needs="scores", scale=2.0)
    assert crit.name == "_custom_metric" and crit.k is None
    assert crit.evaluate(y_true=Y_TRUE, y_pred=Y_PRED) == pytest.approx(2.0 * Y_PRED.sum())
    assert pickle.loads(pickle.dumps(crit)).kwargs == {"scale": 2.0}
    named = StoppingCriterion(metrics.mrr_at_k, needs="ranks", k=5, name="mrr5")
    assert named.name == "mrr5" and "mrr5" in repr(named)
    assert named.evaluate(ranks=np.array([5, 6])) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"needs": "dense"},
        {"max_iter_no_change": 0},
        {"max_iter_no_change": 2.5},
        {"min_improvement": -0.1},
        {"k": 0},
        {"k": None},  # needs="topk" must know k
    ],
)
def test_constructor_validates(kwargs):
    params = {"func": metrics.recall_k, "k": 5, **kwargs}
    with pytest.raises(ValueError):
        StoppingCriterion(**params)


def test_constructor_rejects_non_callable_and_accepts_numpy_numbers():
    with pytest.raises(TypeError):
        StoppingCriterion("recall", k=5)
    crit = StoppingCriterion(
        metrics.recall_k,
        k=np.int64(5),
        max_iter_no_change=np.int64(2),
        min_improvement=np.float32(0),
    )
    assert (crit.k, crit.max_iter_no_change, crit.min_improvement) == (5, 2, 0.0)
    assert NEEDS == ("topk", "scores", "ranks")


# -- configured criteria, the selection of the best epoch, serialisation -------------------------


def test_configured_named_criterion_takes_the_settings():
    crit = configured("ndcg", stop_early=True, max_iter_no_change=2, min_improvement=0.1)
    assert (crit.name, crit.stop_early, crit.max_iter_no_change, crit.min_improvement) == (
        "ndcg",
        True,
        2,
        0.1,
    )


def test_configured_instance_keeps_what_the_user_set_and_fills_in_the_rest():
    mine = StoppingCriterion(metrics.recall_at_k, needs="ranks", k=20, max_iter_no_change=2)
    mine.update(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crit = configured(mine, stop_early=True, max_iter_no_change=5, min_improvement=0.01)
    assert crit is not mine and crit.n_updates == 0 and mine.n_updates == 1
    # Left at its default on the instance: the estimator's setting applies.
    assert crit.stop_early is True and crit.min_improvement == 0.01
    # Set on the instance: kept (the estimator's value is its own default, so no warning).
    assert crit.max_iter_no_change == 2
    # Set on both sides, differently: the instance wins, with a warning naming the setting.
    with pytest.warns(UserWarning, match="max_iter_no_change=2 is kept over max_iter_no_change=7"):
        crit = configured(mine, stop_early=False, max_iter_no_change=7, min_improvement=0.0)
    assert crit.max_iter_no_change == 2


def test_selection_keeps_the_best_epochs_weights():
    model = torch.nn.Linear(2, 1)
    selection = Selection(StoppingCriterion.create("recall"))
    for epoch, value in enumerate([0.1, 0.3, 0.2]):
        with torch.no_grad():
            model.weight.fill_(epoch)
        selection.update(epoch, value, model)
    assert (selection.best_epoch, selection.best_value) == (1, 0.3)
    assert torch.equal(selection.best_state["weight"], torch.ones(1, 2))
    assert torch.equal(model.weight, torch.full((1, 2), 2.0))  # the model itself is untouched


@pytest.mark.parametrize("name", ["recall", "mrr", "custom"])
def test_to_dict_from_dict_round_trip(name):
    if name == "custom":
        crit = StoppingCriterion(metrics.mrr_at_k, minimize=True, needs="ranks", k=7, name="mine")
    else:
        crit = StoppingCriterion.create(name, k=11)
    back = StoppingCriterion.from_dict(crit.to_dict())
    assert back.to_dict() == crit.to_dict()
    if name == "custom":  # the function cannot travel in a file: it says so when used
        with pytest.raises(ValueError, match="custom stopping criterion"):
            back.evaluate(ranks=np.array([1, 2]))
