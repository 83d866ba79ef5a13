"""Time InteractionMatrix.session_arrays() on 1,000,000 synthetic events.

Events have random users, items and timestamps in random row order, so the sort is not skipped by
the already-sorted fast path. Each run builds a fresh matrix (the result is cached per matrix) and
times only session_arrays(); the median over the runs is printed.

    python benchmarks/bench_session_arrays.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from gru4rec.matrix import InteractionMatrix
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gru4rec.matrix import InteractionMatrix


def make_frame(n_events: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_users = max(1, n_events // 5)
    return pd.DataFrame(
        {
            "uid": rng.integers(0, n_users, n_events),
            "iid": rng.integers(0, 50_000, n_events),
            "ts": rng.integers(1_400_000_000, 1_400_000_000 + 30 * 86400, n_events),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    times, times_sorted = [], []
    for run in range(args.repeats):
        df = make_frame(args.events, seed=run)
        X = InteractionMatrix(df, "iid", "uid", "ts")
        t0 = time.perf_counter()
        arrays = X.session_arrays()
        times.append(time.perf_counter() - t0)
        assert arrays.n_events == args.events
        # the same events already in (user, time) order: the fast path
        df_sorted = df.sort_values(["uid", "ts"], kind="stable", ignore_index=True)
        Y = InteractionMatrix(df_sorted, "iid", "uid", "ts")
        t0 = time.perf_counter()
        Y.session_arrays()
        times_sorted.append(time.perf_counter() - t0)

    print(f"events: {args.events:,}  sessions: {arrays.n_sessions:,}  runs: {args.repeats}")
    print(f"session_arrays() median, shuffled rows: {statistics.median(times) * 1000:.1f} ms")
    print(
        f"session_arrays() median, sorted rows:   {statistics.median(times_sorted) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
