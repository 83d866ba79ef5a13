"""Serving latency: live sessions in process and over HTTP, against replaying the session.

(1) In process, one torch thread: the latency of one pushed event (one GRU step and one
scoring pass, top-20) with the state kept in memory, for the RSC15 model (trained here for a
few epochs) and for 100,000- and 1,000,000-item catalogues (synthetic weights, 100 units);
the bare network step (no ids, no state) as the floor; ``recommend`` replaying each session
from its first event on the same events; and the events per second of the batch form
(``push_many``).

(2) Over HTTP: ``gru4rec serve`` in a subprocess (one worker, one torch thread) on 127.0.0.1,
state in memory and in a redis-server started here, driven by an open-loop load generator
(asyncio, keep-alive connections) at fixed event rates. Latency is measured from each
request's scheduled send time to its response (a late send counts), p50/p90/p99 per rate, and
the highest rate held with p99 under 10 ms. The load generator shares the machine's cores.

    python benchmarks/bench_serving.py                 # everything (about 3 minutes)
    python benchmarks/bench_serving.py --skip-http     # in process only
    python benchmarks/bench_serving.py --rates 500 1000 --seconds 5

Writes benchmarks/results/serving/results.json and, with matplotlib, a plot of latency
against rate to docs/benchmarks/serving_latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchlib import (
    DOCS_BENCH_DIR,
    RESULTS_DIR,
    RSC15_BEST,
    default_data_dir,
    load_average,
    machine_facts,
)

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling
from gru4rec.model import GRU4RecNet
from gru4rec.sessions import LiveSessions

K = 20


def synthetic_model(n_items: int, hidden: int = 100, seed: int = 0) -> GRU4RecCrossEntropy:
    """A 'fitted' estimator with random weights over ``n_items`` items (ids = indices)."""
    est = GRU4RecCrossEntropy(hidden_size=hidden, constrained_embedding=True, num_threads=1)
    net = GRU4RecNet(n_items, hidden_size=hidden, constrained=True)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        net.item_bias.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed + 1))
    est.model_, est.n_items_, est.item_vocabulary_ = net, n_items, None
    est.device_ = torch.device("cpu")
    return est


def rsc15_model(epochs: int) -> tuple[Any, np.ndarray] | None:
    """The RSC15 configuration trained on rsc15_100k's training events, and its item ids."""
    import pandas as pd

    path = default_data_dir() / "events.csv"
    if not path.exists():
        return None
    events = pd.read_csv(path)
    params = dict(RSC15_BEST, max_epochs=epochs, device="cpu", seed=0, num_threads=1)
    model = GRU4RecNegSampling(**params)
    model.fit(events)
    return model, np.asarray(model.item_vocabulary_.ids)


def event_stream(ids: np.ndarray, n_events: int, n_sessions: int, seed: int) -> list[tuple]:
    """``n_events`` events of ``n_sessions`` sessions interleaved, items drawn from ``ids``."""
    rng = np.random.default_rng(seed)
    sessions = rng.integers(0, n_sessions, n_events)
    items = ids[rng.integers(0, len(ids), n_events)]
    return [
        (int(s), i.item() if hasattr(i, "item") else i)
        for s, i in zip(sessions, items, strict=True)
    ]


def percentiles(ms: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(ms)
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)}


