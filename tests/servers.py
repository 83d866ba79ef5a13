"""Real servers for the serving tests: a Redis server and a uvicorn server, each on a free
127.0.0.1 port, started and stopped by the test itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate(process: subprocess.Popen | None, seconds: float) -> None:
    """Stop ``process`` if it runs: SIGTERM, then SIGKILL after ``seconds``."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def redis_binary() -> str | None:
    return (
        os.environ.get("GRU4REC_REDIS_SERVER")
        or shutil.which("redis-server")
        or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    )


class RedisServer:
    """A throwaway redis-server (no persistence) that can be stopped and started again on
    the same port."""

    def __init__(self) -> None:
        binary = redis_binary()
        if binary is None:
            pytest.skip("no redis-server binary (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="gru4rec-redis-")
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self.dir]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")[-300:]
                pytest.skip(f"redis-server could not start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.skip("redis-server did not answer within 10 s")

    def stop(self) -> None:
        _terminate(self.process, 5)
        self.process = None


class UvicornServer:
    """An ASGI app served by uvicorn in a thread of this process, on 127.0.0.1."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ProcessServer:
    """A server command (``gru4rec serve``, ``uvicorn``) in a process of its own on a free
    127.0.0.1 port, started and stopped by the test; ``--port`` is appended to ``args``."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [*args, "--port", str(self.port)]
        env = {**os.environ, "PYTHONPATH": os.getcwd(), **(env or {})}
        self.env = {k: v for k, v in env.items() if v is not None}
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    def start(self, timeout: float = 120.0) -> None:
        import httpx

        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.args[:4]} did not start:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        _terminate(self.process, 20)


def clients_of_distinct_workers(url: str, n: int = 2, tries: int = 100) -> list:
    """``n`` kept-alive HTTP clients, each connected to another worker process of the server
    at ``url`` (told apart by ``/ready``'s ``worker``)."""
    import httpx

    pinned: dict[int, httpx.Client] = {}
    for _ in range(tries):
        client = httpx.Client(base_url=url, timeout=10)
        pid = client.get("/ready").json()["worker"]
        if pid in pinned or len(pinned) == n:
            client.close()
        else:
            pinned[pid] = client
        if len(pinned) == n:
            return list(pinned.values())
    for client in pinned.values():
        client.close()
    raise AssertionError(f"{tries} connections reached {len(pinned)} worker(s), not {n}")
