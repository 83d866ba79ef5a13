"""partial_fit: continued training, a growing catalogue, and the state a model file carries."""

from __future__ import annotations

import copy
import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import assert_same_weights, index_matrix, longer_events, neg, weights, xent

from gru4rec import InteractionMatrix
from gru4rec.checkpoint import load_checkpoint, save_checkpoint
from gru4rec.growth import (
    MissingTrainingStateError,
    grow_model,
    restore_optimizer,
    update_seeds,
)
from gru4rec.optim import RowSparseOptimizer
from gru4rec.schedule import session_order, session_parallel_schedule
from gru4rec.step import EpochData, build_optimizer, build_sampler
from gru4rec.trainer import Parts, Trainer, TrainingDivergedError


def _slice(seed: int, n_items: int, offset: int = 100, n_sessions: int = 12) -> pd.DataFrame:
    df = longer_events(n_sessions=n_sessions, n_items=n_items, seed=seed)
    df["item_id"] += offset
    df["session_id"] += 1000 * seed
    return df


def _state(est) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: {kind: t.clone() for kind, t in bufs.items()}
        for name, bufs in est.training_state_.optimizer.items()
    }


def test_growth_keeps_known_rows_and_state_and_initialises_new_ones():
    est = neg(momentum=0.5, max_epochs=2).fit(_slice(0, 9))
    model, state = est.model_, est.training_state_
    grown = grow_model(model, 15, torch.Generator().manual_seed(3))
    assert grown.n_items == 15 and model.n_items == 9  # the fitted model is untouched
    bound = math.sqrt(6.0 / (15 + 8))
    for name, table in grown.item_tables().items():
        old = model.item_tables()[name]
        assert table.shape == (15, old.shape[1]) and table.is_contiguous()
        assert table.dtype == old.dtype
        assert torch.equal(table[:9], old)
        new = table[9:]
        if name == "item_bias":
            assert torch.equal(new, torch.zeros_like(new))
        else:
            assert new.abs().max() <= bound and new.abs().max() > bound / 4
            assert new.std() > 0
    opt = RowSparseOptimizer(
        grown.dense_parameters(), grown.item_tables(), "adagrad", lr=0.1, momentum=0.5
    )
    restore_optimizer(opt, grown, state)
    by_param = opt.state_by_param()
    for name, p in grown.named_parameters():
        saved = state.optimizer[name]
        acc, vel = by_param[id(p)]["acc"], by_param[id(p)]["vel"]
        n = saved["acc"].shape[0]
        assert torch.equal(acc[:n], saved["acc"]) and torch.equal(vel[:n], saved["vel"])
        assert torch.all(acc[n:] == opt.eps) and torch.all(vel[n:] == 0)
        if name in ("item_output", "item_embedding"):
            assert n == 9 and acc.shape[0] == 15
            assert (saved["acc"] > opt.eps).any()  # the fit left a real state to keep


def test_partial_fit_grows_the_vocabulary_and_keeps_indices():
    first, second = _slice(0, 9), _slice(1, 13)
    est = neg().fit(first)
    ids_before = est.item_vocabulary_.ids.copy()
    pred_before = est.predict(first)
    est.partial_fit(second, epochs=1)
    new_ids = np.setdiff1d(second["item_id"].unique(), ids_before)
    assert est.n_items_ == 9 + len(new_ids) == len(est.item_vocabulary_)
    np.testing.assert_array_equal(est.item_vocabulary_.ids[:9], ids_before)
    # New ids in the order X's encoding meets them.
    order = pd.unique(second.sort_values(["session_id", "timestamp"])["item_id"])
    np.testing.assert_array_equal(est.item_vocabulary_.ids[9:], [i for i in order if i in new_ids])
    for table in est.model_.item_tables().values():
        assert table.shape[0] == est.n_items_
    assert est.predict(first).shape == (pred_before.shape[0], est.n_items_)
    assert est.item_counts_.sum() == len(first) + len(second)
    assert est.training_state_.updates == 1
    assert [r.get("update") for r in est.history_] == [None, 1]


