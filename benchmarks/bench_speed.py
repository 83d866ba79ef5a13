"""Training throughput (events per second) against batch size and against catalogue size.

Trains on generated sessions (gru4rec.datasets.make_synthetic_sessions), so it needs no data set.
Two configurations: the RSC15 best one (cross-entropy over the mini-batch plus 2048 shared
negatives) and recpack's defaults (bpr, 50 negatives). Each point trains 2 epochs and keeps the
second epoch's events/s (the first pays one-off warm-up costs). Writes speed.json,
throughput_batch.png and throughput_catalogue.png under benchmarks/results/<name>/.

    python benchmarks/bench_speed.py [--threads 1] [--device cpu] [--sessions 5000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import benchlib

BATCH_SIZES = [32, 64, 128, 256, 512, 1024, 2048]
CATALOGUES = [1_000, 10_000, 100_000, 300_000]
QUICK_BATCH_SIZES = [32, 256, 2048]
QUICK_CATALOGUES = [1_000, 100_000]

CONFIGS = {
    "RSC15 best (xe, 2048 negatives)": {
        k: v for k, v in benchlib.RSC15_BEST.items() if k != "max_epochs"
    },
    "recpack defaults (bpr, 50 negatives)": {},
}


def throughput(events, params: dict[str, Any], device: str, n_items: int | None = None) -> float:
    """Events per second of the second of two training epochs.

    With ``n_items`` the catalogue holds items ``0 .. n_items - 1``, also those without events.
    """
    import numpy as np

    from gru4rec import GRU4RecNegSampling, InteractionMatrix, Vocabulary

    vocab = None if n_items is None else Vocabulary(np.arange(n_items))
    X = InteractionMatrix.from_events(events, item_vocabulary=vocab)
    est = GRU4RecNegSampling(**{**params, "max_epochs": 2, "seed": 0, "device": device})
    est.fit(X)
    return float(est.history_[-1]["events_per_second"])


def sweep(
    sessions: int, batch_sizes: list[int], catalogues: list[int], device: str
) -> dict[str, Any]:
    from gru4rec.datasets import make_synthetic_sessions

    results: dict[str, Any] = {"batch": {}, "catalogue": {}}
    base = make_synthetic_sessions(n_sessions=sessions, n_items=10_000, seed=0)
    results["events"] = len(base)
    for name, params in CONFIGS.items():
        results["batch"][name] = []
        for b in batch_sizes:
            eps = throughput(base, {**params, "batch_size": b}, device)
            results["batch"][name].append([b, eps])
            print(f"  {name}: batch {b}: {eps:,.0f} events/s", file=sys.stderr)
        results["catalogue"][name] = []
        for n in catalogues:
            events = make_synthetic_sessions(n_sessions=sessions, n_items=n, seed=0)
            eps = throughput(events, params, device, n_items=n)
            results["catalogue"][name].append([n, eps])
            print(f"  {name}: {n} items: {eps:,.0f} events/s", file=sys.stderr)
    return results


def plot(results: dict[str, Any], out_dir: Path, note: str) -> list[Path]:
    if not benchlib.have_matplotlib():
        print("no matplotlib: plots skipped (pip install matplotlib)", file=sys.stderr)
        return []
    plt = benchlib.pyplot()
    written = []
    for kind, xlabel, fname in (
        ("batch", "batch size (sessions in parallel)", "throughput_batch.png"),
        ("catalogue", "items in the catalogue", "throughput_catalogue.png"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for name, points in results[kind].items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log", base=2 if kind == "batch" else 10)
        if kind == "batch":
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training events / second")
        default = "batch 32 / 512" if kind == "catalogue" else "10,000 items"
        ax.set_title(f"Training throughput vs {kind} size ({default}; {note})", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def run(
    out_dir: Path,
    threads: int = 1,
    device: str = "cpu",
    sessions: int = 5000,
    quick: bool = False,
) -> dict[str, Any]:
    """Run both sweeps, write speed.json and the two PNGs into ``out_dir``."""
    import torch

    torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = sweep(
        sessions,
        QUICK_BATCH_SIZES if quick else BATCH_SIZES,
        QUICK_CATALOGUES if quick else CATALOGUES,
        device,
    )
    results["machine"] = benchlib.machine_facts(threads, device)
    benchlib.write_json(out_dir / "speed.json", results)
    note = f"{threads} thread(s), {device}"
    for path in plot(results, out_dir, note):
        print(f"wrote {path}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--sessions", type=int, default=5000, help="generated sessions per run")
    parser.add_argument("--quick", action="store_true", help="fewer points")
    parser.add_argument("--name", default="synthetic", help="results folder name")
    args = parser.parse_args(argv)
    run(benchlib.RESULTS_DIR / args.name, args.threads, args.device, args.sessions, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
