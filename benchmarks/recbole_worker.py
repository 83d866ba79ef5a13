"""Train RecBole's GRU4Rec on our split and score it with our evaluation protocol.

Runs inside RecBole's own virtual environment (bench_accuracy.py --with-recbole creates it), so it
imports only RecBole, torch, numpy and pandas, never gru4rec. RecBole trains on prefixes: every
position of every training session becomes one example (the items before it, at most
``MAX_ITEM_LIST_LENGTH`` = 50 of them, left-aligned and padded; the item at it as the target).
The worker writes those examples as RecBole atomic files and loads them through its
``benchmark_filename``, so the split is ours and RecBole does no splitting or augmentation of its
own. Training is RecBole's own ``Trainer.fit`` (its data loader, optimiser and loss), without
validation or early stopping: the model of the last epoch is scored.

Scoring, as in bench_accuracy.py: the next item at every position of each test.csv session
(test events of items unseen in training dropped), from RecBole's ``GRU4Rec.forward`` over the
whole prefix (the GRU starting from zero), its output dotted with every item embedding (the
catalogue: every training item; the padding row excluded); rank = number of items scoring >= the
target (conservative ties), Recall@20 and MRR@20 averaged over the predictions. RecBole's own
evaluator differs in two ways, reported beside ours as ``recbole_own_eval``: it sees at most the
last 50 items of a prefix, and it ranks by ``torch.topk``, which breaks ties arbitrarily.
Seconds per epoch time RecBole's ``Trainer._train_epoch`` only.

    python recbole_worker.py --train train.csv --test test.csv --out result.json \
        [--config '{"train_batch_size": 32}'] [--epochs 5] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

K = 20
MAX_LEN = 50  # RecBole's MAX_ITEM_LIST_LENGTH default


def sessions_of(df: pd.DataFrame) -> list[np.ndarray]:
    """The item ids of every session, in time order (stable for equal times)."""
    df = df.sort_values(["session_id", "timestamp"], kind="stable")
    return [g.to_numpy() for _, g in df.groupby("session_id", sort=False)["item_id"]]


def write_prefixes(path: Path, sessions: list[np.ndarray], tag: str) -> int:
    """RecBole's sequential atomic file: one (prefix, target) row per position after the first."""
    sids, prefixes, targets = [], [], []
    for n, items in enumerate(sessions):
        tokens = [str(i) for i in items]
        for t in range(1, len(tokens)):
            sids.append(f"{tag}{n}")
            prefixes.append(" ".join(tokens[max(0, t - MAX_LEN) : t]))
            targets.append(tokens[t])
    frame = pd.DataFrame(
        {"session_id:token": sids, "item_id_list:token_seq": prefixes, "item_id:token": targets}
    )
    frame.to_csv(path, sep="\t", index=False)
    return len(frame)


def next_item_ranks(model, sessions: list[np.ndarray], batch: int = 512) -> tuple[np.ndarray, int]:
    """Conservative rank of every next item of every session, and how many prefixes exceed 50.

    Each prefix goes through RecBole's ``forward`` in full (a GRU has no length limit), grouped by
    length so that a batch pads little.
    """
    prefixes = [(s[:t], s[t]) for s in sessions for t in range(1, len(s))]
    prefixes.sort(key=lambda p: len(p[0]))
    n_items = model.item_embedding.weight.shape[0]
    ranks = []
    model.eval()
    with torch.no_grad():
        items = model.item_embedding.weight[1:]  # row 0 is RecBole's padding
        for start in range(0, len(prefixes), batch):
            chunk = prefixes[start : start + batch]
            width = len(chunk[-1][0])
            seq = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (p, _) in enumerate(chunk):
                seq[row, : len(p)] = torch.as_tensor(p)
            lengths = torch.as_tensor([len(p) for p, _ in chunk])
            target = torch.as_tensor([t for _, t in chunk]) - 1
            scores = model.forward(seq, lengths) @ items.T
            target_score = scores.gather(1, target[:, None])
            ranks.append((scores >= target_score).sum(dim=1).numpy())
    assert n_items - 1 == items.shape[0]
    return np.concatenate(ranks), sum(len(p) > MAX_LEN for p, _ in prefixes)