def _continue_by_hand(est, X: pd.DataFrame):
    """One epoch of training from the estimator's weights and optimiser state, built from the
    package's parts with update 1's seeds: what partial_fit must amount to."""
    model = copy.deepcopy(est.model_)
    seed, rng = update_seeds(est.seed_, 1)
    generator = torch.Generator().manual_seed(seed)
    sessions = InteractionMatrix.from_events(X).session_arrays()
    assert list(sessions.items) == list(
        est.item_vocabulary_.index_of(
            InteractionMatrix.from_events(X).item_vocabulary.ids[sessions.items]
        )
    )
    schedule = session_parallel_schedule(
        sessions.offsets, session_order(sessions.start_times, rng, "time"), est.batch_size
    )
    opt = build_optimizer(model, "adagrad", lr=0.03)
    restore_optimizer(opt, model, est.training_state_)
    counts = est.item_counts_ + np.bincount(sessions.items, minlength=est.n_items_)
    sampler = build_sampler(
        counts,
        est.sample_alpha,
        est.num_negatives,
        generator,
        torch.device("cpu"),
        buffer_size=min(2**22, est.num_negatives * schedule.n_steps),
    )
    parts = Parts(
        model=model,
        data=EpochData.build(sessions.items, schedule, torch.device("cpu")),
        optimizer=opt,
        loss=est._loss_config(),
        sampler=sampler,
        generator=generator,
        clipnorm=est.clipnorm,
    )
    Trainer(parts, 0.03).run(1)
    return model


@pytest.mark.parametrize("alpha", [0.0, 0.75])
def test_partial_fit_without_new_items_is_one_more_epoch_from_the_kept_state(alpha):
    X = _slice(0, 9)
    est = neg(max_epochs=2, sample_alpha=alpha).fit(X)
    expected = _continue_by_hand(est, X)
    est.partial_fit(X, epochs=1)
    assert est.n_items_ == 9
    assert_same_weights(weights(est), expected.state_dict())
    # The kept state matters: from a fresh optimiser the same epoch gives other weights.
    fresh = neg(max_epochs=2, sample_alpha=alpha).fit(X)
    fresh.training_state_.optimizer = {}
    fresh.partial_fit(X, epochs=1)
    assert not torch.equal(fresh.model_.item_output, est.model_.item_output)


def test_accumulators_grow_over_an_update():
    X = _slice(0, 9)
    est = neg().fit(X)
    before = _state(est)
    est.partial_fit(_slice(1, 12), epochs=1)
    after = est.training_state_.optimizer
    for name, bufs in before.items():
        n = bufs["acc"].shape[0]
        assert torch.all(after[name]["acc"][:n] >= bufs["acc"])
        assert torch.any(after[name]["acc"][:n] > bufs["acc"])


@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_save_load_partial_fit_equals_partial_fit(tmp_path, make):
    est = make(max_epochs=2, **({"sample_alpha": 0.5} if make is neg else {}))
    est.fit(_slice(0, 9)).partial_fit(_slice(1, 11))
    path = est.save(tmp_path / "model.trch")
    loaded = type(est)().load(path)
    pickled = pickle.loads(pickle.dumps(est))
    nxt = _slice(2, 14)
    for other in (loaded, pickled):
        assert other.training_state_.updates == 1
    est.partial_fit(nxt)
    loaded.partial_fit(nxt)
    pickled.partial_fit(nxt)
    for other in (loaded, pickled):
        assert_same_weights(weights(other), weights(est))
        np.testing.assert_array_equal(other.item_vocabulary_.ids, est.item_vocabulary_.ids)
        np.testing.assert_array_equal(
            other.training_state_.sampler_counts, est.training_state_.sampler_counts
        )


