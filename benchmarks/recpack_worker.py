"""Train recpack's GRU4RecNegSampling and score it with our evaluation protocol.

Runs inside recpack's own virtual environment (bench_accuracy.py --with-recpack creates it), so it
imports only recpack, torch, numpy and pandas, never gru4rec. Protocol, as in bench_accuracy.py:
train on train.csv, then predict the next item at every position of each test.csv session (the
hidden state starting from zero per session), rank the target against every training item with
conservative ties (rank = number of items scoring >= the target), Recall@20 and MRR@20 averaged
over the predictions. Seconds per epoch time recpack's ``_train_epoch`` only.

    python recpack_worker.py --train train.csv --test test.csv --out result.json \
        [--epochs 5] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time

# recpack 0.3.6 reloads its best model with a plain torch.load, which torch >= 2.6 refuses
# (weights_only); keep_last=True avoids the reload and this makes it work if it happens anyway.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from recpack.algorithms import GRU4RecNegSampling  # noqa: E402
from recpack.matrix import InteractionMatrix  # noqa: E402

K = 20


def load(train_csv: str, test_csv: str):
    """Train and test matrices over the training items, plus the test sessions as index arrays."""
    train = pd.read_csv(train_csv)
    test = pd.read_csv(test_csv)
    item_index = pd.Index(pd.unique(train["item_id"]))
    n_items = len(item_index)
    test = test[item_index.get_indexer(test["item_id"]) >= 0]
    frames = []
    for offset, df in ((0, train), (train["session_id"].nunique(), test)):
        uid, _ = pd.factorize(df["session_id"], sort=False)
        frames.append(
            pd.DataFrame(
                {
                    "uid": uid + offset,
                    "iid": item_index.get_indexer(df["item_id"]),
                    "ts": df["timestamp"].to_numpy(),
                }
            )
        )
    n_users = frames[0]["uid"].nunique() + frames[1]["uid"].nunique()
    shape = (n_users, n_items)
    X_train = InteractionMatrix(frames[0], "iid", "uid", timestamp_ix="ts", shape=shape)
    X_test = InteractionMatrix(frames[1], "iid", "uid", timestamp_ix="ts", shape=shape)
    ordered = frames[1].sort_values(["uid", "ts"], kind="stable")
    sessions = {int(u): g.to_numpy() for u, g in ordered.groupby("uid", sort=True)["iid"]}
    return X_train, X_test, {u: s for u, s in sessions.items() if len(s) >= 2}, n_items


def next_item_ranks(model, sessions, n_items: int, pad: int, batch: int = 256) -> np.ndarray:
    """Conservative rank of every next item of every session, the state starting at zero."""
    model.eval()
    seqs = sorted(sessions.values(), key=len, reverse=True)  # pack_padded_sequence wants this order
    ranks = []
    with torch.no_grad():
        for start in range(0, len(seqs), batch):
            chunk = seqs[start : start + batch]
            width = len(chunk[0]) - 1
            inp = torch.full((len(chunk), width), pad, dtype=torch.long)
            tgt = torch.full((len(chunk), width), -1, dtype=torch.long)
            for row, s in enumerate(chunk):
                inp[row, : len(s) - 1] = torch.as_tensor(s[:-1])
                tgt[row, : len(s) - 1] = torch.as_tensor(s[1:])
            out, _ = model(inp, model.init_hidden(len(chunk)))
            mask = tgt >= 0
            scores = out[:, :width, :n_items][mask]
            target = tgt[mask]
            target_score = scores.gather(1, target[:, None])
            ranks.append((scores >= target_score).sum(dim=1).numpy())
    return np.concatenate(ranks)


def check_against_predict(est, X_test, sessions, n_items: int) -> float:
    """Largest gap between our last-position scores and recpack's own predict (a sanity check)."""
    users = sorted(sessions)[:32]
    model = est.model_
    worst = 0.0
    pred = est.predict(X_test.users_in(users))
    with torch.no_grad():
        for user in users:
            s = sessions[user]
            out, _ = model(torch.as_tensor(s)[None, :], model.init_hidden(1))
            ours = out[0, -1, :n_items].numpy()
            theirs = pred[user].toarray().ravel()
            worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=None, help="default: recpack's (5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    X_train, X_test, sessions, n_items = load(args.train, args.test)
    params = {"seed": args.seed, "keep_last": True}
    if args.epochs is not None:
        params["max_epochs"] = args.epochs
    est = GRU4RecNegSampling(**params)
    epoch_seconds: list[float] = []
    curve: list[dict[str, float]] = []
    train_epoch = est._train_epoch

    def timed_epoch(X):
        start = time.perf_counter()
        result = train_epoch(X)
        epoch_seconds.append(time.perf_counter() - start)
        return result

    def evaluate(val_in, val_out):  # replaces recpack's per-epoch validation
        ranks = next_item_ranks(est.model_, sessions, n_items, est.pad_token)
        curve.append(
            {
                "recall": float(np.mean(ranks <= K)),
                "mrr": float(np.mean(np.where(ranks <= K, 1.0 / ranks, 0.0))),
            }
        )

    est._train_epoch = timed_epoch
    est._evaluate = evaluate
    start = time.perf_counter()
    est.fit(X_train, (X_test, X_test))
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ranks = next_item_ranks(est.model_, sessions, n_items, est.pad_token)
    eval_seconds = time.perf_counter() - start
    gap = check_against_predict(est, X_test, sessions, n_items)
    import recpack

    result = {
        "recall": float(np.mean(ranks <= K)),
        "mrr": float(np.mean(np.where(ranks <= K, 1.0 / ranks, 0.0))),
        "n_predictions": int(len(ranks)),
        "epoch_seconds": epoch_seconds,
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "curve": curve,
        "max_gap_vs_predict": gap,
        "params": est.get_params(),
        "recpack": getattr(recpack, "__version__", "0.3.6"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
