"""Tests of gru4rec.sessions (live sessions, one event at a time) and the in-memory store."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.sessions import LiveSessions
from gru4rec.state_store import MemoryStore, SessionState, decode, encode

N_ITEMS = 30
SMALL = dict(batch_size=16, max_epochs=1, device="cpu", num_negatives=8)


@pytest.fixture(scope="module")
def model() -> GRU4RecNegSampling:
    events = make_synthetic_sessions(n_sessions=200, n_items=N_ITEMS, seed=5)
    return GRU4RecNegSampling(hidden_size=8, num_layers=2, seed=0, **SMALL).fit(events)


@pytest.fixture(scope="module")
def string_model() -> GRU4RecNegSampling:
    events = make_synthetic_sessions(n_sessions=200, n_items=N_ITEMS, seed=6)
    events["item_id"] = "i" + events["item_id"].astype(str)
    return GRU4RecNegSampling(hidden_size=8, seed=1, **SMALL).fit(events)


def _same(rec, ids, scores):
    np.testing.assert_array_equal(rec.items, ids)
    np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)


_SESSIONS = st.lists(st.lists(st.integers(0, N_ITEMS + 2), min_size=1, max_size=7), max_size=4)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sessions=_SESSIONS, exclude_seen=st.booleans(), k=st.integers(1, 8), seed=st.integers(0, 99))
def test_pushing_events_one_by_one_gives_recommend_on_the_whole_session(
    model, sessions, exclude_seen, k, seed
):
    """Events of several sessions, interleaved at random, pushed one by one or in batches."""
    live = LiveSessions(model, k=k, exclude_seen=exclude_seen)
    events = [(s, item) for s, items in enumerate(sessions) for item in items]
    rng = np.random.default_rng(seed)
    # A random interleaving that keeps each session's own order.
    keys = rng.permutation([s for s, _ in events])
    queues = [list(items) for items in sessions]
    stream = [(int(s), queues[s].pop(0)) for s in keys]
    split = int(rng.integers(0, len(stream) + 1))
    results = [live.push(s, i) for s, i in stream[:split]]
    if stream[split:]:
        results += live.push_many([s for s, _ in stream[split:]], [i for _, i in stream[split:]])
    last = {}
    for (s, i), rec in zip(stream, results, strict=True):
        assert rec.known == (i < N_ITEMS)
        last[s] = rec
    for s, items in enumerate(sessions):
        known = [i for i in items if i < N_ITEMS]
        ids, scores = model.recommend(known, k=k, exclude_seen=exclude_seen)
        _same(last[s], ids, scores)
        _same(live.recommend(s), ids, scores)


def test_string_ids_filters_and_exclude_seen_as_recommend(string_model):
    live = LiveSessions(string_model, k=4)
    for item in ["i1", "i2", "i3"]:
        rec = live.push("s", item, exclude_seen=True, filter_items=["i7"], items=None)
    ids, scores = string_model.recommend(
        ["i1", "i2", "i3"], k=4, exclude_seen=True, filter_items=["i7"]
    )
    _same(rec, ids, scores)
    rec = live.push("s", "i4", k=3, items=["i5", "i6", "i7"], filter_items=["i6"])
    assert set(rec.items) == {"i5", "i7"}


def test_unknown_item_leaves_the_state_and_says_so(model):
    live = LiveSessions(model, k=5)
    before = live.push("s", 3)
    rec = live.push("s", 12345)
    assert not rec.known and before.known
    _same(rec, before.items, before.scores)
    assert live.push("t", "no such item").known is False
    assert len(live) == 1  # an unknown first event stores nothing


def test_end_forgets_the_session(model):
    live = LiveSessions(model, k=5)
    live.push("s", 3)
    assert live.end("s") and not live.end("s")
    fresh = live.recommend("s")
    _same(fresh, *model.recommend([], k=5))


def test_max_sessions_evicts_the_least_recently_used(model):
    live = LiveSessions(model, k=3, max_sessions=2)
    live.push("a", 1)
    live.push("b", 2)
    live.push("a", 3)  # a is now the most recent
    live.push("c", 4)
    assert live.store.get_many(["a", "b", "c"])[1] is None
    assert len(live) == 2 and live.store.evicted == 1
    _same(live.recommend("a"), *model.recommend([1, 3], k=3))


def test_ttl_drops_idle_sessions(model):
    live = LiveSessions(model, k=3, ttl=0.05)
    live.push("a", 1)
    time.sleep(0.1)
    _same(live.recommend("a"), *model.recommend([], k=3))


def test_reload_carries_states_of_the_same_shape_and_restarts_others(model, string_model):
    events = make_synthetic_sessions(n_sessions=200, n_items=N_ITEMS, seed=5)
    same_shape = GRU4RecNegSampling(hidden_size=8, num_layers=2, seed=3, **SMALL).fit(events)
    live = LiveSessions(model, k=4)
    live.push("s", 1)
    live.push("s", 2)
    old = live.store.get_many(["s"])[0]
    assert live.reload(same_shape) is True
    rec = live.push("s", 3)
    assert not rec.restarted
    # The carried state is the old model's after 1, 2, stepped by the new model on 3.
    net, vocab = same_shape.model_, same_shape.item_vocabulary_
    with torch.no_grad():
        h = torch.from_numpy(np.array(old.hidden))[None]
        out, _ = net.step(
            net.input_vectors(torch.as_tensor(vocab.index_of([3]))), [h[:, 0], h[:, 1]]
        )
        expected = net.score(out, net.item_output, net.item_bias)[0]
    np.testing.assert_allclose(rec.scores, np.sort(expected.numpy())[::-1][:4], rtol=1e-5)
    assert list(vocab.to_raw(live.store.get_many(["s"])[0].seen)) == [1, 2, 3]
    other_shape = GRU4RecNegSampling(hidden_size=4, seed=3, **SMALL).fit(events)
    assert live.reload(other_shape) is False
    rec = live.push("s", 5)
    assert rec.restarted
    _same(rec, *other_shape.recommend([5], k=4))
    assert not live.push("s", 6).restarted


def test_bad_arguments_name_the_parameter(model):
    live = LiveSessions(model)
    with pytest.raises(ValueError, match="k must be"):
        live.push("s", 1, k=0)
    with pytest.raises(ValueError, match="same length"):
        live.push_many(["a"], [1, 2])
    with pytest.raises(ValueError, match="session ids"):
        live.push(1.5, 1)
    with pytest.raises(ValueError, match="fitted"):
        LiveSessions(GRU4RecNegSampling())
    with pytest.raises(ValueError, match="max_sessions"):
        MemoryStore(max_sessions=0)


@given(
    layers=st.integers(1, 3),
    units=st.integers(1, 16),
    seen=st.lists(st.integers(0, 2**31 - 1), max_size=20),
    version=st.binary(min_size=8, max_size=8),
    data=st.data(),
)
def test_state_encoding_round_trips(layers, units, seen, version, data):
    hidden = np.asarray(
        data.draw(st.lists(st.floats(width=32), min_size=layers * units, max_size=layers * units)),
        dtype=np.float32,
    ).reshape(layers, units)
    state = SessionState(version, hidden, np.asarray(seen, dtype=np.int32))
    blob = encode(state)
    back = decode(blob)
    assert back.version == version
    np.testing.assert_array_equal(back.hidden, hidden)
    np.testing.assert_array_equal(back.seen, state.seen)
    assert decode(blob[:-1]) is None and decode(b"junk" + blob[4:]) is None


def test_int8_scoring_gives_exact_scores_and_keeps_the_filters(model):
    exact = LiveSessions(model, k=6, exclude_seen=True)
    fast = LiveSessions(model, k=6, exclude_seen=True, scoring="int8")
    for item in [1, 2, 3]:
        a = exact.push("s", item, filter_items=[7])
        b = fast.push("s", item, filter_items=[7])
    # 30 items: k + margin covers the catalogue, so the second pass sees every candidate.
    _same(b, a.items, a.scores)
    with pytest.raises(ValueError, match="scoring"):
        LiveSessions(model, scoring="fast")


def test_int8_first_pass_finds_the_exact_top_k_on_a_larger_catalogue():
    from gru4rec.inference import Int8Scorer, Scorer
    from gru4rec.model import GRU4RecNet

    net = GRU4RecNet(5000, hidden_size=32, constrained=True)
    net.reset_parameters(torch.Generator().manual_seed(0))
    states = torch.randn(40, 32, generator=torch.Generator().manual_seed(1))
    seen = (np.arange(40 * 3) % 5000, np.arange(0, 121, 3))
    blocked = np.zeros(5000, dtype=bool)
    blocked[::7] = True
    want_val, want_idx = Scorer(net, torch.device("cpu")).top_k(states, 20, seen, blocked)
    got_val, got_idx = Int8Scorer(net, margin=64).top_k(states, 20, seen, blocked)
    assert not np.isin(got_idx.numpy(), np.flatnonzero(blocked)).any()
    pairs = zip(got_idx.numpy(), want_idx.numpy(), strict=True)
    hits = np.mean([set(g) == set(w) for g, w in pairs])  # rows with the exact top-k
    assert hits >= 0.95
    same = got_idx == want_idx
    np.testing.assert_allclose(got_val[same].numpy(), want_val[same].numpy(), rtol=1e-5)


def test_a_state_of_a_model_not_loaded_here_keeps_its_hidden_state_not_its_seen_items(model):
    """Another worker reloaded first and wrote the state with its new model's version."""
    live = LiveSessions(model, k=4, exclude_seen=True)
    live.push("s", 1)
    mine = live.store.get_many(["s"])[0]
    live.store.put_many({"s": SessionState(b"elsewher", mine.hidden, mine.seen)})
    rec = live.push("s", 2)
    assert not rec.restarted
    state = live.store.get_many(["s"])[0]
    assert list(model.item_vocabulary_.to_raw(state.seen)) == [2]
    expected = LiveSessions(model, k=4)
    expected.push("s", 1)
    np.testing.assert_allclose(state.hidden, _hidden_after(expected, "s", 2), rtol=1e-5)


def _hidden_after(live, key, item):
    live.push(key, item)
    return live.store.get_many([key])[0].hidden


@settings(max_examples=300, deadline=None)
@given(
    bound=st.integers(1, 4),
    ops=st.lists(st.tuples(st.sampled_from(["put", "get", "delete"]), st.integers(0, 6))),
)
def test_memory_store_keeps_the_most_recently_used_sessions(bound, ops):
    """Against a plain model of an LRU bound: a list of keys, most recent last."""
    store = MemoryStore(ttl=None, max_sessions=bound)
    recent: list[str] = []
    for op, n in ops:
        key = f"k{n}"
        state = SessionState(b"v" * 8, np.full((1, 1), n, dtype=np.float32), np.zeros(0, np.int32))
        if op == "put":
            store.put_many({key: state})
            recent = [k for k in recent if k != key] + [key]
            recent = recent[-bound:]
        elif op == "get":
            got = store.get_many([key])[0]
            assert (got is not None) == (key in recent)
            if got is not None:
                assert got.hidden[0, 0] == n
                recent = [k for k in recent if k != key] + [key]
        else:
            assert store.delete(key) == (key in recent)
            recent = [k for k in recent if k != key]
        assert len(store) == len(recent)
