"""The HTTP service never fails on its input: hypothesis-made requests (JSON of any shape,
fields of any type, bytes that are no JSON) against a real uvicorn server answer 2xx, or 4xx
with an error that names the field at fault, never 5xx; with its Redis server away, 503."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from servers import RedisServer, UvicornServer

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions

httpx = pytest.importorskip("httpx", reason="the HTTP tests need the [serve] extra")
pytest.importorskip("starlette", reason="the service needs the [serve] extra")
pytest.importorskip("uvicorn", reason="the service needs the [serve] extra")
pytest.importorskip("prometheus_client", reason="the service needs the [serve] extra")
from gru4rec.service import ServiceConfig, create_app  # noqa: E402

FIELDS = ["item", "k", "exclude_seen", "items", "filter_items", "session", "path"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-3, max_value=40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["1", "2", "-1", "true", "1e3", "NaN"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
valid = st.fixed_dictionaries(
    {"item": st.integers(-1, 40) | st.text(max_size=3), "session": st.lists(st.integers(0, 40))},
    optional={"k": st.integers(1, 50), "exclude_seen": st.booleans()},
)
bodies = valid | st.fixed_dictionaries({}, optional={name: values for name in FIELDS}) | values
# Any text but '/' (one path segment) and the dot segments (which clients resolve away),
# percent-encoded in the path (the service sees it decoded).
session_ids = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/"),
        min_size=1,
        max_size=12,
    )
    .filter(lambda s: s not in (".", ".."))
    .map(lambda s: quote(s, safe=""))
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    events = make_synthetic_sessions(n_sessions=100, n_items=30, seed=5)
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, device="cpu", num_negatives=8)
    path = tmp_path_factory.mktemp("fuzz") / "model.trch"
    GRU4RecNegSampling(seed=0, **small).fit(events).save(path)
    return str(path)


@pytest.fixture(scope="module")
def client(model_path):
    server = UvicornServer(create_app(ServiceConfig(model_path, k=5, watch_seconds=0)))
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def _check(response, sent: object = None) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert body["error"]
        if "field" in body:  # the field named is one the request had, or must have had
            assert body["field"] in body["error"]
            assert body["field"] in FIELDS
            if isinstance(sent, dict) and response.status_code == 422:
                assert body["field"] in sent or body["field"] in ("item", "session")


@SETTINGS
@given(session=session_ids, body=bodies)
def test_events_of_any_shape_get_an_answer_not_a_failure(client, session, body):
    r = client.post(f"/sessions/{session}/events", content=json.dumps(body))
    _check(r, body)
    if r.status_code == 200:
        answer = r.json()
        assert len(answer["items"]) == len(answer["scores"]) and isinstance(answer["known"], bool)
    elif not isinstance(body, dict):
        assert r.status_code == 400


@SETTINGS
@given(body=bodies)
def test_stateless_recommend_of_any_shape_gets_an_answer(client, body):
    _check(client.post("/recommend", content=json.dumps(body)), body)


@SETTINGS
@given(raw=st.binary(max_size=40))
def test_bytes_that_are_no_json_get_a_400(client, raw):
    try:
        json.loads(raw)
    except ValueError:
        r = client.post("/sessions/b/events", content=raw)
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        assert client.post("/recommend", content=raw).status_code == 400


@SETTINGS
@given(
    session=session_ids,
    query=st.dictionaries(st.sampled_from(["k", "exclude_seen", "x"]), st.text(max_size=6)),
)
def test_query_parameters_of_any_value_get_an_answer(client, session, query):
    _check(client.get(f"/sessions/{session}", params=query))
    _check(client.delete(f"/sessions/{session}"))


def test_paths_and_methods_that_are_no_endpoint_get_a_json_404_or_405(client):
    r = client.post("/sessions/a%2Fb/events", json={"item": 1})
    assert r.status_code == 404 and "without '/'" in r.json()["error"]
    r = client.put("/sessions/a", json={"item": 1})
    assert r.status_code == 405 and "no endpoint PUT /sessions/a" in r.json()["error"]
    assert "GET" in r.headers["allow"]
    assert client.get("/nowhere").json() == {"error": "no endpoint GET /nowhere"}


@pytest.fixture(scope="module")
def client_without_redis(model_path):
    pytest.importorskip("redis", reason="the redis client is in the [serve] extra")
    redis_server = RedisServer()
    redis_server.start()
    config = ServiceConfig(model_path, redis_url=redis_server.url, k=5, watch_seconds=0)
    server = UvicornServer(create_app(config))
    server.start()
    redis_server.stop()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=session_ids, body=bodies)
def test_with_redis_away_events_get_a_503_or_a_4xx(client_without_redis, session, body):
    r = client_without_redis.post(f"/sessions/{session}/events", content=json.dumps(body))
    if r.status_code == 503:
        assert "Redis server" in r.json()["error"]
        event("503")
    else:
        assert 400 <= r.status_code < 500
        _check(r, body)
