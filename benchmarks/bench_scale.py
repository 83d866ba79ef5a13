"""Scale: training cost per event and peak memory against the catalogue size.

Generates sessions with ``gru4rec.datasets.make_synthetic_sessions`` (Zipf popularity plus a few
likely successors per item, vectorised numpy) and builds the matrix with the index constructor
and ``shape=(sessions, items)``, so the catalogue holds exactly ``--items`` items, also those
without events. Every catalogue size runs in a fresh subprocess with one torch thread, on the
same number of events, and measures:

- training events/s of the last epoch (the training loop alone) and the whole ``fit`` time
  (which adds the O(catalogue) model initialisation);
- the peak RSS that ``fit`` adds to the process (data already loaded);
- ``predict`` with ``predict_topK=20``: sessions/s and the peak RSS it adds, for each
  ``--predict-sessions`` count (the high-water mark is reset between phases through
  ``/proc/self/clear_refs``, so the phases' peaks do not mix).

The claim under test: training cost per event does not grow with the catalogue (a step touches
only the rows it scores) and the working memory of fit and predict is bounded by
batch x (negatives + scoring chunk) plus the model itself, never users x items (the
``dense users x items`` column says what that would be).

    python benchmarks/bench_scale.py                      # 10k vs 1M items, 1M events
    python benchmarks/bench_scale.py --full               # 10k vs 1M items, 5M events
    python benchmarks/bench_scale.py --items 10000 100000 --events 200000 --epochs 2

Writes ``scale.json`` and ``table.md`` under ``benchmarks/results/scale/``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchlib

CONFIGS: dict[str, dict[str, Any]] = {
    # recpack's GRU4RecNegSampling defaults: bpr over the batch plus 50 shared negatives.
    "recpack": dict(
        loss_fn="bpr",
        hidden_size=100,
        num_components=250,
        batch_size=512,
        num_negatives=50,
        learning_rate=0.03,
    ),
    # The RSC15 best configuration: sampled softmax with 2048 popularity-sampled negatives
    # (the epochs come from --epochs).
    "rsc15": {k: v for k, v in benchlib.RSC15_BEST.items() if k != "max_epochs"},
}

RESULT_TAG = "RESULT "
MEAN_LENGTH = 5.0


# -- measuring (inside the worker) --------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), None where there is none."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:  # no /proc: the peak is the best there is
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def _peak_mb() -> float:
    # ru_maxrss is in kB on Linux; it follows the reset of clear_refs like VmHWM.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so that a phase's allocations show in
    its peak RSS instead of silently reusing what an earlier phase freed."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fixed_mmap_threshold(nbytes: int) -> None:
    """glibc: serve allocations of ``nbytes`` or more with their own mapping (returned to the
    OS on free) and stop the dynamic threshold from growing."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); False if not possible."""
    _trim_heap()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from gru4rec import GRU4RecNegSampling, InteractionMatrix
    from gru4rec.datasets import make_synthetic_sessions

    torch.set_num_threads(args.threads)
    n_items, n_events = args.items[0], args.events
    n_sessions = max(1, round(n_events / MEAN_LENGTH))

    t0 = time.perf_counter()
    df = make_synthetic_sessions(
        n_sessions=n_sessions, n_items=n_items, mean_length=MEAN_LENGTH, seed=args.seed
    )
    X = InteractionMatrix(df, "item_id", "session_id", "timestamp", shape=(n_sessions, n_items))
    X.session_arrays()  # the cached view fit reads: part of the data, not of fit
    n_events = X.num_interactions
    del df
    gen_s = time.perf_counter() - t0

    params = {**CONFIGS[args.config], "max_epochs": args.epochs, "seed": 0, "device": args.device}
    est = GRU4RecNegSampling(**params)
    can_reset = _reset_peak()
    base = _rss_mb()
    t0 = time.perf_counter()
    est.fit(X)
    fit_s = time.perf_counter() - t0
    fit_peak = _peak_mb()
    model_mb = sum(t.numel() * t.element_size() for t in est.model_.state_dict().values()) / 2**20
    last = est.history_[-1]

    # From here on, blocks of 1 MiB and more are mapped and unmapped one by one, so the
    # predict peaks measure live memory, not glibc's reuse of blocks freed by fit.
    _fixed_mmap_threshold(1 << 20)
    predict = []
    for n_pred in args.predict_sessions:
        Xp = X.users_in(np.arange(min(n_pred, n_sessions)))
        Xp.session_arrays()
        est.set_params(predict_topK=args.topk)
        reset = _reset_peak()
        p_base = _rss_mb()
        t0 = time.perf_counter()
        pred = est.predict(Xp)
        p_s = time.perf_counter() - t0
        p_peak = _peak_mb()
        assert pred.nnz == Xp.num_active_users * min(args.topk, n_items)
        predict.append(
            {
                "sessions": Xp.num_active_users,
                "seconds": p_s,
                "sessions_per_second": Xp.num_active_users / p_s,
                "peak_extra_mb": (p_peak - p_base) if reset else None,
            }
        )
        del pred, Xp

    return {
        "config": args.config,
        "items": n_items,
        "events": n_events,
        "sessions": n_sessions,
        "training_rows": int(n_events - n_sessions),
        "epochs": args.epochs,
        "generate_s": gen_s,
        "train_events_per_second": last["events_per_second"],
        "train_epoch_s": last["seconds"],
        "fit_s": fit_s,
        "train_loss": last["train_loss"],
        "model_mb": model_mb,
        "rss_before_fit_mb": base,
        "fit_peak_extra_mb": (fit_peak - base) if can_reset else None,
        "fit_peak_mb": fit_peak,
        "dense_users_x_items_gb": n_sessions * n_items * 4 / 2**30,
        "predict": predict,
    }


