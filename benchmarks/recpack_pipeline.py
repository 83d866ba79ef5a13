"""recpack 0.3.6's Pipeline with gru4rec's estimator registered in recpack's ALGORITHM_REGISTRY.

recpack's DataFramePreprocessor turns the events into recpack's own InteractionMatrix, its
LastItemPrediction scenario (with validation) holds out each session's last event, and a
PipelineBuilder pipeline runs a grid search over the learning rate on the validation split,
fits the best setting on the full training data, predicts the test sessions and computes
recpack's metrics, next to recpack's Popularity baseline. Prints ``pipeline.get_metrics()``
and the grid search's results.

recpack needs numpy<2 and pandas<3, so it runs in its own virtual environment: the one that
``bench_accuracy.py --with-recpack`` creates (once) under the benchmark cache directory, or an
interpreter given with ``--recpack-python``. This script re-runs itself there with the
repository on PYTHONPATH.

    python benchmarks/recpack_pipeline.py                 # ../shared/data/rsc15_100k/events.csv
    python benchmarks/recpack_pipeline.py --synthetic     # synthetic sessions instead
    python benchmarks/recpack_pipeline.py --recpack-python /path/to/venv/bin/python

Without the shared data the synthetic sessions are used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
ALGORITHM = "gru4rec.GRU4RecNegSampling"  # recpack's registry already has "GRU4RecNegSampling"
METRIC_K = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="events CSV (session_id,item_id,timestamp)"
    )
    parser.add_argument("--synthetic", action="store_true", help="use synthetic sessions")
    parser.add_argument("--epochs", type=int, default=3, help="max_epochs of each fit")
    parser.add_argument("--learning-rates", default="0.1,0.2", help="the grid (comma-separated)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--recpack-python", type=Path, default=None, help="python with recpack 0.3.6"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


# -- parent: find recpack's interpreter and re-run there -------------------------------------


def _recpack_interpreter(args: argparse.Namespace) -> Path | None:
    if args.recpack_python is not None:
        return args.recpack_python
    sys.path.insert(0, str(BENCH_DIR))
    from bench_accuracy import recpack_python

    python = recpack_python()
    if python is None:
        return None
    # recpack's pipelines import hyperopt, which needs pkg_resources (setuptools < 81).
    probe = [str(python), "-c", "import pkg_resources"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        print("installing setuptools<81 into recpack's venv (hyperopt needs pkg_resources)")
        pip = [str(python), "-m", "pip", "install", "--quiet", "setuptools<81"]
        if subprocess.run(pip).returncode != 0:
            return None
    return python


def _default_events() -> Path:
    base = os.environ.get("GRU4REC_SHARED_DATA")
    return (
        (Path(base) if base else REPO_ROOT.parent / "shared" / "data") / "rsc15_100k" / "events.csv"
    )


def parent(args: argparse.Namespace, argv: list[str]) -> int:
    python = _recpack_interpreter(args)
    if python is None:
        print("recpack 0.3.6 is not available; nothing to run")
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TQDM_DISABLE", "1")  # recpack's preprocessing draws progress bars
    return subprocess.run([str(python), __file__, "--worker", *argv], env=env).returncode


# -- worker: runs inside recpack's venv -------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    import warnings

    import pandas as pd
    import torch
    from recpack.pipelines import ALGORITHM_REGISTRY, PipelineBuilder
    from recpack.preprocessing.preprocessors import DataFramePreprocessor
    from recpack.scenarios import LastItemPrediction

    from gru4rec import GRU4RecNegSampling
    from gru4rec.datasets import make_synthetic_sessions

    torch.set_num_threads(args.threads)
    path = args.data or _default_events()
    if args.synthetic or not path.is_file():
        if not args.synthetic:
            print(f"{path} not found: using synthetic sessions")
        events, name = make_synthetic_sessions(5000, 1000, seed=0), "synthetic (5000 sessions)"
    else:
        events, name = pd.read_csv(path), str(path)

    started = time.perf_counter()
    im = DataFramePreprocessor("item_id", "session_id", "timestamp").process(events)
    scenario = LastItemPrediction(validation=True, seed=0)
    scenario.split(im)
    print(
        f"data: {name}: {im.num_interactions} events, {im.shape[0]} sessions, "
        f"{im.shape[1]} items; recpack LastItemPrediction(validation=True)"
    )

    ALGORITHM_REGISTRY.register(ALGORITHM, GRU4RecNegSampling)
    builder = PipelineBuilder(folder_name="recpack_pipeline", base_path=str(BENCH_DIR / "results"))
    builder.set_data_from_scenario(scenario)
    builder.add_algorithm("Popularity", params={"K": 100})
    params = {
        "loss_fn": "cross-entropy",
        "hidden_size": 100,
        "batch_size": 32,
        "dropout_hidden": 0.4,
        "momentum": 0.2,
        "constrained_embedding": True,
        "max_epochs": args.epochs,
        "predict_topK": 100,  # keeps predict's csr output sparse
        "seed": 0,
        "device": "cpu",
    }
    grid = {"learning_rate": [float(x) for x in args.learning_rates.split(",")]}
    with warnings.catch_warnings():  # recpack announces that grid= will be deprecated
        warnings.simplefilter("ignore", UserWarning)
        builder.add_algorithm(ALGORITHM, params=params, grid=grid)
    builder.set_optimisation_metric("CalibratedRecallK", K=METRIC_K)
    builder.add_metric("CalibratedRecallK", K=[10, METRIC_K])
    builder.add_metric("ReciprocalRankK", K=METRIC_K)
    builder.add_metric("NDCGK", K=METRIC_K)
    pipeline = builder.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pipeline.run()
    seconds = time.perf_counter() - started

    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print("\npipeline.get_metrics(short=True):")
        print(pipeline.get_metrics(short=True).round(4).to_string())
        tried = pipeline.optimisation_results
        tried = pd.DataFrame(
            {
                "learning_rate": [p["learning_rate"] for p in tried["params"]],
                f"validation CalibratedRecallK_{METRIC_K}": tried[f"CalibratedRecallK_{METRIC_K}"],
            }
        )
        print("\ngrid search (pipeline.optimisation_results):")
        print(tried.round(4).to_string(index=False))
    print(f"\nwall time {seconds:.0f} s with {args.threads} torch thread(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    return worker(args) if args.worker else parent(args, argv)


if __name__ == "__main__":
    sys.exit(main())
