"""The commands that fit: ``train``, ``update`` and ``demo``."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from typing import Any

import numpy as np

from .io import (
    _check_model_path,
    _load_model,
    _matrix_over,
    _no_known_item,
    _no_time,
    _read,
    _save_model,
    _warn,
)
from .options import ESTIMATORS, _make_estimator
from .status import EXIT_INTERRUPTED, EXIT_NOTHING_SAVED


def _train(args: argparse.Namespace) -> int:
    from .. import estimator
    from ..datasets import last_item_split
    from ..matrix import InteractionMatrix

    cls = getattr(estimator, ESTIMATORS[args.estimator])
    # With --time-col none, row numbers stand in for the times; the sessions' order in the
    # file is no time order, so train in a seeded random order unless told otherwise.
    est = _make_estimator(cls, args, **({"session_order": "random"} if _no_time(args) else {}))
    _check_model_path(args.model)

    df = _read(args.events, args)
    X = InteractionMatrix.from_events(df)
    validation = None
    if args.validation:
        val_df = _read(args.validation, args)
        V = _matrix_over(
            val_df,
            X.item_vocabulary,
            args.validation,
            known_to=f"the training data ({args.events})",
        )
        if V is None:
            raise ValueError(
                _no_known_item(
                    val_df, X.item_vocabulary, args.validation, f"the training data ({args.events})"
                )
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sessions of one event are simply not validated
            validation = last_item_split(V)
        if validation[1].num_interactions == 0:
            raise ValueError(
                f"{args.validation}: no session has 2 or more events with items of {args.events}; "
                "validation holds out the last item of such sessions"
            )
    if not args.quiet:
        print(
            f"{args.events}: {X.num_interactions} events, {X.num_active_users} sessions, "
            f"{X.shape[1]} items",
            file=sys.stderr,
        )
    start = time.perf_counter()
    stopped = None
    try:
        est.fit(X, validation_data=validation)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "epochs_completed", 0):
            raise  # nothing to save: main says so
        stopped = exc  # the estimator holds the last completed (or best) epoch
    except ValueError as exc:  # fit names its argument X: say the file
        raise ValueError(re.sub(r"^X\b", lambda _: args.events, str(exc))) from None
    seconds = time.perf_counter() - start
    existed = os.path.exists(args.model)
    try:
        _save_model(est, args.model)  # atomic: the old file or the new one, whole
    except KeyboardInterrupt:
        left = f"; {args.model} is unchanged" if existed else ""
        print(f"gru4rec: interrupted while saving: no model was saved{left}", file=sys.stderr)
        return EXIT_NOTHING_SAVED
    epochs = len(est.history_)
    kept = ""
    if est.best_epoch_ is not None and not est.keep_last:
        kept = f", kept epoch {est.best_epoch_ + 1} ({est.stopping_criterion_.name} "
        kept += f"{est.best_value_:.4f})"
    if stopped is not None:
        print(
            f"gru4rec: interrupted in epoch {epochs + 1}: saved the model after {epochs} "
            f"completed epoch(s){kept} to {args.model}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if not args.quiet:
        print(
            f"trained {est.name} (--preset {args.preset}) for {epochs} epoch(s) in "
            f"{seconds:.1f} s{kept}; saved to {args.model}"
        )
    return 0


def _update(args: argparse.Namespace) -> int:
    from ..matrix import InteractionMatrix

    _check_model_path(args.out, "--out")
    est = _load_model(args.model)
    est.set_params(num_threads=args.threads, verbose=not args.quiet)
    df = _read(args.events, args)
    X = InteractionMatrix.from_events(df)
    n_before, start = est.n_items_, time.perf_counter()
    try:
        est.partial_fit(X, epochs=args.epochs, count_decay=args.count_decay)
    except (ValueError, TypeError) as exc:  # partial_fit names its argument X: say the file
        raise ValueError(re.sub(r"\bX\b", lambda _: args.events, str(exc))) from None
    except KeyboardInterrupt:  # an update is all or nothing
        print(f"interrupted: {args.model} was not updated and nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - start
    _save_model(est, args.out)
    if not args.quiet:
        print(
            f"updated {est.name} on {X.num_interactions} events in {seconds:.1f} s: "
            f"{est.n_items_ - n_before} new items ({est.n_items_} in all); saved to {args.out}"
        )
    return 0


def _popularity_ranks(train_items: np.ndarray, n_items: int, targets: np.ndarray) -> np.ndarray:
    counts = np.bincount(train_items, minlength=n_items)
    # Conservative: every item at least as popular as the target ranks ahead of it.
    sorted_counts = np.sort(counts)
    return n_items - np.searchsorted(sorted_counts, counts[targets], side="left")


# What the demo sets beyond --preset: a fixed seed, so that it prints the same numbers each run.
DEMO_PARAMS: dict[str, Any] = {"seed": 0}


def _demo_split(df, test_share: float, source: str, generated: bool = False):
    """Train and test events: the test sessions start in the last ``test_share`` of the span
    of session start times.

    The span of start times, not of all events: a long last session can outlast every later
    start by more than the share, which would leave no session starting in the test window.
    On ``generated`` data too small for the share to hold a session that can be tested, the
    test set is the fewest last sessions that hold one (with a warning).
    """
    from .. import datasets

    more = "use more --sessions" if generated else "give more data or a larger --test-share"
    starts = df.groupby(datasets.SESSION, sort=False)[datasets.TIME].min()
    first, last = starts.min(), starts.max()
    if len(starts) < 2:
        fewer = "use more --sessions" if generated else "give more sessions"
        raise ValueError(f"{source}: one session; a split into train and test needs two; {fewer}")
    if last <= first:
        if df[datasets.TIME].max() == df[datasets.TIME].min():
            raise ValueError(f"{source}: every event has the same time, so no split by time exists")
        # No share helps: every session falls on the same side of any cutoff.
        raise ValueError(
            f"{source}: all {len(starts)} sessions start at the same time (are the times "
            "positions within each session?); use --time-col none (the file order) or real "
            "timestamps"
        )
    cutoff = last - float(last - first) * test_share
    train_df, test_df = _split_at(df, cutoff, last)
    if len(test_df) == 0 and generated:
        later = np.sort(starts.to_numpy())[::-1][1:-1]  # the first session stays in train
        for at in later[later < cutoff][:_MORE_TEST_SESSIONS]:
            train_df, test_df = _split_at(df, at, last)
            if len(test_df):
                _warn(
                    f"{source}: no session starting in the last {test_share:g} of the span of "
                    f"session starts can be tested; the test set is the last "
                    f"{int((starts >= at).sum())} sessions"
                )
                cutoff = at
                break
    if len(test_df) == 0:
        n_test = int((starts >= cutoff).sum())
        raise ValueError(
            f"{source}: no test session: none of the {n_test} sessions starting in the last "
            f"{test_share:g} of the span of session starts has 2 or more events with items "
            f"seen in the earlier ones; {more}"
        )
    return train_df, test_df


_MORE_TEST_SESSIONS = 100  # the most sessions the demo adds to an untestable test window


def _split_at(df, cutoff: float, last: Any):
    """:func:`datasets.time_split` with the sessions starting at or after ``cutoff`` in test."""
    from .. import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty test set is the caller's error
        return datasets.time_split(df, test_days=float(last - cutoff) / 86400.0, tmax=last)


#: Test predictions under which the demo's metrics are noise.
_FEW_PREDICTIONS = 100


def _demo(args: argparse.Namespace) -> int:
    from .. import datasets
    from ..estimator import GRU4RecNegSampling
    from ..matrix import InteractionMatrix
    from ..metrics import mrr_at_k, recall_at_k

    args.estimator = "neg-sampling"
    if not 0 < args.test_share < 1:
        raise ValueError(f"--test-share must lie between 0 and 1; got {args.test_share:g}")
    no_time = {"session_order": "random"} if args.events and _no_time(args) else {}
    est = _make_estimator(GRU4RecNegSampling, args, **DEMO_PARAMS, **no_time)
    if args.events:
        df = _read(args.events, args)
        source = args.events
    else:
        seed = est.seed if est.seed is not None else 0
        df = datasets.make_synthetic_sessions(
            n_sessions=args.sessions, n_items=args.items, seed=seed
        )
        source = f"synthetic ({args.sessions} sessions, {args.items} items)"
    train_df, test_df = _demo_split(df, args.test_share, source, not args.events)
    train = InteractionMatrix.from_events(train_df)
    test = InteractionMatrix.from_events(test_df, item_vocabulary=train.item_vocabulary)
    print(
        f"data: {source}\n"
        f"train: {train.num_interactions} events, {train.num_active_users} sessions, "
        f"{train.shape[1]} items; test: {test.num_interactions} events, "
        f"{test.num_active_users} sessions"
    )
    start = time.perf_counter()
    est.fit(train)
    fit_s = time.perf_counter() - start
    ranks = est.next_item_ranks(test)
    if len(ranks) < _FEW_PREDICTIONS:
        _warn(
            f"{source}: the test set gives only {len(ranks)} predictions, too few for the "
            "metrics below to mean much; pass a larger --test-share (the test set holds the "
            "sessions that start in the last share of the time span)"
        )
    sessions = test.session_arrays()
    has_next = np.ones(sessions.n_events, dtype=bool)
    has_next[sessions.offsets[1:] - 1] = False
    targets = sessions.items[np.flatnonzero(has_next) + 1]
    pop = _popularity_ranks(train.session_arrays().items, train.shape[1], targets)
    rows = [
        ("GRU4Rec", recall_at_k(ranks, 20), mrr_at_k(ranks, 20)),
        ("popularity", recall_at_k(pop, 20), mrr_at_k(pop, 20)),
    ]
    epochs = len(est.history_)
    print(f"\ntrained {epochs} epochs in {fit_s:.1f} s; {len(ranks)} test predictions")
    print(f"{'model':<12} {'Recall@20':>10} {'MRR@20':>10}")
    for name, rec, mrr in rows:
        print(f"{name:<12} {rec:>10.4f} {mrr:>10.4f}")
    return 0
