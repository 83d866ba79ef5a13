"""What a new user meets first: threads, recommend's options and hints, timestamps as strings,
one naming of the event columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import gru4rec.inference as inference
from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix
from gru4rec.datasets import make_synthetic_sessions, preprocess, read_events, time_split
from gru4rec.stopping import StoppingCriterion

SMALL = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=0, device="cpu")


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)


@pytest.fixture(scope="module")
def model(events) -> GRU4RecNegSampling:
    return GRU4RecNegSampling(num_negatives=8, **SMALL).fit(events)


# -- threads -------------------------------------------------------------------------------------


@pytest.fixture
def outer_threads():
    """torch set to 3 threads around the test (not 1, not torch's default: a change shows)."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def _recording_criterion(seen: list[int]) -> StoppingCriterion:
    def recall_recording_threads(ranks):
        seen.append(torch.get_num_threads())
        return float(np.mean(ranks <= 20))

    return StoppingCriterion(recall_recording_threads, needs="ranks", name="rec")


@pytest.mark.parametrize(
    "cls, num_threads",
    [
        (GRU4RecNegSampling, 1),
        (GRU4RecNegSampling, None),
        (GRU4RecCrossEntropy, 1),
        (GRU4RecCrossEntropy, 2),  # one case with 2 threads: slow on a busy CI machine
    ],
)
def test_fit_and_inference_run_with_num_threads_and_restore(
    cls, num_threads, outer_threads, monkeypatch
):
    seen: list[int] = []
    est = cls(num_threads=num_threads, stopping_criterion=_recording_criterion(seen), **SMALL)
    # Tiny data: several threads on a busy machine make every step wait (what this is about).
    tiny = make_synthetic_sessions(n_sessions=80, n_items=15, seed=2)
    train, test = time_split(tiny, test_days=0.02)
    X = InteractionMatrix.from_events(train)
    V = InteractionMatrix.from_events(test, item_vocabulary=X.item_vocabulary)
    from gru4rec.datasets import last_item_split

    est.fit(X, validation_data=last_item_split(V))
    expected = outer_threads if num_threads is None else num_threads
    assert seen == [expected]
    assert torch.get_num_threads() == outer_threads

    topk = inference.score_topk
    during: list[int] = []

    def recording(*args, **kwargs):
        during.append(torch.get_num_threads())
        return topk(*args, **kwargs)

    monkeypatch.setattr(inference, "score_topk", recording)
    est.recommend([1, 2])
    est.set_params(predict_topK=5)
    est.predict(V)
    assert during == [expected, expected]
    assert torch.get_num_threads() == outer_threads
    with pytest.raises(ValueError):  # an error inside still restores the setting
        est.predict(pd.DataFrame({"x": [1]}))
    assert torch.get_num_threads() == outer_threads


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_num_threads_is_rejected_by_fit(bad, events):
    with pytest.raises(ValueError, match="num_threads"):
        GRU4RecNegSampling(num_threads=bad, **SMALL).fit(events)


def test_num_threads_defaults_to_one_on_both_estimators():
    assert GRU4RecNegSampling().num_threads == 1
    assert GRU4RecCrossEntropy().num_threads == 1


# -- recommend: exclude_seen and unknown ids ----------------------------------------------------


def test_exclude_seen_drops_the_sessions_items_and_keeps_the_order(model):
    sessions = [[1, 2, 3, 2], [4], [5, 6]]
    ids, scores = model.recommend(sessions, k=6)
    kept, kept_scores = model.recommend(sessions, k=6, exclude_seen=True)
    assert kept.shape == (3, 6)
    full, full_scores = model.recommend(sessions, k=30)
    for row, session in enumerate(sessions):
        assert not set(kept[row]) & set(session)
        unseen = [i for i in full[row] if i not in session][:6]
        assert list(kept[row]) == unseen
        np.testing.assert_array_equal(kept_scores[row], np.sort(kept_scores[row])[::-1])
    # Default: today's behaviour, seen items stay.
    np.testing.assert_array_equal(ids, full[:, :6])


def test_exclude_seen_with_too_few_unseen_items_pads_with_minus_inf(model):
    session = list(range(28))
    ids, scores = model.recommend(session, k=5, exclude_seen=True)
    assert set(ids[:2]) == {28, 29}
    assert np.isfinite(scores[:2]).all() and np.isneginf(scores[2:]).all()


def test_exclude_seen_single_session_and_bad_value(model):
    ids, _ = model.recommend([7, 8], k=3, exclude_seen=True)
    assert ids.shape == (3,) and not {7, 8} & set(ids)
    with pytest.raises(ValueError, match="exclude_seen"):
        model.recommend([7], exclude_seen="yes")


def _warning_text(fn) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return " ".join(str(w.message) for w in caught)


def test_unknown_items_of_another_id_type_say_so(model, events):
    text = _warning_text(lambda: model.recommend(["3", "17"]))
    assert "skipped 2 of 2" in text and "strings" in text and "numbers" in text
    strings = events.assign(item_id="i" + events["item_id"].astype(str))
    string_model = GRU4RecNegSampling(num_negatives=8, **SMALL).fit(strings)
    text = _warning_text(lambda: string_model.recommend([3, 17]))
    assert "numbers" in text and "strings" in text and "'i" in text
    # Same id type, or some items known: no hint, just the count.
    assert "convert" not in _warning_text(lambda: model.recommend([999, 998]))
    assert "convert" not in _warning_text(lambda: model.recommend([3, "x"]))


# -- timestamps as ISO-8601 strings -------------------------------------------------------------


def _iso(df: pd.DataFrame) -> pd.DataFrame:
    times = pd.to_datetime(df["timestamp"], unit="s", utc=True)
    return df.assign(timestamp=times.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_fit_on_iso_strings_equals_fit_on_seconds(events):
    a = GRU4RecNegSampling(num_negatives=8, **SMALL).fit(events)
    b = GRU4RecNegSampling(num_negatives=8, **SMALL).fit(_iso(events))
    assert a.history_[0]["train_loss"] == b.history_[0]["train_loss"]
    np.testing.assert_array_equal(a.recommend([1, 2])[0], b.recommend([1, 2])[0])


def test_unparseable_time_strings_raise_naming_the_column(events):
    bad = events.assign(timestamp=events["timestamp"].astype(str).str.cat(["x"] * len(events)))
    with pytest.raises(ValueError, match=r"'timestamp'.*ISO-8601"):
        GRU4RecNegSampling(**SMALL).fit(bad)


def test_read_events_parses_iso_times(events, tmp_path):
    path = tmp_path / "ev.csv"
    _iso(events).rename(columns={"timestamp": "time"}).to_csv(path, index=False)
    df = read_events(path, time_col="time")
    assert df["timestamp"].dtype == np.int64
    np.testing.assert_array_equal(df["timestamp"], events["timestamp"])
    pd.DataFrame({"session_id": [1], "item_id": [2], "timestamp": ["noon"]}).to_csv(path)
    with pytest.raises(ValueError, match="ISO-8601"):
        read_events(path)


def test_time_split_on_iso_strings_equals_split_on_seconds(events):
    train, test = time_split(events, test_days=0.02)
    train_s, test_s = time_split(_iso(events), test_days=0.02)
    np.testing.assert_array_equal(train["session_id"], train_s["session_id"])
    np.testing.assert_array_equal(test["item_id"], test_s["item_id"])


# -- one naming of the event columns ------------------------------------------------------------

RENAMED = {"session_id": "visit", "item_id": "product", "timestamp": "ts"}
NAMES = dict(session_col="visit", item_col="product", time_col="ts")


def test_the_same_column_parameters_everywhere(events):
    df = events.rename(columns=RENAMED)
    train, test = time_split(df, test_days=0.02, **NAMES)
    expected_train, _ = time_split(events, test_days=0.02)
    assert len(train) == len(expected_train)
    kept = preprocess(df, min_item_support=2, **NAMES)
    assert len(kept) == len(preprocess(events, min_item_support=2))
    X = InteractionMatrix.from_events(train, **NAMES)
    old_spelling = InteractionMatrix.from_events(
        train, user="visit", item="product", timestamp="ts"
    )
    assert X.shape == old_spelling.shape
    est = GRU4RecNegSampling(num_negatives=8, **SMALL, **NAMES).fit(train)
    assert 0.0 <= est.score(test) <= 1.0


@pytest.mark.parametrize(
    "call",
    [
        lambda df: GRU4RecNegSampling(**SMALL).fit(df),
        lambda df: InteractionMatrix.from_events(df),
        lambda df: time_split(df, test_days=1),
        lambda df: preprocess(df),
    ],
    ids=["fit", "from_events", "time_split", "preprocess"],
)
def test_a_missing_default_column_names_the_parameter_to_set(call, events):
    df = events.rename(columns={"session_id": "visit"})
    with pytest.raises(ValueError, match=r"'session_id'.*set session_col="):
        call(df)


# -- packaging ----------------------------------------------------------------------------------


def test_licence_is_an_spdx_string_with_its_file():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert (root / "LICENSE").read_text().startswith("MIT License")
    # Setuptools reads SPDX strings from version 77 on.
    assert any(
        r.replace(" ", "").startswith("setuptools>=77") for r in meta["build-system"]["requires"]
    )