def in_process(name: str, model: Any, ids: np.ndarray, args) -> dict[str, Any]:
    torch.set_num_threads(1)
    live = LiveSessions(model, k=K)
    events = event_stream(ids, args.events + 200, 500, seed=1)
    push_ms = []
    for s, i in events:
        t = time.perf_counter()
        live.push(s, i)
        push_ms.append((time.perf_counter() - t) * 1e3)
    push_ms = push_ms[200:]  # warm-up
    # The int8 first pass (exact scores of the best k + 64), on the same events.
    live8 = LiveSessions(model, k=K, scoring="int8")
    int8_ms, got = [], []
    for s, i in events:  # timed alone: an exact pass between events would evict its table
        t = time.perf_counter()
        rec = live8.push(s, i)
        int8_ms.append((time.perf_counter() - t) * 1e3)
        got.append(set(rec.items.tolist()))
    int8_ms = int8_ms[200:]
    ref = LiveSessions(model, k=K)
    same = [got[e] == set(ref.push(s, i).items.tolist()) for e, (s, i) in enumerate(events)]
    # The floor: one GRU step and one scoring pass of the bare network.
    net = model.model_
    h = [torch.zeros(1, net.hidden_size) for _ in range(net.num_layers)]
    bare_ms = []
    with torch.no_grad():
        for n in range(args.events):
            idx = torch.tensor([n % net.n_items])
            t = time.perf_counter()
            out, h = net.step(net.input_vectors(idx), h)
            torch.topk(net.score(out, net.item_output, net.item_bias), K)
            bare_ms.append((time.perf_counter() - t) * 1e3)
    # recommend replaying each session from its first event, on the same events (fewer).
    sessions: dict[int, list] = {}
    replay_ms = []
    for s, i in events[: args.replay_events]:
        sessions.setdefault(s, []).append(i)
        t = time.perf_counter()
        model.recommend(sessions[s], k=K)
        replay_ms.append((time.perf_counter() - t) * 1e3)
    # The batch form: events of distinct sessions in one forward pass.
    batch: dict[str, float] = {}
    for scoring, server in (("", live), (" int8", live8)):
        for size in (64, 256):
            chunk = [(f"b{j}", events[j % len(events)][1]) for j in range(size)]
            keys, items = [c[0] for c in chunk], [c[1] for c in chunk]
            server.push_many(keys, items)
            reps, t = 0, time.perf_counter()
            while time.perf_counter() - t < args.batch_seconds:
                server.push_many(keys, items)
                reps += 1
            batch[f"{size}{scoring}"] = reps * size / (time.perf_counter() - t)
    row = {
        "model": name,
        "items": int(net.n_items),
        "units": int(net.hidden_size),
        "push_ms": percentiles(push_ms),
        "push_int8_ms": percentiles(int8_ms),
        "int8_same_top_k": float(np.mean(same)),
        "bare_step_ms": percentiles(bare_ms),
        "replay_ms": percentiles(replay_ms),
        "batch_events_per_s": batch,
        "events": len(push_ms),
    }
    print(json.dumps(row), flush=True)
    return row


# -- HTTP ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for this service."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return status


