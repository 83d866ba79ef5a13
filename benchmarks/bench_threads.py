"""Torch CPU threads: 1 against all cores, on an idle machine and on a busy one.

The estimators default to ``num_threads=1``. This script measures why, on the machine it runs
on: training epochs with small and large mini-batches, and recommendations in one batch and
one session at a time, each with 1 thread and with ``os.cpu_count()`` threads, first as the
machine is, then with one busy-loop process per core running beside it (started and stopped
by the script). Medians over ``--repeats`` runs (fewer for a setting that takes over
``--budget`` seconds); the data is generated (or ``--data``, an
events CSV), so the script runs anywhere.

    python benchmarks/bench_threads.py     # minutes; much longer when the machine is busy
    python benchmarks/bench_threads.py --repeats 5 --threads 1 2 4

Writes ``benchmarks/results/threads/threads.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import benchlib

# Spins until stopped, or until its parent is gone (so a killed benchmark leaves none behind).
BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"


class Load:
    """``n`` busy-loop processes beside the benchmark while the ``with`` block runs."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Load:
        for _ in range(self.n):
            self.procs.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP]))
        atexit.register(self.stop)  # never leave them behind, even on Ctrl-C
        time.sleep(1.0)  # let the scheduler see them
        return self

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def workloads(events, quick: bool) -> dict[str, Callable[[int], float]]:
    """Name -> function(num_threads) returning the seconds of one run."""
    from gru4rec import GRU4RecNegSampling, InteractionMatrix

    X = InteractionMatrix.from_events(events)
    sessions = X.session_arrays()
    raw = X.item_vocabulary.to_raw(sessions.items)
    import numpy as np

    per_session = np.split(raw, sessions.offsets[1:-1])[: 100 if quick else 500]
    fitted = GRU4RecNegSampling(max_epochs=1, seed=0).fit(X)
    fitted.recommend([1], k=20)  # warm-up

    def fit(params: dict[str, Any]) -> Callable[[int], float]:
        def run(threads: int) -> float:
            est = GRU4RecNegSampling(**{**params, "max_epochs": 1, "seed": 0})
            est.set_params(num_threads=threads).fit(X)
            return est.history_[0]["seconds"]

        return run

    def recommend_batch(threads: int) -> float:
        fitted.set_params(num_threads=threads)
        start = time.perf_counter()
        fitted.recommend([list(s) for s in per_session], k=20)
        return time.perf_counter() - start

    def recommend_one_by_one(threads: int) -> float:
        fitted.set_params(num_threads=threads)
        start = time.perf_counter()
        for s in per_session[:50]:
            fitted.recommend(list(s), k=20)
        return time.perf_counter() - start

    return {
        "fit 1 epoch, RSC15 best (batch 32, 2048 negatives)": fit(benchlib.RSC15_BEST),
        "fit 1 epoch, recpack defaults (batch 512, 50 negatives)": fit({}),
        f"recommend {len(per_session)} sessions in one call": recommend_batch,
        "recommend 50 sessions one call each": recommend_one_by_one,
    }


def measure(
    jobs: dict[str, Callable[[int], float]], threads: list[int], repeats: int, budget: float
) -> dict[str, dict[int, float]]:
    """Median seconds per job and thread count; fewer runs once one setting took ``budget`` s."""
    out: dict[str, dict[int, float]] = {}
    for name, job in jobs.items():
        out[name] = {}
        for n in threads:
            start = time.perf_counter()
            times = []
            while len(times) < repeats and (not times or time.perf_counter() - start < budget):
                times.append(job(n))
            out[name][n] = statistics.median(times)
            print(
                f"  {name}, {n} thread(s): {out[name][n]:.3f} s (median of {len(times)})",
                file=sys.stderr,
            )
    return out


def table(results: dict[str, dict[str, dict[int, float]]], threads: list[int]) -> str:
    head = ["workload", *(f"{c}, {n} thr. (s)" for c in results for n in threads)]
    ratios = [f"{c}: {n} thr. / 1 thr." for c in results for n in threads if n != 1]
    lines = ["| " + " | ".join(head + ratios) + " |", "|" + "---|" * (len(head) + len(ratios))]
    first = next(iter(results.values()))
    for name in first:
        cells = [name]
        cells += [f"{results[c][name][n]:.3f}" for c in results for n in threads]
        cells += [
            f"{results[c][name][n] / results[c][name][1]:.2f}x"
            for c in results
            for n in threads
            if n != 1
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, cores}))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", help="an events CSV (session_id,item_id,timestamp)")
    parser.add_argument("--load", type=int, default=cores, help="busy processes when loaded")
    parser.add_argument("--quick", action="store_true", help="smaller data (a smoke test)")
    parser.add_argument(
        "--budget", type=float, default=30.0, help="seconds after which a setting stops repeating"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the busy loops
    if 1 not in args.threads:
        args.threads = [1, *args.threads]

    from gru4rec.datasets import make_synthetic_sessions, read_events

    if args.data:
        events, source = read_events(args.data), args.data
    else:
        n = 300 if args.quick else 1000
        events = make_synthetic_sessions(n_sessions=n, n_items=2000, seed=0)
        source = f"generated: {n} sessions, 2000 items"
    print(f"data: {source} ({len(events)} events)", file=sys.stderr)
    jobs = workloads(events, args.quick)

    results: dict[str, dict[str, dict[int, float]]] = {}
    load_before = benchlib.load_average()
    print(f"as the machine is (load average {load_before}):", file=sys.stderr)
    results["as is"] = measure(jobs, args.threads, args.repeats, args.budget)
    print(f"with {args.load} busy-loop processes:", file=sys.stderr)
    with Load(args.load):
        results["loaded"] = measure(jobs, args.threads, args.repeats, args.budget)
        load_during = benchlib.load_average()

    text = table(results, args.threads)
    facts = benchlib.machine_facts(threads=max(args.threads), device="cpu")
    facts.update(load_average_idle_run=load_before, load_average_loaded_run=load_during)
    print(text)
    print(
        f"\nData: {source}. Medians of up to {args.repeats} runs. 'as is': the machine "
        f"as it was (1-minute load average {load_before} before the run); 'loaded': with "
        f"{args.load} busy-loop processes beside it. Machine: {facts['cpu']}, {facts['cores']} "
        f"cores, torch {facts['torch']}. Command: `{facts['command']}`"
    )
    benchlib.write_json(
        benchlib.RESULTS_DIR / "threads" / "threads.json",
        {"facts": facts, "source": source, "results": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
