"""Train the official GRU4Rec (PyTorch) and evaluate it with our protocol.

Runs inside its own virtual environment (``bench_accuracy.py --official DIR`` creates it), so it
imports only the official code from DIR, torch, numpy and pandas, never gru4rec. The official
code is not part of this repository: get it from https://github.com/hidasib/GRU4Rec_PyTorch_Official
and pass the folder that holds ``gru4rec_pytorch.py``.

Training is the official ``GRU4Rec.fit`` on the CPU with the given parameters (its own
weight initialisation, sampler and optimiser); the seconds per epoch are the ones it prints.
Evaluation is the official ``evaluation.batch_eval`` in ``conservative`` mode: the next item at
every position of every test session (the hidden state from zero per session), ranked against
every training item, rank = number of items scoring >= the target; test events of items unseen
in training are dropped, as on our side.

    python official_worker.py --official DIR --train train.csv --test test.csv --out result.json \
        --params '{"loss": "cross-entropy", ...}' [--epochs 2] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import time

import numpy as np
import pandas as pd
import torch

K = 20
EPOCH_LINE = re.compile(r"Epoch(\d+) --> loss: ([-+.\w]+)\s+\(([\d.]+)s\)")


class _Tee(io.TextIOBase):
    """Keep what the official code prints (its epoch times) and pass it on to stderr."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def write(self, s: str) -> int:
        self.text.append(s)
        sys.stderr.write(s)
        return len(s)


class _TorchShim:
    """torch as the official module sees it, except that ``torch.tensor`` of a pandas Series
    (its logq popularity vector) goes through numpy: current torch refuses a Series."""

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def tensor(data, *args, **kwargs):
        if isinstance(data, pd.Series):
            data = data.to_numpy()
        return torch.tensor(data, *args, **kwargs)


def load(train_csv: str, test_csv: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events in the official column names, session ids mapped to int32-safe codes."""
    frames = []
    offset = 0
    for path in (train_csv, test_csv):
        df = pd.read_csv(path)
        codes, _ = pd.factorize(df["session_id"], sort=False)
        frames.append(
            pd.DataFrame(
                {
                    "SessionId": (codes + offset).astype("int32"),
                    "ItemId": df["item_id"].to_numpy(),
                    "Time": df["timestamp"].to_numpy(),
                }
            )
        )
        offset += int(codes.max()) + 1 if len(codes) else 0
    return frames[0], frames[1]


def n_predictions(train: pd.DataFrame, test: pd.DataFrame) -> int:
    """Next-item predictions in the test set once unseen items are dropped."""
    known = test[test["ItemId"].isin(train["ItemId"].unique())]
    sizes = known.groupby("SessionId").size()
    return int((sizes - 1).clip(lower=0).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, help="folder with gru4rec_pytorch.py")
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", required=True, help="official parameters as JSON")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, args.official)
    import evaluation  # the official evaluator
    import gru4rec_pytorch
    from gru4rec_pytorch import GRU4Rec

    gru4rec_pytorch.torch = _TorchShim()

    torch.set_num_threads(args.threads)
    # The official sampler and dropout draw from torch's global generator (its weights start
    # from numpy seed 42 in any case).
    torch.manual_seed(args.seed)
    params = json.loads(args.params)
    if args.epochs is not None:
        params["n_epochs"] = args.epochs
    train, test = load(args.train, args.test)

    tee = _Tee()
    gru = GRU4Rec(device=torch.device("cpu"))
    with contextlib.redirect_stdout(tee):
        gru.set_params(**params)
        start = time.perf_counter()
        gru.fit(train)
        fit_seconds = time.perf_counter() - start
    if gru.error_during_train:
        print("official training diverged (NaN loss)", file=sys.stderr)
        return 1
    epochs = EPOCH_LINE.findall("".join(tee.text))
    start = time.perf_counter()
    with contextlib.redirect_stdout(tee):
        recall, mrr = evaluation.batch_eval(
            gru, test, cutoff=[K], batch_size=512, mode="conservative"
        )
    eval_seconds = time.perf_counter() - start
    result = {
        "recall": float(recall[K]),
        "mrr": float(mrr[K]),
        "epoch_seconds": [float(s) for _, _, s in epochs],
        "train_loss": [float(loss) for _, loss, _ in epochs],
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "n_predictions": n_predictions(train, test),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