def metrics(ranks: np.ndarray) -> dict[str, float]:
    return {
        "recall": float(np.mean(ranks <= K)),
        "mrr": float(np.mean(np.where(ranks <= K, 1.0 / ranks, 0.0))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="{}", help="RecBole settings (JSON) over its defaults")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default=".", help="RecBole's files (logs, data) go here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole's pandas idioms
    workdir = Path(args.workdir).resolve()
    os.chdir(workdir)  # RecBole writes log_tensorboard/ and saved/ under the working directory

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import GRU4Rec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    train = pd.read_csv(args.train)
    test = pd.read_csv(args.test)
    known = set(pd.unique(train["item_id"]))
    test = test[test["item_id"].isin(known)]
    train_sessions = sessions_of(train)
    test_sessions = [s for s in sessions_of(test) if len(s) >= 2]
    data_dir = workdir / "data" / "rsc"
    data_dir.mkdir(parents=True, exist_ok=True)
    n_train = write_prefixes(data_dir / "rsc.train.inter", train_sessions, "r")
    # Validation is never run (no early stopping); RecBole needs the files to build its loaders.
    write_prefixes(data_dir / "rsc.valid.inter", test_sessions, "t")
    write_prefixes(data_dir / "rsc.test.inter", test_sessions, "t")

    settings = {
        "data_path": str(workdir / "data"),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": None,
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
        # Without the alias the prefixes get a vocabulary of their own, apart from the targets'.
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "train_neg_sample_args": None,  # RecBole refuses negatives with its CE loss
        "epochs": args.epochs,
        "seed": args.seed,
        "use_gpu": False,
        "device": "cpu",
        "checkpoint_dir": str(workdir / "saved"),
        "show_progress": False,
        "metrics": ["Recall", "MRR"],
        "topk": [K],
        "valid_metric": f"MRR@{K}",
        "eval_batch_size": 4096,
        **json.loads(args.config),
    }
    config = Config(model="GRU4Rec", dataset="rsc", config_dict=settings)
    logging.getLogger().setLevel(logging.WARNING)
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(args.threads)
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = GRU4Rec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)

    # Test tokens to RecBole's item ids (the same vocabulary: every test item is a training item).
    token_id = dataset.field2token_id["item_id"]
    test_ids = [np.array([token_id[str(i)] for i in s]) for s in test_sessions]
    n_catalogue = model.item_embedding.weight.shape[0] - 1
    if n_catalogue != len(known):
        raise RuntimeError(f"RecBole's catalogue has {n_catalogue} items, training {len(known)}")

    epoch_seconds: list[float] = []
    curve: list[dict[str, float]] = []
    train_epoch = trainer._train_epoch

    def timed_epoch(*a, **kw):
        start = time.perf_counter()
        result = train_epoch(*a, **kw)
        epoch_seconds.append(time.perf_counter() - start)
        print(
            f"    recbole epoch {len(epoch_seconds)}: {epoch_seconds[-1]:.1f} s, loss {result}",
            flush=True,
        )
        curve.append(metrics(next_item_ranks(model, test_ids)[0]))
        model.train()
        # The model after each epoch, so that a run stopped early still tells what it reached.
        partial = {
            **curve[-1],
            "epochs_done": len(epoch_seconds),
            "epoch_seconds": epoch_seconds,
            "curve": curve,
            "n_predictions": int(sum(len(s) - 1 for s in test_ids)),
        }
        Path(args.out + ".partial").write_text(json.dumps(partial, indent=2))
        return result

    trainer._train_epoch = timed_epoch
    start = time.perf_counter()
    trainer.fit(train_data, valid_data=None, verbose=False, saved=False)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ranks, n_long = next_item_ranks(model, test_ids)
    eval_seconds = time.perf_counter() - start
    own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    import recbole

    result = {
        **metrics(ranks),
        "n_predictions": int(len(ranks)),
        "n_prefixes_over_50": int(n_long),
        "n_train_examples": n_train,
        "n_items": int(n_catalogue),
        "epoch_seconds": epoch_seconds,
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "curve": curve,
        "recbole_own_eval": {k: float(v) for k, v in dict(own).items()},
        "config": {
            k: config[k]
            for k in (
                "embedding_size",
                "hidden_size",
                "num_layers",
                "dropout_prob",
                "loss_type",
                "train_batch_size",
                "learner",
                "learning_rate",
                "weight_decay",
                "epochs",
                "MAX_ITEM_LIST_LENGTH",
                "seed",
            )
        },
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
