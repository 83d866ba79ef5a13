"""The Redis state store against a real redis-server that the test starts and stops."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from servers import RedisServer

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.sessions import LiveSessions
from gru4rec.state_store import (
    MemoryStore,
    SessionState,
    StoreUnavailable,
    decode_items,
    encode_items,
)

redis = pytest.importorskip("redis", reason="the redis client is in the [serve] extra")
from gru4rec.state_store import RedisStore  # noqa: E402


@pytest.fixture(scope="module")
def server():
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model() -> GRU4RecNegSampling:
    events = make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=0, device="cpu")
    return GRU4RecNegSampling(num_negatives=8, **small).fit(events)


def test_states_round_trip_with_a_ttl(server):
    store = RedisStore(server.url, ttl=30, prefix="t1:")
    state = SessionState(
        b"12345678", np.arange(6, dtype=np.float32).reshape(2, 3), np.array([4, 2], dtype=np.int32)
    )
    store.put_many({"a": state})
    back, missing = store.get_many(["a", "b"])
    assert missing is None and back.version == b"12345678"
    np.testing.assert_array_equal(back.hidden, state.hidden)
    np.testing.assert_array_equal(back.seen, state.seen)
    client = redis.Redis.from_url(server.url)
    assert 0 < client.pttl("t1:a") <= 30_000
    assert store.delete("a") and not store.delete("a")


def test_two_workers_share_sessions_through_redis(server, model):
    """Two LiveSessions (as two worker processes would be) on one Redis: a session's events
    may reach either, and the top-k is recommend's on the whole session."""
    a = LiveSessions(model, k=5, store=RedisStore(server.url, prefix="t2:"))
    b = LiveSessions(model, k=5, store=RedisStore(server.url, prefix="t2:"))
    a.push("s", 1)
    b.push("s", 2)
    rec = a.push("s", 3, exclude_seen=True)
    ids, scores = model.recommend([1, 2, 3], k=5, exclude_seen=True)
    np.testing.assert_array_equal(rec.items, ids)
    np.testing.assert_allclose(rec.scores, scores, rtol=1e-5)
    assert len(a) == 1 and b.end("s") and len(a) == 0


def test_a_server_gone_gives_store_unavailable_and_recovery_after_restart(model):
    server = RedisServer()
    server.start()
    try:
        live = LiveSessions(model, k=5, store=RedisStore(server.url, prefix="t3:", timeout=0.2))
        live.push("s", 1)
        server.stop()
        assert live.store.ping() is False
        with pytest.raises(StoreUnavailable, match=r"Redis server at redis://127\.0\.0\.1"):
            live.push("s", 2)
        server.start()  # a fresh server: the state is gone, the session starts over
        assert live.store.ping() is True
        rec = live.push("s", 2)
        np.testing.assert_array_equal(rec.items, model.recommend([2], k=5)[0])
    finally:
        server.stop()


def test_item_ids_of_a_model_version_round_trip():
    mixed = np.empty(3, dtype=object)
    mixed[:] = [7, "7", 2.5]
    for ids in [np.array([5, -3, 2**40]), np.array(["a", "b"], dtype=object), mixed, None]:
        back, n = decode_items(encode_items(ids, 4 if ids is None else len(ids)))
        if ids is None:
            assert back is None and n == 4
        else:
            assert back.dtype == ids.dtype and back.tolist() == ids.tolist()
            assert [type(v) for v in back.tolist()] == [type(v) for v in ids.tolist()]
    assert decode_items(b"G4I1 not compressed") is None and decode_items(b"") is None


@pytest.fixture(scope="module")
def newer(model) -> GRU4RecNegSampling:
    """A model of the same shape whose item indices all differ from ``model``'s."""
    events = make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)
    # Two new items at the start move every item's index (sorted or in order of appearance).
    first = pd.DataFrame({"session_id": -1, "item_id": [-2, -1], "timestamp": [0, 1]})
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, seed=1, device="cpu")
    newer = GRU4RecNegSampling(num_negatives=8, **small).fit(pd.concat([first, events]))
    assert newer.item_vocabulary_.index_of([1])[0] != model.item_vocabulary_.index_of([1])[0]
    return newer


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_seen_items_survive_a_hand_over_between_model_versions(server, model, newer, kind):
    """One worker reloads a model whose item indices differ, the other has not yet, and a new
    worker starts on the new model: whichever serves a session's next event still leaves out
    the items it saw before (through the item ids each version keeps in the store)."""
    n = len(newer.item_vocabulary_)
    memory = MemoryStore()

    def worker(fitted):
        store = RedisStore(server.url, prefix="t4:") if kind == "redis" else memory
        return LiveSessions(fitted, store=store)

    ahead, behind = worker(model), worker(model)
    assert ahead.reload(newer)
    ahead.push("s", 1)
    ahead.push("s", 2)
    # k: all items but the seen ones, which must be the ones left out.
    rec = behind.push("s", 3, k=n - 5, exclude_seen=True)  # a state of a model it has not loaded
    assert not rec.restarted and np.isfinite(rec.scores).all()
    assert set(rec.items) == set(model.item_vocabulary_.ids) - {1, 2, 3}
    fresh = worker(newer)  # never loaded the old model, reads what `behind` wrote
    rec = fresh.push("s", 4, k=n - 4, exclude_seen=True)
    assert np.isfinite(rec.scores).all() and set(rec.items) == set(range(-2, 30)) - {1, 2, 3, 4}


def test_seen_items_go_where_the_other_versions_item_ids_are_gone(server, model, newer):
    """The state stays; only its seen items, which no longer map to items, are dropped."""
    n = len(newer.item_vocabulary_)
    fresh = LiveSessions(newer, store=RedisStore(server.url, prefix="t5:"))
    fresh.push("t", 1)
    redis.Redis.from_url(server.url).delete(b"t5:\xffitems:" + fresh.version.hex().encode())
    rec = LiveSessions(model, store=RedisStore(server.url, prefix="t5:")).push(
        "t", 2, k=n - 2, exclude_seen=True
    )
    assert 1 in rec.items[np.isfinite(rec.scores)] and not rec.restarted
    assert len(fresh.store) == 1  # the store's item ids are no session


def test_item_ids_are_kept_twice_the_ttl_renewed_and_written_again_when_lost(server):
    store = RedisStore(server.url, ttl=2, prefix="t6:")
    client = redis.Redis.from_url(server.url)
    key = b"t6:\xffitems:" + b"v1v1v1v1".hex().encode()
    state = SessionState(b"v1v1v1v1", np.zeros((1, 2), dtype=np.float32), np.zeros(0, np.int32))
    store.put_items(b"v1v1v1v1", np.array([10, 20]), 2)
    assert client.get(key) is None  # written with the first state, not before
    store.put_many({"a": state})
    assert 3000 < client.pttl(key) <= 4000
    assert store.get_items(b"v1v1v1v1")[0].tolist() == [10, 20]
    client.delete(key)  # evicted, or a server restarted empty
    store.put_many({"a": state})  # before ttl / 2: not looked at
    assert client.get(key) is None
    time.sleep(1.05)
    store.put_many({"a": state})
    assert 3000 < client.pttl(key) <= 4000 and store.get_items(b"v1v1v1v1")[1] == 2
    assert len(store) == 1
