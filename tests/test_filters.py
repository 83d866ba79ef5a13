"""Tests of recommend's candidate filters: ``items`` (an allow-list) and ``filter_items`` (ids
never returned), applied inside the score chunks before the top-K."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gru4rec import GRU4RecNegSampling
from gru4rec import estimator as est_module
from gru4rec.datasets import make_synthetic_sessions

N_ITEMS = 30


@pytest.fixture(scope="module")
def model() -> GRU4RecNegSampling:
    """A model of number ids 0 .. 29."""
    events = make_synthetic_sessions(n_sessions=200, n_items=N_ITEMS, seed=5)
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=0, device="cpu")
    return GRU4RecNegSampling(num_negatives=8, **small).fit(events)


def test_filter_items_are_never_returned_and_the_rest_keeps_its_order(model):
    sessions = [[1, 2, 3], [4], []]
    full, full_scores = model.recommend(sessions, k=N_ITEMS)
    banned = [int(full[0, 0]), int(full[1, 1]), 7]
    ids, scores = model.recommend(sessions, k=5, filter_items=banned)
    assert ids.shape == (3, 5)
    for row in range(3):
        expected = [i for i in full[row] if i not in banned][:5]
        assert list(ids[row]) == expected
        np.testing.assert_allclose(scores[row], full_scores[row][np.isin(full[row], expected)])


def test_allow_list_ranks_among_its_items_only(model):
    allowed = [3, 9, 12, 20, 25, 29]
    full, _ = model.recommend([[1, 2]], k=N_ITEMS)
    ids, scores = model.recommend([1, 2], k=4, items=allowed)
    assert list(ids) == [i for i in full[0] if i in allowed][:4]
    assert np.isfinite(scores).all()


def test_fewer_candidates_than_k_gives_fewer_results_never_a_filtered_item(model):
    ids, scores = model.recommend([[1], [2, 3]], k=10, items=[5, 6, 7], filter_items=[6])
    assert ids.shape == (2, 2)
    assert {frozenset(r) for r in ids.tolist()} == {frozenset({5, 7})}
    assert np.isfinite(scores).all()
    ids, _ = model.recommend([1], k=3, items=[4], filter_items=[4])
    assert ids.shape == (0,)


def test_exclude_seen_with_filters_pads_with_seen_candidates_only(model):
    # Candidates 5, 6, 7; the session saw 5 and 6: 7 first, then the seen ones at -inf,
    # and never one of the 27 filtered items (also -inf inside the chunks).
    ids, scores = model.recommend([5, 6], k=10, items=[5, 6, 7], exclude_seen=True)
    assert ids[0] == 7 and set(ids[1:]) == {5, 6}
    assert np.isfinite(scores[0]) and np.isneginf(scores[1:]).all()


def test_filters_in_small_chunks_equal_one_chunk(model, monkeypatch):
    sessions = [[1, 2, 3, 2], [4], [5, 6], list(range(20))]
    kwargs = dict(k=7, exclude_seen=True, filter_items=[0, 8, 15, 22], items=list(range(2, 28)))
    expected = model.recommend(sessions, **kwargs)
    monkeypatch.setattr(est_module, "_SCORE_CHUNK", 4)
    monkeypatch.setattr(est_module, "_EVAL_SLOTS", 2)
    got = model.recommend(sessions, **kwargs)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


def test_unknown_ids_are_ignored_with_a_warning_naming_the_parameter(model):
    with pytest.warns(UserWarning, match=r"2 of 3 ids in filter_items unknown"):
        ids, _ = model.recommend([1], k=N_ITEMS, filter_items=[4, 99, 123])
    assert 4 not in ids and len(ids) == N_ITEMS - 1
    with pytest.warns(UserWarning, match=r"1 of 2 ids in items unknown"):
        ids, _ = model.recommend([1], k=5, items=[4, 1000])
    assert list(ids) == [4]


def test_bad_filter_values_name_the_parameter(model):
    with pytest.raises(ValueError, match="items must be a list"):
        model.recommend([1], items="4")
    with pytest.raises(ValueError, match="filter_items must be a list"):
        model.recommend([1], filter_items=4)


def test_no_filters_warn_nothing_and_give_todays_result(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = model.recommend([[1, 2]], k=5, items=None, filter_items=None)
    b = model.recommend([[1, 2]], k=5)
    np.testing.assert_array_equal(a[0], b[0])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session=st.lists(st.integers(0, N_ITEMS - 1), max_size=6),
    allowed=st.none() | st.sets(st.integers(0, N_ITEMS + 3), max_size=N_ITEMS),
    banned=st.none() | st.sets(st.integers(0, N_ITEMS - 1), max_size=N_ITEMS),
    k=st.integers(1, N_ITEMS + 2),
    exclude_seen=st.booleans(),
)
def test_filtered_top_k_is_the_full_ranking_restricted_to_the_candidates(
    model, session, allowed, banned, k, exclude_seen
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown allow-list ids
        ids, scores = model.recommend(
            session, k=k, items=allowed, filter_items=banned, exclude_seen=exclude_seen
        )
    full, full_scores = model.recommend(session, k=N_ITEMS)
    candidates = set(range(N_ITEMS))
    if allowed is not None:
        candidates &= allowed
    if banned is not None:
        candidates -= banned
    assert len(ids) == min(k, len(candidates)) == len(set(ids))
    assert set(ids) <= candidates
    ranked = [i for i in full if i in candidates]
    if exclude_seen:
        ranked = [i for i in ranked if i not in session] + [i for i in ranked if i in session]
    n_unseen = sum(1 for i in ranked if not (exclude_seen and i in session))
    # The unseen places follow the full ranking; seen candidates fill the rest at -inf.
    top = min(len(ids), n_unseen)
    assert list(ids[:top]) == ranked[:top]
    by_item = dict(zip(full.tolist(), full_scores.tolist(), strict=True))
    np.testing.assert_allclose(scores[:top], [by_item[i] for i in ids[:top]], rtol=1e-6)
    assert set(ids[top:]) <= set(session) and np.isneginf(scores[top:]).all()


def test_cli_recommend_takes_the_filters_as_files_of_ids(model, tmp_path, capsys):
    import pandas as pd

    from gru4rec.cli import main

    path = tmp_path / "m.trch"
    model.save(path)
    sessions = pd.DataFrame({"session_id": [1, 1, 2], "item_id": [1, 2, 3], "timestamp": [0, 1, 2]})
    sessions.to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "allow.txt").write_text("5\n6\n7\nnot-an-item\n")
    (tmp_path / "ban.txt").write_text("6\n")
    out = tmp_path / "recs.csv"
    args = ["recommend", str(tmp_path / "s.csv"), "--model", str(path), "-k", "5", "--quiet"]
    files = ["--items", str(tmp_path / "allow.txt"), "--filter-items", str(tmp_path / "ban.txt")]
    assert main([*args, *files, "--out", str(out)]) == 0
    recs = pd.read_csv(out)
    assert len(recs) == 4 and set(recs["item_id"]) == {5, 7}
    assert "ignored 1 of 4 unknown ids" in capsys.readouterr().err


def test_a_filtered_seen_item_stays_out_with_exclude_seen(model):
    # 22 is seen and not allowed: the one place goes to the seen allowed item, at -inf.
    ids, scores = model.recommend([0, 22], k=3, items=[0], exclude_seen=True)
    assert list(ids) == [0] and np.isneginf(scores).all()
    ids, _ = model.recommend([0, 22], k=30, filter_items=[22], exclude_seen=True)
    assert 22 not in ids and len(ids) == N_ITEMS - 1
