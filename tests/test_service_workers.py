"""The HTTP service run with several worker processes: real servers (``gru4rec serve`` and
uvicorn's own ``--workers``), a real Redis, a real HTTP client. ``/metrics`` gives the totals
of all workers whichever answers the scrape, or says plainly that it cannot."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest
from servers import ProcessServer, RedisServer, clients_of_distinct_workers

from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions

httpx = pytest.importorskip("httpx", reason="the HTTP tests need the [serve] extra")
pytest.importorskip("starlette", reason="the service needs the [serve] extra")
pytest.importorskip("uvicorn", reason="the service needs the [serve] extra")
pytest.importorskip("prometheus_client", reason="the service needs the [serve] extra")
pytest.importorskip("redis", reason="the redis client is in the [serve] extra")
from gru4rec.service import ServiceConfig  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers counted in /proc"),
]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    events = make_synthetic_sessions(n_sessions=100, n_items=30, seed=5)
    small = dict(hidden_size=8, batch_size=16, max_epochs=1, device="cpu", num_negatives=8)
    path = tmp_path_factory.mktemp("workers") / "model.trch"
    GRU4RecNegSampling(seed=0, **small).fit(events).save(path)
    return path


@pytest.fixture(scope="module")
def redis_url():
    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


_NO_DIRECTORY = {"PROMETHEUS_MULTIPROC_DIR": None, "prometheus_multiproc_dir": None}


def _count(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name + labels)} (\S+)$"
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert len(found) == 1, f"{name}{labels} not once in:\n{text}"
    return float(found[0])


def _events(text: str) -> float:
    return _count(text, "gru4rec_requests_total", '{endpoint="event",status="200"}')


def _send_and_scrape(url: str) -> list[str]:
    """3 events through one worker and 4 through another, then a scrape from each."""
    first, second = clients_of_distinct_workers(url)
    try:
        for i in range(3):
            assert first.post(f"/sessions/a{i}/events", json={"item": 1}).status_code == 200
        for i in range(4):
            assert second.post(f"/sessions/b{i}/events", json={"item": 2}).status_code == 200
        pids = {first.get("/ready").json()["worker"], second.get("/ready").json()["worker"]}
        assert len(pids) == 2, "a connection moved to another worker"
        return [first.get("/metrics").text, second.get("/metrics").text]
    finally:
        first.close()
        second.close()


def test_cli_workers_report_the_totals_of_all_workers(model_file, redis_url, tmp_path):
    args = [sys.executable, "-m", "gru4rec", "serve", str(model_file), "--redis", redis_url]
    env = {**_NO_DIRECTORY, "TMPDIR": str(tmp_path)}
    server = ProcessServer([*args, "--workers", "2"], env=env)
    server.start()
    try:
        (made,) = tmp_path.glob("gru4rec-metrics-*")  # the directory the workers share
        for text in _send_and_scrape(server.url):
            assert _events(text) == 7
            assert _count(text, "gru4rec_workers") == 2
            assert _count(text, "gru4rec_metrics_partial") == 0
        assert list(made.glob("counter_*.db"))
    finally:
        server.stop()
    assert "Traceback" not in server.output()
    assert not made.exists()  # removed when the service stopped


def _uvicorn(model_file, redis_url, env: dict[str, str]) -> ProcessServer:
    config = ServiceConfig(str(model_file), redis_url=redis_url, k=5, watch_seconds=0)
    args = [sys.executable, "-m", "uvicorn", "--factory", "gru4rec.service:create_app"]
    env = {"GRU4REC_SERVE_CONFIG": config.to_env(), **env}
    return ProcessServer([*args, "--workers", "2", "--log-level", "warning"], env=env)


def test_own_uvicorn_workers_with_a_shared_directory_report_the_totals(
    model_file, redis_url, tmp_path
):
    directory = tmp_path / "metrics"
    server = _uvicorn(model_file, redis_url, {"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    server.start()
    try:
        for text in _send_and_scrape(server.url):
            assert _events(text) == 7 and _count(text, "gru4rec_workers") == 2
        # A worker killed outright: its counts stay in the totals, its live gauge goes.
        killed = httpx.get(f"{server.url}/ready").json()["worker"]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # the kill takes effect at once, nearly
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            gone = not list(directory.glob(f"gauge_livesum_{killed}.db"))
            if gone or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert gone
        live = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("gauge_livesum_*.db")}
        # The survivor, and a worker uvicorn may have started in the killed one's place.
        assert killed not in live and _count(text, "gru4rec_workers") == len(live) >= 1
        assert _events(text) == 7
    finally:
        server.stop()
    # The workers' counts stay in the files; their live gauges went with them.
    assert list(directory.glob("counter_*.db"))
    assert not list(directory.glob("gauge_livesum_*.db"))


def test_own_uvicorn_workers_without_a_directory_say_the_counts_are_partial(model_file, redis_url):
    server = _uvicorn(model_file, redis_url, _NO_DIRECTORY)
    server.start()
    try:
        texts = _send_and_scrape(server.url)
        assert sorted(_events(text) for text in texts) == [3, 4]
        for text in texts:
            assert _count(text, "gru4rec_metrics_partial") == 1
            assert text.startswith("# WARNING: this worker is one of 2 processes")
            assert "PROMETHEUS_MULTIPROC_DIR" in text.splitlines()[0]
    finally:
        server.stop()
    assert server.output().count("not set: /metrics gives the counts of whichever") == 2
