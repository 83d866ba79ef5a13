"""The Redis state store against a real redis-server that the test starts and stops."""

from __future__ import annotations

import numpy as np
import pytest
from servers import RedisServer

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.sessions import LiveSessions
from gru4rec.state_store import SessionState, StoreUnavailable

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