async def drive(port: int, rate: float, seconds: float, ids: np.ndarray, seed: int) -> dict:
    """Open loop: request ``n`` is due at ``start + n / rate``; its latency counts from then."""
    n_requests = int(rate * seconds)
    events = event_stream(ids, n_requests, max(100, int(rate * 5)), seed)
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(64):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pool.put_nowait(Connection(reader, writer))
    latencies = np.full(n_requests, np.nan)
    errors = 0

    async def one(n: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        s, item = events[n]
        body = json.dumps({"item": item, "k": K}).encode()
        try:
            status = await conn.post(f"/sessions/{seed}-{s}/events", body)
            errors += status != 200
        finally:
            pool.put_nowait(conn)
        latencies[n] = (time.perf_counter() - due) * 1e3

    start = time.perf_counter() + 0.05
    tasks = []
    for n in range(n_requests):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    return {
        "rate": rate,
        "achieved": n_requests / elapsed,
        "errors": errors,
        **percentiles(latencies[~np.isnan(latencies)]),
    }


def http(
    model_path: str, ids: np.ndarray, store: str, args, workers: int = 1
) -> list[dict[str, Any]]:
    redis = None
    cmd = [sys.executable, "-m", "gru4rec", "serve", model_path, "--threads", "1"]
    cmd += ["--workers", str(workers), "--scoring", args.scoring]
    if store.startswith("redis"):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        rport = free_port()
        redis = subprocess.Popen(
            [binary, "--port", str(rport), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_port(rport, redis)
        cmd += ["--redis", f"redis://127.0.0.1:{rport}/0"]
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    server = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    rows = []
    try:
        wait_port(port, server)
        time.sleep(2.0 if workers > 1 else 0.0)  # every worker up, not just the first
        asyncio.run(drive(port, 200, 2.0, ids, seed=999))  # warm-up (every worker)
        for seed, rate in enumerate(args.rates):
            before = [cpu_seconds(p) for p in (server, redis)]
            row = {"store": store, **asyncio.run(drive(port, rate, args.seconds, ids, seed))}
            n = rate * args.seconds
            spent = [cpu_seconds(p) - b for p, b in zip((server, redis), before, strict=True)]
            # CPU time per event: what the service costs, whatever else shares the cores.
            row["server_cpu_ms"] = spent[0] / n * 1e3
            row["redis_cpu_ms"] = spent[1] / n * 1e3 if redis is not None else None
            row["load_average"] = load_average()
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        server.terminate()
        server.wait(10)
        if redis is not None:
            redis.terminate()
            redis.wait(10)
    return rows


def cpu_seconds(process: subprocess.Popen | None) -> float:
    """User + system CPU seconds of a running process and its children so far (Linux; 0
    elsewhere): uvicorn's workers are children of the process started."""
    if process is None:
        return 0.0
    pids = [process.pid]
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        pids += [int(p) for p in children.split()]
    except OSError:
        pass
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def held(rows: list[dict[str, Any]], limit_ms: float = 10.0) -> float | None:
    """The highest rate whose p99 stayed under ``limit_ms`` (and at which the rate was held)."""
    ok = [r["rate"] for r in rows if r["p99"] < limit_ms and r["achieved"] > 0.95 * r["rate"]]
    return max(ok) if ok else None


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    stores = list(dict.fromkeys(r["store"] for r in rows))
    fig, axes = plt.subplots(1, len(stores), figsize=(5 * len(stores), 4), sharey=True)
    for ax, store in zip(np.atleast_1d(axes), stores, strict=True):
        mine = [r for r in rows if r["store"] == store]
        for q in ("p50", "p90", "p99"):
            ax.plot([r["rate"] for r in mine], [r[q] for r in mine], marker="o", label=q)
        ax.axhline(10, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"state in {store}")
        ax.set_xlabel("events per second")
        ax.set_yscale("log")
        ax.legend()
    np.atleast_1d(axes)[0].set_ylabel("end-to-end latency (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="pushed events per model")
    parser.add_argument("--replay-events", type=int, default=500, help="replayed events")
    parser.add_argument("--batch-seconds", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=3, help="RSC15 training epochs")
    parser.add_argument("--catalogues", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--rates", type=float, nargs="*", default=[250, 500, 1000, 1500, 2000])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per rate")
    parser.add_argument(
        "--redis-workers", type=int, default=2, help="also serve with this many workers on Redis"
    )
    parser.add_argument(
        "--scoring", choices=["exact", "int8"], default="exact", help="the service's scoring"
    )
    parser.add_argument("--name", default="serving", help="results folder name")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = RESULTS_DIR / args.name
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine_facts(1, "cpu"), "argv": sys.argv[1:]}
    rsc15 = rsc15_model(args.epochs)
    if not args.skip_in_process:
        rows = []
        if rsc15 is not None:
            rows.append(in_process("rsc15_100k", rsc15[0], rsc15[1], args))
        for n in args.catalogues:
            rows.append(in_process(f"synthetic {n:,}", synthetic_model(n), np.arange(n), args))
        result["in_process"] = rows
    if not args.skip_http:
        if rsc15 is None:  # a small fitted model instead of the RSC15 one
            from gru4rec.datasets import make_synthetic_sessions

            events = make_synthetic_sessions(3000, 3000, seed=0)
            rsc15 = GRU4RecNegSampling(max_epochs=1, seed=0, device="cpu").fit(events), None
            rsc15 = rsc15[0], np.asarray(rsc15[0].item_vocabulary_.ids)
        model, ids = rsc15
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "model.trch")
            model.save(path)
            rows = http(path, ids, "memory", args) + http(path, ids, "redis", args)
            if args.redis_workers > 1:
                name = f"redis, {args.redis_workers} workers"
                rows += http(path, ids, name, args, args.redis_workers)
        result["http"] = rows
        stores = list(dict.fromkeys(r["store"] for r in rows))
        result["held_p99_under_10ms"] = {
            s: held([r for r in rows if r["store"] == s]) for s in stores
        }
        if plot(rows, DOCS_BENCH_DIR / "serving_latency.png"):
            result["plot"] = "docs/benchmarks/serving_latency.png"
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