def test_file_without_training_state_predicts_and_partial_fit_says_what_is_missing(tmp_path):
    X = _slice(0, 9)
    est = neg().fit(X)
    path = est.save(tmp_path / "model.trch")
    state, meta = load_checkpoint(path)
    del meta["training_state"]  # as files of earlier versions
    save_checkpoint(path, state, meta)
    old = neg().load(path)
    assert old.training_state_ is None
    np.testing.assert_allclose(old.predict(X).toarray(), est.predict(X).toarray())
    before = weights(old)
    with pytest.raises(MissingTrainingStateError, match="optimiser.*sampler"):
        old.partial_fit(_slice(1, 12))
    assert old.n_items_ == 9
    assert_same_weights(weights(old), before)


@pytest.mark.parametrize(
    "change, named",
    [
        ({"hidden_size": 16}, "hidden_size"),
        ({"num_layers": 2}, "num_layers"),
        ({"num_components": 5}, "num_components"),
        ({"constrained_embedding": True}, "constrained_embedding"),
    ],
)
def test_a_changed_network_shape_is_an_error_before_any_work(change, named):
    est = neg().fit(_slice(0, 9))
    before = weights(est)
    est.set_params(**change)
    with pytest.raises(ValueError, match=rf"{named} \(fitted with"):
        est.partial_fit(_slice(1, 12))
    assert est.n_items_ == 9 and est.training_state_.updates == 0
    assert_same_weights(weights(est), before)


def test_item_ids_of_another_type_name_both_types():
    est = neg().fit(_slice(0, 9))
    other = _slice(1, 9)
    other["item_id"] = "x" + other["item_id"].astype(str)
    with pytest.raises(TypeError, match=r"X are strings \(str\).*vocabulary holds numbers"):
        est.partial_fit(other)
    assert est.n_items_ == 9


def test_empty_x_is_a_no_op_with_a_warning():
    est = neg().fit(_slice(0, 9))
    before = weights(est)
    with pytest.warns(UserWarning, match="empty X"):
        est.partial_fit(_slice(1, 9).iloc[:0])
    assert_same_weights(weights(est), before)
    assert est.training_state_.updates == 0
    empty = InteractionMatrix.from_events(_slice(1, 9)).users_in([])
    with pytest.warns(UserWarning, match="empty X"):
        est.partial_fit(empty)
    with pytest.raises(ValueError, match="column 'item_id' not in X"):
        est.partial_fit(pd.DataFrame(columns=["session_id", "item", "timestamp"]))
    assert est.training_state_.updates == 0 and est.n_items_ == 9


def test_diverged_update_leaves_the_model_as_it_was():
    est = neg(optimization_algorithm="sgd", clipnorm=None).fit(_slice(0, 9))
    before, vocab, hist = weights(est), est.item_vocabulary_, list(est.history_)
    est.set_params(learning_rate=3e38)  # overflows the weights or the scores
    with pytest.raises(TrainingDivergedError, match="learning_rate.*as it was before the call"):
        est.partial_fit(_slice(1, 13), epochs=3)
    assert est.item_vocabulary_ is vocab and est.n_items_ == 9 and est.history_ == hist
    assert_same_weights(weights(est), before)
    assert est.training_state_.updates == 0


@pytest.mark.parametrize("epochs", [1, 2])
def test_interrupted_update_leaves_the_model_as_it_was(epochs):
    est = neg().fit(_slice(0, 9))
    before, state = weights(est), _state(est)

    def interrupt(estimator, record):
        raise KeyboardInterrupt

    # Ctrl-C propagates (as from fit); an update is all or nothing, so no epoch is kept.
    with pytest.raises(KeyboardInterrupt, match="as it was before the call") as stop:
        est.partial_fit(_slice(1, 13), epochs=epochs, callbacks=[interrupt])
    assert stop.value.epochs_completed == 0
    assert est.n_items_ == 9 and len(est.item_vocabulary_) == 9
    assert_same_weights(weights(est), before)
    for name, bufs in state.items():
        for kind, t in bufs.items():
            assert torch.equal(est.training_state_.optimizer[name][kind], t)


def test_partial_fit_on_an_unfitted_estimator_is_a_first_fit():
    X = _slice(0, 9)
    a = neg(max_epochs=3).partial_fit(X, epochs=2)
    b = neg(max_epochs=2).fit(X)
    assert a.max_epochs == 3
    assert_same_weights(weights(a), weights(b))


