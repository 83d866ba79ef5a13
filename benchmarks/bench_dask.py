"""Grid search on a Dask cluster against the same search with n_jobs=1.

A small grid around the published RSC15 configuration (learning rate x momentum, K-fold over the
training sessions, few epochs) is searched twice with ``GridSearchCV(refit=False)``: in this
process with ``n_jobs=1``, then on a ``distributed.LocalCluster`` of ``--workers`` processes with
one thread each through ``joblib.parallel_config(backend="dask")``. Prints both wall times (the
cluster's start-up reported apart; the workers' first import of torch counts in the search) and
whether the two ``cv_results_`` are identical apart from their timing columns. The workers start
without Dask's default ``MALLOC_TRIM_THRESHOLD_`` (see docs/tuning.rst; ``--dask-default-env``
keeps it). Writes a JSON of every number to ``benchmarks/results/dask/``. Needs
``pip install -e '.[dask]'``.

    python benchmarks/bench_dask.py                    # ../shared/data/rsc15_100k/train.csv
    python benchmarks/bench_dask.py --data DIR --workers 4 --folds 2 --epochs 2

When the data is missing the script says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import benchlib
import numpy as np

GRID = {"learning_rate": [0.1, 0.2], "momentum": [0.0, 0.2]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="folder with train.csv (default: ../shared/data/rsc15_100k)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (1 thread each)")
    p.add_argument("--folds", type=int, default=2, help="K of the K-fold split over sessions")
    p.add_argument("--epochs", type=int, default=2, help="max_epochs of every fit")
    p.add_argument(
        "--dask-default-env",
        action="store_true",
        help="keep Dask's MALLOC_TRIM_THRESHOLD_ for the workers (slows torch's CPU training)",
    )
    return p.parse_args(argv)


def same_results(a: dict, b: dict) -> tuple[bool, list[str]]:
    """Whether two cv_results_ agree exactly on every column except the timings."""
    differ = []
    for key in sorted(set(a) | set(b)):
        if key.endswith("_time"):
            continue
        if key not in a or key not in b:
            differ.append(key)
            continue
        va, vb = a[key], b[key]
        if isinstance(va, list) or np.asarray(va).dtype.kind == "O":
            equal = list(va) == list(vb)
        else:
            equal = np.array_equal(np.asarray(va), np.asarray(vb))
        if not equal:
            differ.append(key)
    return not differ, differ


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import joblib
        from distributed import Client, LocalCluster
    except ImportError:
        print("skipped: needs dask.distributed: pip install -e '.[dask]'", file=sys.stderr)
        return 0
    import torch
    from sklearn.model_selection import GridSearchCV, KFold

    from gru4rec import GRU4RecNegSampling, InteractionMatrix, datasets

    folder = Path(args.data) if args.data else benchlib.default_data_dir()
    train_csv = folder / "train.csv"
    if not train_csv.is_file():
        print(f"skipped: {train_csv} not found (give --data DIR with a train.csv)", file=sys.stderr)
        return 0
    X = InteractionMatrix.from_events(datasets.read_events(train_csv))
    params = {**benchlib.RSC15_BEST, "max_epochs": args.epochs, "seed": 0, "device": "cpu"}
    cv = KFold(n_splits=args.folds, shuffle=True, random_state=0)
    n_fits = args.folds * int(np.prod([len(v) for v in GRID.values()]))
    print(f"{folder.name}: {X.num_interactions} events; {n_fits} fits of {args.epochs} epochs")

    def search() -> GridSearchCV:
        return GridSearchCV(GRU4RecNegSampling(**params), GRID, cv=cv, refit=False)

    torch.set_num_threads(1)
    start = time.perf_counter()
    local = search().set_params(n_jobs=1).fit(X)
    t_local = time.perf_counter() - start
    print(f"n_jobs=1: {t_local:.1f} s")

    import dask

    if not args.dask_default_env:  # what docs/tuning.rst recommends
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    start = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1) as cluster, Client(cluster):
        t_up = time.perf_counter() - start
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask"):
            remote = search().fit(X)
        t_dask = time.perf_counter() - start
    print(f"dask, {args.workers} workers: {t_dask:.1f} s (+ {t_up:.1f} s cluster start-up)")

    identical, differ = same_results(local.cv_results_, remote.cv_results_)
    rows = [
        ("n_jobs=1", t_local, 1.0),
        (f"Dask, {args.workers} workers x 1 thread", t_dask, t_local / t_dask),
        (f"Dask incl. start-up ({t_up:.1f} s)", t_dask + t_up, t_local / (t_dask + t_up)),
    ]
    print()
    print("| search | wall s | speed-up |")
    print("|---|---|---|")
    for name, seconds, ratio in rows:
        print(f"| {name} | {seconds:.1f} | {ratio:.2f}x |")
    print()
    verdict = "yes" if identical else f"NO, columns {differ}"
    print(f"cv_results_ identical apart from timings: {verdict}")
    best = int(np.argmin(local.cv_results_["rank_test_score"]))
    print(f"best: {local.cv_results_['params'][best]}")
    facts = benchlib.machine_facts(threads=1, device="cpu")
    print(f"load average {benchlib.load_average()}; command: `{benchlib.command_line()}`")
    benchlib.write_json(
        benchlib.RESULTS_DIR / "dask" / "bench_dask.json",
        {
            "data": folder.name,
            "grid": GRID,
            "params": params,
            "folds": args.folds,
            "workers": args.workers,
            "dask_default_env": args.dask_default_env,
            "seconds": {"n_jobs_1": t_local, "dask": t_dask, "cluster_start": t_up},
            "identical": identical,
            "differ": differ,
            "mean_test_score": list(map(float, local.cv_results_["mean_test_score"])),
            "machine": facts,
        },
    )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
