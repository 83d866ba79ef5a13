"""Top-k recommendations for a session table larger than memory, with Dask.

:func:`recommend_dask` maps a fitted estimator's ``recommend`` over the partitions of a Dask
DataFrame of events, each partition holding whole sessions. The model enters the task graph
once, as one key that every partition's task depends on, so each worker receives it once
however many partitions it scores. A worker holds one partition's events, its sessions' hidden
states and its ``k`` recommendations per session at a time; the catalogue is scored in chunks
of a fixed number of sessions, never as a sessions x catalogue matrix.

Requires ``dask[dataframe]`` (``pip install gru4rec[dask]``); this module imports it only when
called, and ``import gru4rec`` never does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import inputs
from .checks import check_int

__all__ = ["recommend_dask"]

#: Columns of the result besides the session and item columns.
RANK, SCORE = "rank", "score"


def _import_dask():
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(
            "recommend_dask needs dask[dataframe]: pip install 'gru4rec[dask]'"
        ) from exc
    return dask, dd


def recommend_dask(
    model: Any,
    events: Any,
    k: int = 20,
    *,
    session_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Any:
    """Top-``k`` next items for every session of a Dask DataFrame of events.

    Parameters
    ----------
    model : GRU4RecNegSampling or GRU4RecCrossEntropy
        A fitted estimator.
    events : dask.dataframe.DataFrame
        Events with a session column (or a session index) and an item column, the items as
        the raw ids the model was fitted with. Every session must lie wholly in one partition:
        e.g. ``events.set_index(session_col)`` (sorted, so equal ids share a partition) or
        ``events.shuffle(on=session_col)``; a session split over partitions would get one set
        of rows per part, each from that part's events only (this is not checked: it would
        take a pass over the data). Within a session, events are taken in the order of
        ``time_col`` when the frame has it (ties keep their row order), else in row order.
    k : int, default=20
        Recommendations per session.
    session_col, item_col, time_col : str, optional
        Column names; default to the model's ``session_col``, ``item_col`` and ``time_col``.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazily computed, one row per session and rank: ``session_col``, ``rank`` (1 = best),
        ``item_col``, ``score`` (float32), sessions in ascending id order within each
        partition. For each session, the items and scores are those of
        ``model.recommend(items_of_the_session, k)``; unknown items are skipped as there.

    Examples
    --------
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> events = dd.read_parquet("events/").set_index("session_id")  # doctest: +SKIP
    >>> recs = recommend_dask(model, events, k=20)  # doctest: +SKIP
    >>> recs.to_parquet("recommendations/")  # doctest: +SKIP
    """
    dask, dd = _import_dask()
    if not hasattr(model, "model_"):
        raise ValueError("model must be a fitted GRU4Rec estimator (call fit first)")
    check_int("k", k)
    if not isinstance(events, dd.DataFrame):
        raise ValueError(
            f"events must be a dask.dataframe.DataFrame, got {type(events).__name__}; "
            "for an in-memory table call model.recommend directly"
        )
    cols = (
        session_col if session_col is not None else model.session_col,
        item_col if item_col is not None else model.item_col,
        time_col if time_col is not None else model.time_col,
    )
    session, item, _ = cols
    if session not in events.columns and events.index.name != session:
        raise ValueError(
            f"events has no session column or index {session!r} (set session_col=...); "
            f"columns: {list(events.columns)}"
        )
    if item not in events.columns:
        raise ValueError(
            f"events has no item column {item!r} (set item_col=...); "
            f"columns: {list(events.columns)}"
        )
    # The empty frame through the same function gives the result's exact dtypes.
    meta = _recommend_partition(events._meta, model, int(k), cols)
    # One key holding the model, shared by every partition's task.
    shared = dask.delayed(model, pure=False, traverse=False)
    return events.map_partitions(
        _recommend_partition, shared, int(k), cols, meta=meta, align_dataframes=False
    )


def _recommend_partition(
    part: pd.DataFrame, model: Any, k: int, cols: tuple[str, str, str]
) -> pd.DataFrame:
    """One partition's events -> (session, rank, item, score) rows, sessions in id order."""
    session, item, time = cols
    if session not in part.columns:
        part = part.reset_index()
    keys = [session, time] if time in part.columns else [session]
    part = part.sort_values(keys, kind="stable")  # stable: ties keep their row order
    sids = part[session].to_numpy()
    starts = np.flatnonzero(np.r_[True, sids[1:] != sids[:-1]]) if len(sids) else np.zeros(0, int)
    ids = sids[starts]
    if len(ids):
        # The flat item column and the session lengths go straight to the index path.
        lengths = np.diff(np.r_[starts, len(sids)])
        items, offsets = inputs.flat_sessions(
            part[item].to_numpy(), lengths, model.item_vocabulary_, model.n_items_
        )
        idx, rec_scores = model.recommend_indices(items, offsets, k)
        rec_items = inputs.item_ids(idx, model.item_vocabulary_)
    else:  # an empty partition (or the metadata)
        rec_items, rec_scores = np.zeros((0, 0), dtype=object), np.zeros((0, 0), np.float32)
    kk = rec_items.shape[1]
    # The input's dtypes, also for the empty frame that serves as the result's metadata; a
    # categorical item column holds this partition's items only, the recommended ones are
    # any of the catalogue: they keep the type of the categories.
    item_dtype = part[item].dtype
    if isinstance(item_dtype, pd.CategoricalDtype):
        item_dtype = item_dtype.categories.dtype
    return pd.DataFrame(
        {
            session: pd.Series(np.repeat(ids, kk), dtype=part[session].dtype),
            RANK: np.tile(np.arange(1, kk + 1, dtype=np.int64), len(ids)),
            item: pd.Series(rec_items.ravel(), dtype=item_dtype),
            SCORE: rec_scores.ravel().astype(np.float32, copy=False),
        }
    )
