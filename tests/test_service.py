"""The HTTP service: a real uvicorn server on 127.0.0.1 and a real HTTP client (httpx), with
the session states in memory or in a real redis-server that the test starts and stops."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from servers import RedisServer, UvicornServer, free_port

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.sessions import model_version
from gru4rec.state_store import RedisStore

httpx = pytest.importorskip("httpx", reason="the HTTP tests need the [serve] extra")
pytest.importorskip("starlette", reason="the service needs the [serve] extra")
pytest.importorskip("uvicorn", reason="the service needs the [serve] extra")
pytest.importorskip("prometheus_client", reason="the service needs the [serve] extra")
from gru4rec.service import ServiceConfig, create_app  # noqa: E402

SMALL = dict(batch_size=16, max_epochs=1, device="cpu", num_negatives=8)


@pytest.fixture(scope="module")
def events():
    return make_synthetic_sessions(n_sessions=200, n_items=30, seed=5)


@pytest.fixture(scope="module")
def model(events):
    return GRU4RecNegSampling(hidden_size=8, seed=0, **SMALL).fit(events)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("service") / "model.trch"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def service(model_file):
    server = UvicornServer(create_app(ServiceConfig(str(model_file), k=5, watch_seconds=0)))
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def test_events_one_at_a_time_give_recommend_on_the_whole_session(service, model):
    for item in [1, 2, 3]:
        r = service.post("/sessions/a/events", json={"item": item, "exclude_seen": True})
        assert r.status_code == 200
    body = r.json()
    ids, scores = model.recommend([1, 2, 3], k=5, exclude_seen=True)
    assert body["items"] == ids.tolist() and body["known"] and not body["restarted"]
    np.testing.assert_allclose(body["scores"], scores, rtol=1e-5)
    again = service.get("/sessions/a", params={"exclude_seen": "true"}).json()
    assert again["items"] == ids.tolist()
    # Filters, and an item id spelled as JSON text.
    r = service.post("/sessions/a/events", json={"item": "4", "items": [5, 6, 7], "k": 3})
    assert r.json()["known"] and set(r.json()["items"]) <= {5, 6, 7}
    assert service.delete("/sessions/a").json() == {"ended": True}
    assert service.delete("/sessions/a").json() == {"ended": False}


def test_unknown_item_keeps_the_state_and_says_so(service, model):
    first = service.post("/sessions/u/events", json={"item": 2}).json()
    r = service.post("/sessions/u/events", json={"item": "no-such-item"})
    assert r.status_code == 200 and r.json()["known"] is False
    assert r.json()["items"] == first["items"]


def test_stateless_recommend(service, model):
    r = service.post("/recommend", json={"session": [1, 2, 99999], "k": 4, "filter_items": [3]})
    ids, _ = model.recommend([1, 2], k=4, filter_items=[3])
    assert r.status_code == 200 and r.json()["items"] == ids.tolist()
    assert "skipped 1 of 3 items" in r.json()["warnings"][0]


@pytest.mark.parametrize(
    "path, payload, status, field",
    [
        ("/sessions/x/events", b"{not json", 400, None),
        ("/sessions/x/events", b"[1, 2]", 400, None),
        ("/sessions/x/events", b'{"k": 3}', 422, "item"),
        ("/sessions/x/events", b'{"item": 1, "k": 0}', 422, "k"),
        ("/sessions/x/events", b'{"item": 1, "k": 100000}', 422, "k"),
        ("/sessions/x/events", b'{"item": 1, "k": "5"}', 422, "k"),
        ("/sessions/x/events", b'{"item": 1, "exclude_seen": "yes"}', 422, "exclude_seen"),
        ("/sessions/x/events", b'{"item": 1, "filter_items": 3}', 422, "filter_items"),
        ("/recommend", b'{"k": 3}', 422, "session"),
        ("/recommend", b'{"session": 3}', 422, "session"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(service, path, payload, status, field):
    r = service.post(path, content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status
    body = r.json()
    assert body.get("field") == field
    assert (field or "JSON") in body["error"]


def test_health_ready_and_metrics(service):
    assert service.get("/health").json() == {"status": "ok"}
    assert service.get("/ready").json()["ready"] is True
    service.post("/sessions/m/events", json={"item": 1})
    text = service.get("/metrics").text
    assert 'gru4rec_requests_total{endpoint="event",status="200"}' in text
    assert 'gru4rec_request_seconds_bucket{endpoint="event",le="0.005"}' in text


def test_reload_carries_states_of_the_same_shape_restarts_others_and_survives_a_bad_file(
    events, model, tmp_path
):
    path = tmp_path / "model.trch"
    model.save(path)
    server = UvicornServer(create_app(ServiceConfig(str(path), k=4, watch_seconds=0.1)))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            client.post("/sessions/s/events", json={"item": 1})
            same = GRU4RecNegSampling(hidden_size=8, seed=7, **SMALL).fit(events)
            same.save(path)
            r = client.post("/reload").json()
            assert r["reloaded"] and r["states_carried"]
            assert client.post("/sessions/s/events", json={"item": 2}).json()["restarted"] is False
            # A file written in place (a nightly update) is picked up by the watcher.
            other = GRU4RecNegSampling(hidden_size=4, seed=7, **SMALL).fit(events)
            before = client.get("/ready").json()["reloads"]
            other.save(path)
            deadline = time.monotonic() + 10
            while client.get("/ready").json()["reloads"] == before and time.monotonic() < deadline:
                time.sleep(0.05)
            r = client.post("/sessions/s/events", json={"item": 3}).json()
            assert r["restarted"] is True
            assert r["items"] == other.recommend([3], k=4)[0].tolist()
            # A broken file: the reload fails and the last good model keeps serving.
            (tmp_path / "broken.trch").write_bytes(b"not a model")
            r = client.post("/reload", json={"path": str(tmp_path / "broken.trch")})
            assert r.status_code == 500 and r.json()["reloaded"] is False
            r = client.post("/sessions/s/events", json={"item": 5}).json()
            assert r["items"] == other.recommend([3, 5], k=4)[0].tolist()
    finally:
        server.stop()


@contextlib.contextmanager
def _service_on_redis(model_file) -> Iterator[tuple[RedisServer, UvicornServer]]:
    """A real redis-server and the service on it (k=5), both stopped afterwards."""
    redis_server = RedisServer()
    redis_server.start()
    config = ServiceConfig(str(model_file), redis_url=redis_server.url, k=5, watch_seconds=0)
    server = UvicornServer(create_app(config))
    server.start()
    try:
        yield redis_server, server
    finally:
        server.stop()
        redis_server.stop()


def test_redis_going_away_gives_503_and_the_service_recovers(model_file, model):
    with _service_on_redis(model_file) as (redis_server, server):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.post("/sessions/r/events", json={"item": 1}).status_code == 200
            r = client.post("/sessions/r/events", json={"item": 2}).json()
            assert r["items"] == model.recommend([1, 2], k=5)[0].tolist()
            redis_server.stop()
            r = client.post("/sessions/r/events", json={"item": 3})
            assert r.status_code == 503 and "Redis server" in r.json()["error"]
            assert client.get("/ready").status_code == 503
            assert client.get("/health").status_code == 200
            redis_server.start()
            assert client.get("/ready").status_code == 200
            r = client.post("/sessions/r/events", json={"item": 3})
            assert r.status_code == 200
            assert r.json()["items"] == model.recommend([3], k=5)[0].tolist()


@pytest.mark.slow
def test_cli_serve_answers_over_http(model_file, model):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    cmd = [sys.executable, "-m", "gru4rec", "serve", str(model_file), "--port", str(port)]
    process = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/sessions/c/events", json={"item": 1})
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "gru4rec serve did not start"
                time.sleep(0.2)
        assert r.json()["items"] == model.recommend([1], k=20)[0].tolist()
    finally:
        process.terminate()
        process.wait(10)


def test_cli_serve_refuses_workers_without_redis(model_file, capsys):
    from gru4rec.cli import main

    assert main(["serve", str(model_file), "--workers", "2"]) == 2
    assert "--workers above 1 needs --redis" in capsys.readouterr().err


def test_query_parameters_of_a_sessions_state_are_checked(service):
    r = service.get("/sessions/q", params={"k": "many"})
    assert r.status_code == 422 and r.json()["field"] == "k"
    r = service.get("/sessions/q", params={"exclude_seen": "perhaps"})
    assert r.status_code == 422 and r.json()["field"] == "exclude_seen"
    assert len(service.get("/sessions/q", params={"k": "3"}).json()["items"]) == 3


def test_fewer_candidates_than_k_give_fewer_items(service, model):
    everything = set(model.item_vocabulary_.ids.tolist())
    body = {"session": [1, 2], "k": len(everything), "exclude_seen": True}
    r = service.post("/recommend", json=body)
    assert r.status_code == 200 and set(r.json()["items"]) == everything - {1, 2}
    r = service.post("/sessions/few/events", json={"item": 1, "k": 5, "items": [5, 6]})
    assert r.status_code == 200 and sorted(r.json()["items"]) == [5, 6]
    assert len(r.json()["scores"]) == 2


def test_a_worker_writes_its_item_ids_to_redis_when_it_starts(model_file, model):
    with _service_on_redis(model_file) as (redis_server, _):
        ids, n = RedisStore(redis_server.url).get_items(model_version(model))
        assert ids.tolist() == model.item_vocabulary_.ids.tolist() and n == model.n_items_
