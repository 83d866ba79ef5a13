"""The command line: ``python -m gru4rec demo``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]


def _popularity_ranks(train_items: np.ndarray, n_items: int, targets: np.ndarray) -> np.ndarray:
    counts = np.bincount(train_items, minlength=n_items)
    # Conservative: every item at least as popular as the target ranks ahead of it.
    sorted_counts = np.sort(counts)
    return n_items - np.searchsorted(sorted_counts, counts[targets], side="left")


def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import datasets
    from .estimator import GRU4RecNegSampling
    from .matrix import InteractionMatrix
    from .metrics import mrr_at_k, recall_at_k

    if args.events:
        df = datasets.read_events(args.events)
        source = args.events
    else:
        df = datasets.make_synthetic_sessions(
            n_sessions=args.sessions, n_items=args.items, seed=args.seed
        )
        source = f"synthetic ({args.sessions} sessions, {args.items} items)"
    span_days = (df["timestamp"].max() - df["timestamp"].min()) / 86400.0
    train_df, test_df = datasets.time_split(df, test_days=span_days * args.test_share)
    train = InteractionMatrix.from_events(train_df)
    test = InteractionMatrix.from_events(test_df, item_vocabulary=train.item_vocabulary)
    print(
        f"data: {source}\n"
        f"train: {train.num_interactions} events, {train.num_active_users} sessions, "
        f"{train.shape[1]} items; test: {test.num_interactions} events, "
        f"{test.num_active_users} sessions"
    )
    est = GRU4RecNegSampling(
        loss_fn=args.loss,
        hidden_size=args.hidden_size,
        batch_size=args.batch_size,
        num_negatives=args.negatives,
        sample_alpha=0.5,
        constrained_embedding=True,
        learning_rate=args.learning_rate,
        momentum=0.2,
        clipnorm=None,
        max_epochs=args.epochs,
        seed=args.seed,
        verbose=True,
    )
    start = time.perf_counter()
    est.fit(train)
    fit_s = time.perf_counter() - start
    ranks = est.next_item_ranks(test)
    sessions = test.session_arrays()
    has_next = np.ones(sessions.n_events, dtype=bool)
    has_next[sessions.offsets[1:] - 1] = False
    targets = sessions.items[np.flatnonzero(has_next) + 1]
    pop = _popularity_ranks(train.session_arrays().items, train.shape[1], targets)
    rows = [
        ("GRU4Rec", recall_at_k(ranks, 20), mrr_at_k(ranks, 20)),
        ("popularity", recall_at_k(pop, 20), mrr_at_k(pop, 20)),
    ]
    print(f"\ntrained {args.epochs} epochs in {fit_s:.1f} s; {len(ranks)} test predictions")
    print(f"{'model':<12} {'Recall@20':>10} {'MRR@20':>10}")
    for name, rec, mrr in rows:
        print(f"{name:<12} {rec:>10.4f} {mrr:>10.4f}")
    del pd
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gru4rec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train and evaluate on generated sessions (or an event CSV)")
    demo.add_argument("events", nargs="?", help="CSV of session_id,item_id,timestamp events")
    demo.add_argument("--sessions", type=int, default=3000)
    demo.add_argument("--items", type=int, default=1000)
    demo.add_argument("--epochs", type=int, default=5)
    demo.add_argument("--loss", default="cross-entropy")
    demo.add_argument("--hidden-size", type=int, default=100)
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--negatives", type=int, default=256)
    demo.add_argument("--learning-rate", type=float, default=0.1)
    demo.add_argument("--test-share", type=float, default=0.1, help="share of the time span")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gru4rec: error: {exc}", file=sys.stderr)
        return 2