# -- orchestration ------------------------------------------------------------------------------


def run_one(args: argparse.Namespace, n_items: int) -> dict[str, Any]:
    """One catalogue size in a fresh interpreter, so peaks never mix."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--items",
        str(n_items),
        "--events",
        str(args.events),
        "--epochs",
        str(args.epochs),
        "--config",
        args.config,
        "--threads",
        str(args.threads),
        "--topk",
        str(args.topk),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--predict-sessions",
        *map(str, args.predict_sessions),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(benchlib.REPO_ROOT), *sys.path])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"worker for {n_items} items failed with status {proc.returncode}")
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise SystemExit(f"worker for {n_items} items printed no result")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{max(0.0, value):,.0f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| items | events | model MB | train events/s | µs/event | fit s (epoch s) "
        "| fit peak +MB | predict sessions | predict sessions/s | predict peak +MB "
        "| dense users×items GB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        first = True
        for p in r["predict"]:
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"{r['items']:,}" if first else "",
                        f"{r['events']:,}" if first else "",
                        _mb(r["model_mb"]) if first else "",
                        f"{r['train_events_per_second']:,.0f}" if first else "",
                        f"{1e6 / r['train_events_per_second']:.1f}" if first else "",
                        f"{r['fit_s']:.1f} ({r['train_epoch_s']:.1f})" if first else "",
                        _mb(r["fit_peak_extra_mb"]) if first else "",
                        f"{p['sessions']:,}",
                        f"{p['sessions_per_second']:,.0f}",
                        _mb(p["peak_extra_mb"]),
                        f"{r['dense_users_x_items_gb']:,.1f}" if first else "",
                    ]
                )
                + " |"
            )
            first = False
    return "\n".join(lines)


def _git_state() -> dict[str, Any]:
    """The commit measured, and whether the package had uncommitted changes."""

    def git(*cmd: str) -> str:
        try:
            out = subprocess.run(
                ["git", *cmd], cwd=benchlib.REPO_ROOT, capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return ""
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--short", "gru4rec"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--items", type=int, nargs="+", default=[10_000, 1_000_000], help="catalogue sizes"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events per catalogue")
    parser.add_argument("--full", action="store_true", help="5M events (10k and 1M items)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs; the last one is timed")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="recpack")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--topk", type=int, default=20, help="predict_topK (default 20)")
    parser.add_argument(
        "--predict-sessions",
        type=int,
        nargs="+",
        default=[500, 2000, 8000],
        help="sessions to predict (one measurement each)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--name", default="scale", help="results folder name")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.full:
        args.events = 5_000_000

    if args.worker:
        print(RESULT_TAG + json.dumps(worker(args)), flush=True)
        return 0

    rows = []
    start = time.perf_counter()
    for n_items in args.items:
        print(f"{n_items:,} items, {args.events:,} events ...", file=sys.stderr, flush=True)
        row = run_one(args, n_items)
        rows.append(row)
        print(
            f"  {row['train_events_per_second']:,.0f} events/s, fit {row['fit_s']:.1f} s, "
            f"fit peak +{_mb(row['fit_peak_extra_mb'])} MB",
            file=sys.stderr,
            flush=True,
        )
    table = markdown(rows)
    print(table)
    out_dir = benchlib.RESULTS_DIR / args.name
    payload = {
        "config": {"name": args.config, **CONFIGS[args.config]},
        "rows": rows,
        "total_seconds": time.perf_counter() - start,
        "machine": benchlib.machine_facts(args.threads, "cpu"),
        "git": _git_state(),
    }
    benchlib.write_json(out_dir / "scale.json", payload)
    (out_dir / "table.md").write_text(table + "\n")
    print(f"wrote {out_dir / 'scale.json'} and table.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
