"""The matrix-product floor of a one-layer configuration's training epoch on this machine.

Every exact implementation of a step does the same matrix products: the scores and their two
gradient products (rows x hidden x scored columns), and the GRU's input- and hidden-side products
with their gradients (rows x width x 3 hidden). They run at the BLAS's rate, so their time alone
bounds how fast any implementation's epoch can be: the ratio of a measured epoch to this floor is
the most any implementation can gain over it on the machine at hand, whatever else it removes.

The floor is timed here with the faster of torch's and NumPy's products at one thread (NumPy's
BLAS limited to one thread as well), on the step shapes the schedule
gives (mean rows per step) and two column counts: this package's (each step's targets plus its
*distinct* negatives, read from the sampler) and one that scores every draw
(``batch_size + n_sample``, as the official GRU4Rec does).

    python benchmarks/floor.py --config diginetica-best [--data DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import benchlib
import numpy as np
from threadpoolctl import threadpool_limits


def _product_seconds(m: int, k: int, n: int, reps: int) -> float:
    """Median seconds of one ``(m x k) @ (k x n)`` float32 product (random operands), with
    the faster of torch's BLAS and NumPy's on this machine."""
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g)
    b = torch.randn(k, n, generator=g)
    out = torch.empty(m, n)
    an, bn, on = a.numpy(), b.numpy(), out.numpy()
    best = float("inf")
    for product in (lambda: torch.mm(a, b, out=out), lambda: np.matmul(an, bn, out=on)):
        product()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            product()
            times.append(time.perf_counter() - t0)
        best = min(best, statistics.median(times))
    return best


def _with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    from gru4rec import GRU4RecNegSampling

    return GRU4RecNegSampling(**params).get_params()


def step_shapes(X: Any, params: dict[str, Any], draws: int = 200) -> dict[str, float]:
    """Mean rows per step, number of steps and mean scored columns of ``params`` on ``X``."""
    import torch

    from gru4rec import inputs
    from gru4rec.samplers import NegativeSampler
    from gru4rec.schedule import session_order, session_parallel_schedule

    params = _with_defaults(params)
    sessions = inputs.timed_sessions(X, training=True)
    batch = int(params["batch_size"])
    order = session_order(sessions.start_times, np.random.default_rng(0), "time")
    schedule = session_parallel_schedule(sessions.offsets, order, batch)
    n_samples = int(params["num_negatives"])
    counts = np.bincount(sessions.items, minlength=X.shape[1])
    sampler = NegativeSampler(
        counts,
        float(params["sample_alpha"]),
        n_samples,
        torch.Generator().manual_seed(0),
        torch.device("cpu"),
        dedup=True,
    )
    distinct = [len(sampler.draw_unique()[0]) for _ in range(draws)]
    rows = float(schedule.batch_sizes.mean())
    return {
        "steps": schedule.n_steps,
        "rows": rows,
        "columns": rows + float(np.mean(distinct)),
        "all_draws": rows + n_samples,
    }


def epoch_floor(X: Any, params: dict[str, Any], reps: int = 15) -> dict[str, float]:
    """Seconds per epoch of the step's matrix products alone (one thread).

    ``ours``: the columns this package scores; ``all_draws``: every draw scored. Also returns
    the shapes (:func:`step_shapes`).
    """
    params = _with_defaults(params)
    if params["num_layers"] != 1:
        raise ValueError("the floor is worked out for one GRU layer")
    shapes = step_shapes(X, params)
    m = max(1, round(shapes["rows"]))
    hidden = int(params["hidden_size"])
    if params["constrained_embedding"]:
        width, table_input = hidden, True
    else:
        width = int(params["num_components"] or 0)
        table_input = width > 0
    gates = 3 * hidden
    out = {**shapes}
    with threadpool_limits(limits=1, user_api="blas"):
        gru = 2 * _product_seconds(m, hidden, gates, reps)  # hidden side: forward, weight grad.
        if table_input:
            # Input side: forward, weight gradient and the gradient of the input rows.
            gru += 3 * _product_seconds(m, width, gates, reps)
        for key, cols in (("ours", shapes["columns"]), ("all_draws_floor", shapes["all_draws"])):
            scores = 3 * _product_seconds(m, hidden, max(1, round(cols)), reps)
            out[key] = shapes["steps"] * (scores + gru)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="diginetica-best", choices=list(benchlib.GRU_CONFIGS))
    parser.add_argument("--data", help="folder with train.csv (default: rsc15_100k)")
    args = parser.parse_args(argv)

    import torch

    from gru4rec import InteractionMatrix, datasets

    torch.set_num_threads(1)
    path = (
        benchlib.default_data_dir() if args.data is None else __import__("pathlib").Path(args.data)
    )
    if not (path / "train.csv").is_file():
        print(f"skipped: {path / 'train.csv'} not found", file=sys.stderr)
        return 2
    X = InteractionMatrix.from_events(datasets.read_events(path / "train.csv"))
    params = benchlib.GRU_CONFIGS[args.config].params
    f = epoch_floor(X, params)
    print(
        f"{args.config}: {f['steps']} steps of {f['rows']:.1f} rows; {f['columns']:.0f} columns "
        f"scored ({f['all_draws']:.0f} with every draw). Matrix products alone, one thread: "
        f"{f['ours']:.2f} s/epoch ({f['all_draws_floor']:.2f} s/epoch scoring every draw); "
        f"load average {benchlib.load_average()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
