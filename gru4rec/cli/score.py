"""The commands that score with a saved model: ``evaluate`` and ``recommend``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from ..checks import is_int
from .io import (
    _CHUNK,
    _item_positions,
    _load_model,
    _matrix_over,
    _model_items,
    _no_known_item,
    _progress,
    _read,
    _session_chunks,
    _warn,
)


def _evaluate(args: argparse.Namespace) -> int:
    from ..datasets import SESSION
    from ..metrics import mrr_at_k, ndcg_at_k, recall_at_k

    est = _load_model(args.model)
    est.set_params(num_threads=args.threads)
    df = _read(args.events, args)
    items = _model_items(est)
    X = _matrix_over(df, items, args.events)
    if X is None:
        raise ValueError(_no_known_item(df, items, args.events))
    sessions = X.session_arrays()
    chunks = list(_session_chunks(X))
    parts = []
    with _progress(sessions.n_sessions, not args.quiet, "evaluate", "session") as bar:
        for part in chunks:
            parts.append(np.asarray(est.next_item_ranks(part, last_only=args.last_only)))
            bar.update(part.session_arrays().n_sessions)
    ranks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    n_sessions = df[SESSION].nunique()
    if len(ranks) == 0:
        raise ValueError(
            f"{args.events}: none of its {n_sessions} sessions has 2 or more events with items "
            "known to the model, so there is nothing to predict"
        )
    # Only sessions of 2 or more known events give predictions; the others are counted apart.
    n_scored = int(np.count_nonzero(np.diff(sessions.offsets) >= 2))
    result: dict[str, Any] = {
        "predictions": int(len(ranks)),
        "sessions": n_scored,
        "sessions_too_short": n_sessions - n_scored,
    }
    for k in args.k:
        result[f"Recall@{k}"] = recall_at_k(ranks, k)
        result[f"MRR@{k}"] = mrr_at_k(ranks, k)
        if args.ndcg:
            result[f"NDCG@{k}"] = ndcg_at_k(ranks, k)
    if args.json:
        print(json.dumps(result))
        return 0
    where = "last item of each session" if args.last_only else "every position"
    short = result["sessions_too_short"]
    print(
        f"{result['predictions']} predictions ({where}) in {n_scored} sessions"
        + (f" ({short} more with fewer than 2 known events not scored)" if short else "")
    )
    for key, value in result.items():
        if "@" in key:
            print(f"{key:<10} {value:.4f}")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    import pandas as pd

    from .. import datasets
    from ..inputs import item_ids

    if not is_int(args.k):
        raise ValueError(f"-k must be >= 1; got {args.k}")
    est = _load_model(args.model)
    est.set_params(num_threads=args.threads)
    df = _read(args.sessions, args)
    items = _model_items(est)
    n_file_sessions = df[datasets.SESSION].nunique()
    X = _matrix_over(df, items, args.sessions)
    blocked = _blocked(args, items)
    parts, known = [], np.zeros(0, dtype=object)
    if X is not None:
        parts.append(_top_k(est, X, items, args, blocked))
        known = X.user_vocabulary.to_raw(X.session_arrays().users)
    sessions = np.asarray(pd.unique(df[datasets.SESSION]))  # in the file's order
    cold = sessions[~pd.Index(sessions).isin(known)]
    if len(cold):
        # As recommend() in Python: a session with no known item starts from the empty state.
        _warn(
            f"{args.sessions}: {len(cold)} of {n_file_sessions} session(s) have no item known to "
            "the model: their recommendations come from the empty state (the same for each)"
        )
        top, value = est.recommend_indices(
            np.zeros(0, dtype=np.int64),
            np.zeros(2, dtype=np.int64),
            args.k,
            args.exclude_seen,
            blocked,
        )
        per = top.shape[1]
        parts.append(
            pd.DataFrame(
                {
                    "session": np.repeat(cold, per),
                    "rank": np.tile(np.arange(1, per + 1), len(cold)),
                    "item": np.tile(item_ids(top[0], items), len(cold)),
                    "score": np.tile(value[0], len(cold)),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    # Sessions in the file's order, each one's ranks in order.
    out = out.iloc[np.argsort(pd.Index(sessions).get_indexer(out["session"]), kind="stable")]
    out.columns = [args.session_col, "rank", args.item_col, "score"]
    n_sessions = len(sessions)
    if args.out in (None, "-"):
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.out, index=False)
        if not args.quiet:
            print(
                f"wrote {len(out)} recommendations for {n_sessions} sessions to {args.out}",
                file=sys.stderr,
            )
    return 0


def _blocked(args: argparse.Namespace, vocab: Any) -> np.ndarray | None:
    """The items --items / --filter-items keep out, one boolean per item (None: no filter)."""
    if args.items is None and args.filter_items is None:
        return None
    import pandas as pd

    blocked = np.zeros(len(vocab), dtype=bool)
    for flag, path in (("--items", args.items), ("--filter-items", args.filter_items)):
        if path is None:
            continue
        with open(path) as f:
            ids = [line.strip() for line in f if line.strip()]
        found = _item_positions(pd.Series(ids, dtype=object), vocab) if ids else np.zeros(0, int)
        if (found < 0).any():
            _warn(f"{flag} {path}: ignored {int((found < 0).sum())} of {len(ids)} unknown ids")
        if flag == "--items":
            blocked |= ~np.isin(np.arange(len(vocab)), found[found >= 0])
        else:
            blocked[found[found >= 0]] = True
    return blocked


def _top_k(
    est: Any, X: Any, items: Any, args: argparse.Namespace, blocked: np.ndarray | None = None
):
    """The rows session, rank, item, score of the ``args.k`` best items of each session of X."""
    import pandas as pd

    from ..inputs import item_ids

    sessions = X.session_arrays()
    n_sessions = sessions.n_sessions
    # The sessions' known items stay model indices: the estimator's recommendation path on
    # indices, a chunk of sessions at a time so that the progress bar moves.
    offsets = sessions.offsets
    ids, scores = [], []
    with _progress(n_sessions, not args.quiet, "recommend", "session") as bar:
        for start in range(0, n_sessions, _CHUNK):
            stop = min(start + _CHUNK, n_sessions)
            a, b = offsets[start], offsets[stop]
            top, value = est.recommend_indices(
                sessions.items[a:b],
                offsets[start : stop + 1] - a,
                args.k,
                args.exclude_seen,
                blocked,
            )
            ids.append(item_ids(top, items))
            scores.append(value)
            bar.update(stop - start)
    ids_all = np.concatenate(ids)
    scores_all = np.concatenate(scores)
    per_session = ids_all.shape[1]  # min(k, number of items)
    return pd.DataFrame(
        {
            "session": np.repeat(X.user_vocabulary.to_raw(sessions.users), per_session),
            "rank": np.tile(np.arange(1, per_session + 1), n_sessions),
            "item": ids_all.ravel(),
            "score": scores_all.ravel(),
        }
    )
