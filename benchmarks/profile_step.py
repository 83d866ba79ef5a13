"""Where the training time goes: torch profiler over one epoch on the first sessions of a data set.

Trains one configuration (``rsc15-best`` or ``diginetica-best``) for one warm-up epoch, then
profiles a second epoch with one torch thread and prints the operators by self CPU time and the
milliseconds per step.

The compiled one-layer step is a few calls per step that the torch profiler does not see into;
``--kernels`` times those calls instead (each compiled call and each optimiser update as one
entry, the rest of the step as "sampler, schedule and Python").

    python benchmarks/profile_step.py [--config rsc15-best] [--sessions 4000] [--rows 25]
    python benchmarks/profile_step.py --kernels [--config diginetica-best] [--sessions 20000]
"""

from __future__ import annotations

import argparse
import sys
import time

import benchlib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="rsc15-best", choices=list(benchlib.GRU_CONFIGS))
    parser.add_argument("--data", help="folder with train.csv (default: rsc15_100k)")
    parser.add_argument("--sessions", type=int, default=4000, help="first N training sessions")
    parser.add_argument("--rows", type=int, default=25, help="operators to list")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--kernels", action="store_true", help="time the compiled step's calls, not torch's ops"
    )
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
    params = {**benchlib.GRU_CONFIGS[args.config].params, "max_epochs": 1, "seed": 0}
    est = gru4rec.GRU4RecNegSampling(**params)
    est.fit(X)  # warm-up (allocations, first-call costs)
    steps = int(sum(len(s) - 1 for _, s in events.groupby("session_id")) / est.batch_size)
    if args.kernels:
        timings = _timed_kernels()
        start = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - start
        epoch = est.history_[0]["seconds"]
        timings["sampler, schedule and Python"] = epoch - sum(timings.values())
        for name, spent in sorted(timings.items(), key=lambda kv: -kv[1]):
            print(
                f"{name:32s} {1e6 * spent / max(steps, 1):9.1f} us/step {100 * spent / epoch:5.1f}%"
            )
    else:
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


def _timed_kernels() -> dict[str, float]:
    """Wrap the compiled step's calls (and the optimiser's updaters) with timers; returns the
    dict of seconds per entry that the wrappers fill."""
    from gru4rec import kernels, optim

    timings: dict[str, float] = {}

    def timed(name, fn):
        timings.setdefault(name, 0.0)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            result = fn(*a, **kw)
            timings[name] += time.perf_counter() - t0
            return result

        return wrapper

    entries = {
        "step_forward": "forward (gather, GRU cell, scores)",
        "step_backward": "backward (output and GRU grads)",
        "xent_step_softmax_loss": "loss and its gradient",
        "bpr_max_step_loss": "loss and its gradient",
        "bpr_step_loss": "loss and its gradient",
    }
    for attr, name in entries.items():
        setattr(kernels, attr, timed(name, getattr(kernels, attr)))
    cls = optim.RowSparseOptimizer
    dense, rows = cls.dense_updater, cls.rows_updater
    cls.dense_updater = lambda self, *a, **kw: timed("dense update", dense(self, *a, **kw))
    cls.rows_updater = lambda self, *a, **kw: timed("row-sparse update", rows(self, *a, **kw))
    return timings


if __name__ == "__main__":
    sys.exit(main())
