"""Where the training time goes: torch profiler over one epoch on the first sessions of a data set.

Trains one configuration (``rsc15-best`` or ``diginetica-best``) for one warm-up epoch, then
profiles a second epoch with one torch thread and prints the operators by self CPU time and the
milliseconds per step.

    python benchmarks/profile_step.py [--config rsc15-best] [--sessions 4000] [--rows 25]
"""

from __future__ import annotations

import argparse
import sys
import time

import bench_accuracy
import benchlib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="rsc15-best", choices=list(bench_accuracy.GRU_CONFIGS))
    parser.add_argument("--data", help="folder with train.csv (default: rsc15_100k)")
    parser.add_argument("--sessions", type=int, default=4000, help="first N training sessions")
    parser.add_argument("--rows", type=int, default=25, help="operators to list")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    import gru4rec
    from gru4rec import InteractionMatrix, datasets

    path = (
        benchlib.default_data_dir() if args.data is None else __import__("pathlib").Path(args.data)
    )
    if not (path / "train.csv").is_file():
        print(f"skipped: {path / 'train.csv'} not found", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    events = datasets.read_events(path / "train.csv")
    first = events["session_id"].drop_duplicates().iloc[: args.sessions]
    events = events[events["session_id"].isin(first)]
    X = InteractionMatrix.from_events(events)
    params = {**bench_accuracy.GRU_CONFIGS[args.config].params, "max_epochs": 1, "seed": 0}
    est = gru4rec.GRU4RecNegSampling(**params)
    est.fit(X)  # warm-up (allocations, first-call costs)
    steps = int(sum(len(s) - 1 for _, s in events.groupby("session_id")) / params["batch_size"])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - start
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    print(
        f"{args.config}: {len(events)} events, about {steps} steps, {seconds:.2f} s under the "
        f"profiler ({1000 * est.history_[0]['seconds'] / max(steps, 1):.2f} ms/step)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