def test_new_items_are_recommended_after_the_update_that_saw_them():
    est = neg(max_epochs=3, learning_rate=0.1).fit(_slice(0, 9))
    # Today's article: every session goes from a known item to it.
    rows = [(s, it, t) for s in range(60) for t, it in enumerate((101, 999))]
    today = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(today, epochs=5)
    ids, _ = est.recommend([101], k=3)
    assert 999 in ids


def test_count_decay_weighs_the_old_counts():
    X, Y = _slice(0, 9), _slice(1, 9)
    est = neg(sample_alpha=0.5).fit(X)
    old = est.training_state_.sampler_counts.copy()
    est.partial_fit(Y, epochs=1, count_decay=0.25)
    new = np.bincount(est.item_vocabulary_.index_of(Y["item_id"]), minlength=est.n_items_)
    np.testing.assert_allclose(est.training_state_.sampler_counts, 0.25 * old + new)
    # item_counts_ stays the plain number of events seen.
    assert est.item_counts_.sum() == len(X) + len(Y)
    with pytest.raises(ValueError, match="count_decay"):
        est.partial_fit(Y, count_decay=1.5)
    with pytest.raises(ValueError, match="epochs"):
        est.partial_fit(Y, epochs=0)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(st.integers(0, 30), min_size=2, max_size=20),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_random_slice_sequences_keep_vocabulary_and_indices(slices, as_str):
    est = neg(batch_size=2)
    seen: list = []
    previous: list = []
    t = 0
    for k, items in enumerate(slices):
        raw = [f"i{i}" if as_str else i for i in items]
        # Sessions of two events each (a last odd one joins the previous session).
        sessions = [k * 100 + j // 2 for j in range(len(raw))]
        if len(raw) % 2:
            sessions[-1] = sessions[-2]
        df = pd.DataFrame(
            {"session_id": sessions, "item_id": raw, "timestamp": np.arange(t, t + len(raw))}
        )
        t += len(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(df, epochs=1)
        for i in pd.unique(pd.Series(raw)):
            if i not in seen:
                seen.append(i)
        vocab = est.item_vocabulary_.ids.tolist()
        assert sorted(map(str, vocab)) == sorted(map(str, seen))
        assert len(vocab) == len(set(vocab)) == est.n_items_
        assert vocab[: len(previous)] == previous  # known items keep their indices
        previous = vocab
        for name, table in est.model_.item_tables().items():
            assert table.shape[0] == est.n_items_
            for kind, buf in est.training_state_.optimizer[name].items():
                assert buf.shape == table.shape, (name, kind)
        assert len(est.training_state_.sampler_counts) == est.n_items_
        assert est.item_counts_.sum() == t
        assert est.predict(df).shape[1] == est.n_items_


def test_partial_fit_with_validation_data_over_new_items():
    est = neg(stopping_criterion="mrr").fit(_slice(0, 9))
    today = _slice(1, 13)
    last = today.groupby("session_id")["timestamp"].transform("max") == today["timestamp"]
    est.partial_fit(today, (today[~last], today[last]), epochs=2)
    updates = [r for r in est.history_ if r.get("update") == 1]
    assert len(updates) == 2 and all("mrr" in r for r in updates)
    assert est.best_value_ == max(r["mrr"] for r in updates)
    assert est.best_epoch_ in (0, 1)


def test_index_built_matrices_grow_by_index():
    est = neg().fit(index_matrix())
    assert est.item_vocabulary_ is None and est.n_items_ == 5
    df = _slice(1, 8, offset=0)
    X = InteractionMatrix(
        df, "item_id", "session_id", "timestamp", shape=(df["session_id"].max() + 1, 11)
    )
    est.partial_fit(X, epochs=1)
    assert est.item_vocabulary_ is None and est.n_items_ == 11  # the matrix's width, as fit
    assert est.predict(X).shape[1] == est.n_items_
    with pytest.raises(ValueError, match="fitted on item indices but X holds raw item ids"):
        est.partial_fit(_slice(2, 8))
