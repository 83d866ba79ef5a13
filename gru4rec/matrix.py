"""Interaction data: :class:`InteractionMatrix`, :class:`SessionArrays`, :class:`Vocabulary`.

:class:`InteractionMatrix` re-implements the part of recpack's ``InteractionMatrix`` API that a
recpack user touches. It holds one row per interaction (event): a user (session) index, an item
index, optionally a timestamp, and an interaction id (the position of the event in the frame the
matrix was first built from). The matrix is immutable: every method returns a new object and the
arrays inside are read-only.

The estimators read a matrix through :meth:`InteractionMatrix.session_arrays`, a flat,
order-preserving view (item index per event ordered by user, then time) computed once with numpy
and cached.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["InteractionMatrix", "SessionArrays", "Vocabulary"]


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------------------------
# SessionArrays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionArrays:
    """The events of a matrix as flat arrays, grouped by user (session) and ordered by time.

    Attributes
    ----------
    items : np.ndarray of int64, shape (n_events,)
        Item index of each event, ordered by user ascending, then by timestamp. The sort is
        stable: events with equal timestamps (or all events, without timestamps) keep the
        order of the matrix's rows.
    offsets : np.ndarray of int64, shape (n_sessions + 1,)
        Session ``s`` is ``items[offsets[s]:offsets[s + 1]]``; ``offsets[0] == 0``.
    users : np.ndarray of int64, shape (n_sessions,)
        User (row) index of each session, strictly ascending. Only users with at least one
        event appear.
    timestamps : np.ndarray or None, shape (n_events,)
        Timestamp of each event, aligned with ``items``; None when the matrix has none.
    start_times : np.ndarray or None, shape (n_sessions,)
        Timestamp of the first event of each session; None without timestamps.
    """

    items: np.ndarray
    offsets: np.ndarray
    users: np.ndarray
    timestamps: np.ndarray | None = None
    start_times: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        """Number of events."""
        return int(self.items.shape[0])

    @property
    def n_sessions(self) -> int:
        """Number of sessions (users with at least one event)."""
        return int(self.users.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Number of events of each session, shape (n_sessions,)."""
        return np.diff(self.offsets)


def _bits(x: int) -> int:
    return max(1, int(x).bit_length())


def _stable_order(uid: np.ndarray, ts: np.ndarray | None) -> np.ndarray:
    """Row permutation sorting by (user, timestamp), ties in row order.

    Packs (user, timestamp rank, row) into one unique int64 key per row and sorts the keys:
    unique keys make any sort stable, and numpy's plain integer sort is several times faster
    than ``np.lexsort``. Falls back to ``np.lexsort`` (stable) when the key needs > 63 bits.
    """
    n = uid.shape[0]
    row_bits = _bits(n - 1)
    user_bits = _bits(uid.max())
    rank: np.ndarray | None = None
    rank_bits = 0
    if ts is not None:
        if ts.dtype.kind in "iu":
            lo = int(ts.min())
            span_bits = _bits(int(ts.max()) - lo)
            if user_bits + span_bits + row_bits <= 63:
                rank, rank_bits = ts.astype(np.int64) - lo, span_bits
        if rank is None:
            _, rank = np.unique(ts, return_inverse=True)
            rank = rank.reshape(-1).astype(np.int64, copy=False)
            rank_bits = _bits(rank.max())
    if user_bits + rank_bits + row_bits > 63:
        if ts is None:
            return np.argsort(uid, kind="stable").astype(np.int64, copy=False)
        return np.lexsort((ts, uid)).astype(np.int64, copy=False)
    key = uid.astype(np.int64) << (rank_bits + row_bits)
    if rank is not None:
        key |= rank << row_bits
    key |= np.arange(n, dtype=np.int64)
    key.sort()
    key &= (1 << row_bits) - 1
    return key


def _build_session_arrays(
    uid: np.ndarray, iid: np.ndarray, ts: np.ndarray | None
) -> tuple[SessionArrays, np.ndarray]:
    """Sort events by (user, timestamp) stably; return the arrays and the row permutation."""
    n = uid.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        ts_empty = None if ts is None else _readonly(ts[:0].copy())
        arrays = SessionArrays(
            items=_readonly(empty.copy()),
            offsets=_readonly(np.zeros(1, dtype=np.int64)),
            users=_readonly(empty.copy()),
            timestamps=ts_empty,
            start_times=None if ts is None else _readonly(ts[:0].copy()),
        )
        return arrays, _readonly(empty.copy())

    # Fast path: rows already ordered by user, then time (the usual layout of an event log).
    # (comparisons, not np.diff, which can overflow for far-apart int64 timestamps)
    u0, u1 = uid[:-1], uid[1:]
    if ts is None:
        already = bool(np.all(u1 >= u0))
    else:
        already = bool(np.all((u1 > u0) | ((u1 == u0) & (ts[1:] >= ts[:-1]))))
    if already:
        order = np.arange(n, dtype=np.int64)
        uid_s, items = uid, iid.copy()
        ts_s = None if ts is None else ts.copy()
    else:
        order = _stable_order(uid, ts)
        uid_s = uid[order]
        items = iid[order]
        ts_s = None if ts is None else ts[order]

    starts = np.flatnonzero(uid_s[1:] != uid_s[:-1]) + 1
    offsets = np.empty(starts.shape[0] + 2, dtype=np.int64)
    offsets[0] = 0
    offsets[1:-1] = starts
    offsets[-1] = n
    first = offsets[:-1]
    users = uid_s[first].astype(np.int64, copy=True)
    start_times = None if ts_s is None else _readonly(ts_s[first].copy())
    arrays = SessionArrays(
        items=_readonly(items.astype(np.int64, copy=False)),
        offsets=_readonly(offsets),
        users=_readonly(users),
        timestamps=None if ts_s is None else _readonly(ts_s),
        start_times=start_times,
    )
    return arrays, _readonly(order)


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


class Vocabulary:
    """A bijection between raw ids (ints or strings) and dense indices ``0 .. len - 1``.

    Parameters
    ----------
    ids : array-like, 1-D
        The raw ids, unique; ``ids[k]`` is the raw id of index ``k``.
    """

    def __init__(self, ids: Any):
        arr = np.asarray(ids)
        if arr.dtype.kind in "US":  # keep strings as Python objects, like pandas does
            arr = arr.astype(object)
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
        index = pd.Index(arr)
        if index.hasnans:
            raise ValueError("ids contains missing values (NaN/None)")
        if not index.is_unique:
            dup = index[index.duplicated()][:5].tolist()
            raise ValueError(f"ids must be unique; duplicated: {dup}")
        self.ids = _readonly(arr.copy())
        self._index = index

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"Vocabulary(n={len(self)}, dtype={self.ids.dtype})"

    def __getstate__(self) -> dict:
        return {"ids": np.array(self.ids)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["ids"])

    def index_of(self, raw_ids: Any) -> np.ndarray:
        """Dense index of each raw id (int64); ``-1`` for ids not in the vocabulary."""
        values = raw_ids.to_numpy() if isinstance(raw_ids, pd.Series | pd.Index) else raw_ids
        if isinstance(values, list | tuple):
            # np.asarray would turn a list mixing ints and strings into all strings.
            values = pd.Index(values, dtype=object).to_numpy()
        values = np.asarray(values)
        if values.ndim == 0:
            values = values.reshape(1)
        if values.dtype.kind in "US":
            values = values.astype(object)
        return self._index.get_indexer(values).astype(np.int64, copy=False)

    def to_raw(self, indices: Any) -> np.ndarray:
        """Raw id of each dense index."""
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"indices must lie in [0, {len(self)}), got {idx.min()}..{idx.max()}")
        return self.ids[idx]


# --------------------------------------------------------------------------------------------
# Input validation helpers
# --------------------------------------------------------------------------------------------


def _check_frame(df: Any, columns: dict[str, str | None]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    for arg, col in columns.items():
        if col is not None and col not in df.columns:
            raise ValueError(
                f"column {col!r} not in df (columns {list(df.columns)}); set {arg}= to the "
                "column that holds it"
            )
    if len(df) == 0:
        raise ValueError("df is empty: an InteractionMatrix needs at least one interaction")


def _column_aliases(
    session_col: str, item_col: str, time_col: str | None, aliases: dict[str, Any]
) -> tuple[str, str, str | None]:
    """The column names, with the older keywords ``user``/``item``/``timestamp`` mapped."""
    names = {"user": session_col, "item": item_col, "timestamp": time_col}
    unknown = set(aliases) - set(names)
    if unknown:
        raise TypeError(f"from_events() got unexpected keyword arguments {sorted(unknown)}")
    names.update(aliases)
    return names["user"], names["item"], names["timestamp"]


def _check_no_missing(s: pd.Series, col: str, what: str) -> None:
    n_missing = int(s.isna().sum())
    if n_missing:
        raise ValueError(f"column {col!r} ({what}) has {n_missing} missing values (NaN/None)")


def _factorize(s: pd.Series, col: str, arg: str) -> tuple[np.ndarray, Any]:
    try:
        return pd.factorize(s, sort=False)
    except TypeError as exc:  # e.g. unhashable ids such as lists
        raise ValueError(f"column {col!r} ({arg}) holds ids that are not hashable: {exc}") from None


def _index_column(s: pd.Series, col: str, arg: str) -> np.ndarray:
    """Validate a column of 0-based integer indices; return int64."""
    _check_no_missing(s, col, arg)
    values = s.to_numpy()
    if values.dtype.kind in "iu":
        out = values.astype(np.int64, copy=False)
    elif values.dtype.kind == "b":
        raise ValueError(f"column {col!r} ({arg}) must hold integer indices, got booleans")
    elif values.dtype.kind != "f":
        # Object columns (e.g. strings such as '07') are raw ids, not indices.
        raise ValueError(
            f"column {col!r} ({arg}) must hold integer indices, got dtype {s.dtype}; "
            "use InteractionMatrix.from_events for raw ids"
        )
    else:
        try:
            f = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"column {col!r} ({arg}) must hold integer indices, got dtype {s.dtype}; "
                "use InteractionMatrix.from_events for raw ids"
            ) from None
        if not np.all(np.isfinite(f)) or not np.all(f == np.floor(f)):
            raise ValueError(
                f"column {col!r} ({arg}) must hold integer indices, got non-integer values; "
                "use InteractionMatrix.from_events for raw ids"
            )
        out = f.astype(np.int64)
    if out.size and out.min() < 0:
        raise ValueError(f"column {col!r} ({arg}) has negative indices (min {out.min()})")
    return out


def _timestamp_column(s: pd.Series, col: str) -> np.ndarray:
    """Validate timestamps; datetimes become int64 seconds since the epoch (UTC)."""
    _check_no_missing(s, col, "timestamp")
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ns = s.to_numpy().astype("datetime64[ns]").view(np.int64)
        return ns // 1_000_000_000
    values = s.to_numpy()
    if values.dtype.kind in "OUS" and pd.api.types.infer_dtype(s, skipna=True) == "string":
        return _iso_seconds(s, col)
    if values.dtype.kind == "b" or values.dtype.kind not in "iuf":
        raise ValueError(
            f"column {col!r} (timestamp) must hold numbers, datetimes or ISO-8601 strings, "
            f"got {s.dtype}"
        )
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(f"column {col!r} (timestamp) has non-finite values (inf)")
    if values.dtype.kind == "u":
        values = values.astype(np.int64)
    return values


def _iso_seconds(s: pd.Series, col: str) -> np.ndarray:
    """ISO-8601 strings as int64 seconds since the epoch (UTC; naive times are taken as UTC)."""
    try:
        t = pd.to_datetime(s, format="ISO8601", utc=True)
    except (TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"column {col!r} (timestamp) holds strings that are not ISO-8601 times ({reason}); "
            "give numbers (seconds), datetimes or strings such as '2014-04-07T10:51:09Z'"
        ) from None
    ns = t.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    return ns // 1_000_000_000


# --------------------------------------------------------------------------------------------
# InteractionMatrix
# --------------------------------------------------------------------------------------------


class InteractionMatrix:
    """Interactions of users (sessions) with items, with optional timestamps.

    Mirrors recpack's ``InteractionMatrix``: one row per interaction, shape
    ``(n_users, n_items)``, immutable (methods return new matrices).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per interaction, with 0-based integer user and item indices.
    item_ix : str
        Name of the item index column.
    user_ix : str
        Name of the user index column.
    timestamp_ix : str, optional
        Name of the timestamp column (numbers, or datetimes which become int64 seconds).
    shape : (int, int), optional
        ``(n_users, n_items)``; defaults to ``(max user + 1, max item + 1)``.

    Use :meth:`from_events` to build a matrix from raw (arbitrary) ids.
    """

    USER_IX = "uid"
    ITEM_IX = "iid"
    TIMESTAMP_IX = "ts"
    INTERACTION_IX = "interactionid"

    def __init__(
        self,
        df: pd.DataFrame,
        item_ix: str,
        user_ix: str,
        timestamp_ix: str | None = None,
        shape: tuple[int, int] | None = None,
    ):
        _check_frame(df, {"user_ix": user_ix, "item_ix": item_ix, "timestamp_ix": timestamp_ix})
        uid = _index_column(df[user_ix], user_ix, "user_ix")
        iid = _index_column(df[item_ix], item_ix, "item_ix")
        ts = None if timestamp_ix is None else _timestamp_column(df[timestamp_ix], timestamp_ix)
        shape = _check_shape(shape, uid, iid)
        self._init(uid, iid, ts, np.arange(uid.shape[0], dtype=np.int64), shape, None, None)

    # -- internal construction ---------------------------------------------------------------

    def _init(self, uid, iid, ts, interaction_ids, shape, item_vocabulary, user_vocabulary):
        self._uid = _readonly(uid)
        self._iid = _readonly(iid)
        self._ts = None if ts is None else _readonly(ts)
        self._ids = _readonly(interaction_ids)
        self._shape = (int(shape[0]), int(shape[1]))
        self.item_vocabulary: Vocabulary | None = item_vocabulary
        self.user_vocabulary: Vocabulary | None = user_vocabulary
        self._session_cache: tuple[SessionArrays, np.ndarray] | None = None
        self._values_cache: sp.csr_matrix | None = None

    @classmethod
    def _from_arrays(
        cls, uid, iid, ts, interaction_ids, shape, item_vocabulary=None, user_vocabulary=None
    ) -> InteractionMatrix:
        obj = cls.__new__(cls)
        obj._init(uid, iid, ts, interaction_ids, shape, item_vocabulary, user_vocabulary)
        return obj

    def _take(self, rows: np.ndarray) -> InteractionMatrix:
        """A matrix of the same shape and vocabularies holding the given rows (mask or indices)."""
        return type(self)._from_arrays(
            self._uid[rows],
            self._iid[rows],
            None if self._ts is None else self._ts[rows],
            self._ids[rows],
            self._shape,
            self.item_vocabulary,
            self.user_vocabulary,
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_session_cache"] = None
        state["_values_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for name in ("_uid", "_iid", "_ts", "_ids"):
            a = getattr(self, name)
            if a is not None:
                a.setflags(write=False)

    # -- construction from raw ids -----------------------------------------------------------

    @classmethod
    def from_events(
        cls,
        df: pd.DataFrame,
        session_col: str = "session_id",
        item_col: str = "item_id",
        time_col: str | None = "timestamp",
        item_vocabulary: Vocabulary | None = None,
        user_vocabulary: Vocabulary | None = None,
        **aliases: Any,
    ) -> InteractionMatrix:
        """Build a matrix from an event log with arbitrary (int or string) user and item ids.

        ``session_col``, ``item_col`` and ``time_col`` name the columns, as the estimators'
        parameters of the same names do (``user=``, ``item=`` and ``timestamp=`` are accepted
        as older spellings). Each session (user) becomes a row.

        New vocabularies number ids in their **order of first appearance** in ``df``. When
        ``item_vocabulary`` (for instance the training matrix's) is given, the matrix has
        ``len(item_vocabulary)`` columns and events whose item is not in it are dropped with a
        warning that gives their number; the session goes on from its previous known item.
        The same holds for ``user_vocabulary`` and rows. Timestamps may be numbers, datetimes
        or ISO-8601 strings (the last two become int64 seconds since the epoch, UTC);
        ``time_col=None`` builds a matrix without timestamps.
        """
        user, item, timestamp = _column_aliases(session_col, item_col, time_col, aliases)
        _check_frame(df, {"session_col": user, "item_col": item, "time_col": timestamp})
        _check_no_missing(df[user], user, "user")
        _check_no_missing(df[item], item, "item")
        ts = None if timestamp is None else _timestamp_column(df[timestamp], timestamp)
        if item_vocabulary is not None and not isinstance(item_vocabulary, Vocabulary):
            raise ValueError("item_vocabulary must be a Vocabulary or None")
        if user_vocabulary is not None and not isinstance(user_vocabulary, Vocabulary):
            raise ValueError("user_vocabulary must be a Vocabulary or None")

        keep = np.ones(len(df), dtype=bool)
        if item_vocabulary is None:
            iid, uniques = _factorize(df[item], item, "item")
            item_vocabulary = Vocabulary(np.asarray(uniques))
        else:
            iid = item_vocabulary.index_of(df[item])
            keep &= iid >= 0
        if user_vocabulary is None:
            uid, uniques = _factorize(df[user], user, "user")
            user_vocabulary = Vocabulary(np.asarray(uniques))
        else:
            uid = user_vocabulary.index_of(df[user])
            keep &= uid >= 0
        uid = np.asarray(uid, dtype=np.int64)
        iid = np.asarray(iid, dtype=np.int64)

        n_drop = int(len(df) - keep.sum())
        if n_drop:
            if n_drop == len(df):
                raise ValueError(
                    f"none of the {len(df)} events has an item (column {item!r}) and user "
                    f"(column {user!r}) in the given vocabularies; check that the id types match "
                    f"(column dtypes {df[item].dtype}/{df[user].dtype}, vocabulary dtypes "
                    f"{item_vocabulary.ids.dtype}/{user_vocabulary.ids.dtype})"
                )
            n_item = int((iid < 0).sum())
            n_user = int((uid < 0).sum())
            warnings.warn(
                f"from_events dropped {n_drop} of {len(df)} events whose ids are not in the given "
                f"vocabulary ({n_item} unknown items, {n_user} unknown users)",
                UserWarning,
                stacklevel=2,
            )
            uid, iid = uid[keep], iid[keep]
            ts = None if ts is None else ts[keep]
        # Interaction ids are row positions in df (kept rows only when some were dropped).
        interaction_ids = np.flatnonzero(keep).astype(np.int64)
        shape = (len(user_vocabulary), len(item_vocabulary))
        return cls._from_arrays(
            uid,
            iid,
            ts,
            interaction_ids,
            shape,
            item_vocabulary,
            user_vocabulary,
        )

    @classmethod
    def from_csr_matrix(cls, X: sp.spmatrix | sp.sparray) -> InteractionMatrix:
        """Build a matrix without timestamps from a sparse count matrix.

        A cell with value ``v`` (a positive integer) becomes ``v`` interactions; explicit zeros
        are not interactions.
        """
        if not sp.issparse(X):
            raise ValueError(f"X must be a scipy sparse matrix, got {type(X).__name__}")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        coo = sp.coo_matrix(X)
        data = np.asarray(coo.data)
        nz = data != 0
        data = data[nz]
        if data.size and (
            not np.all(np.isfinite(data)) or np.any(data < 0) or np.any(data != np.floor(data))
        ):
            raise ValueError("X must hold non-negative integer interaction counts")
        counts = data.astype(np.int64)
        rows = np.repeat(coo.row[nz].astype(np.int64), counts)
        cols = np.repeat(coo.col[nz].astype(np.int64), counts)
        # Order interactions by row, then column, as a csr walk would.
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
        return cls._from_arrays(rows, cols, None, np.arange(rows.shape[0], dtype=np.int64), X.shape)

    # -- basic properties ----------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return self._shape

    @property
    def has_timestamps(self) -> bool:
        return self._ts is not None

    @property
    def num_interactions(self) -> int:
        """Number of interactions (events), duplicates included."""
        return int(self._uid.shape[0])

    @property
    def values(self) -> sp.csr_matrix:
        """Counts of interactions per (user, item) as a float64 csr matrix (a fresh copy)."""
        if self._values_cache is None:
            data = np.ones(self._uid.shape[0], dtype=np.float64)
            m = sp.csr_matrix((data, (self._uid, self._iid)), shape=self._shape)
            m.sum_duplicates()
            self._values_cache = m
        return self._values_cache.copy()

    @property
    def binary_values(self) -> sp.csr_matrix:
        """1.0 where a user interacted with an item at least once."""
        m = self.values
        m.data[:] = 1.0
        return m

    @property
    def active_users(self) -> set[int]:
        return {int(u) for u in np.unique(self._uid)}

    @property
    def num_active_users(self) -> int:
        return int(np.unique(self._uid).shape[0])

    @property
    def active_items(self) -> set[int]:
        return {int(i) for i in np.unique(self._iid)}

    @property
    def num_active_items(self) -> int:
        return int(np.unique(self._iid).shape[0])

    @property
    def timestamps(self) -> pd.Series:
        """Timestamp of each interaction, indexed by a ``(uid, iid)`` MultiIndex."""
        self._require_timestamps("timestamps")
        index = pd.MultiIndex.from_arrays(
            [np.asarray(self._uid), np.asarray(self._iid)], names=[self.USER_IX, self.ITEM_IX]
        )
        return pd.Series(np.asarray(self._ts), index=index, name=self.TIMESTAMP_IX)

    @property
    def interaction_ids(self) -> np.ndarray:
        """Interaction id of each row (its position in the frame the data came from)."""
        return self._ids

    @property
    def item_ids(self) -> np.ndarray | None:
        """Raw item id of each column, or None for a matrix built from indices."""
        return None if self.item_vocabulary is None else self.item_vocabulary.ids

    @property
    def user_ids(self) -> np.ndarray | None:
        """Raw user id of each row, or None for a matrix built from indices."""
        return None if self.user_vocabulary is None else self.user_vocabulary.ids

    @property
    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` of the nonzero cells of :attr:`values`."""
        return self.nonzero()

    def nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` of the nonzero cells of :attr:`values`."""
        return self.values.nonzero()

    def __len__(self) -> int:
        return self._shape[0]

    def __repr__(self) -> str:
        return (
            f"InteractionMatrix(shape={self._shape}, interactions={self.num_interactions}, "
            f"timestamps={self.has_timestamps}, raw_ids={self.item_vocabulary is not None})"
        )

    def to_dataframe(self, raw_ids: bool = False) -> pd.DataFrame:
        """The interactions as a frame with columns uid, iid, (ts), interactionid.

        With ``raw_ids=True`` (and vocabularies), uid and iid hold the raw ids instead.
        """
        uid, iid = np.asarray(self._uid), np.asarray(self._iid)
        if raw_ids:
            if self.user_vocabulary is None or self.item_vocabulary is None:
                raise ValueError("raw_ids=True needs a matrix built with from_events")
            uid, iid = self.user_vocabulary.to_raw(uid), self.item_vocabulary.to_raw(iid)
        cols = {self.USER_IX: uid, self.ITEM_IX: iid}
        if self._ts is not None:
            cols[self.TIMESTAMP_IX] = np.asarray(self._ts)
        cols[self.INTERACTION_IX] = np.asarray(self._ids)
        return pd.DataFrame(cols)

    # -- derived matrices ------------------------------------------------------------------------

    def copy(self) -> InteractionMatrix:
        """A new matrix with the same content (arrays are immutable, so they are shared)."""
        return self._take(slice(None))

    def users_in(self, users: Any, inplace: bool = False) -> InteractionMatrix:
        """Interactions of the given users only (same shape)."""
        _no_inplace(inplace)
        return self._take(np.isin(self._uid, _as_index_array(users, "users")))

    def items_in(self, items: Any, inplace: bool = False) -> InteractionMatrix:
        """Interactions with the given items only (same shape)."""
        _no_inplace(inplace)
        return self._take(np.isin(self._iid, _as_index_array(items, "items")))

    def timestamps_lt(self, timestamp: float, inplace: bool = False) -> InteractionMatrix:
        """Interactions with timestamp < ``timestamp``."""
        _no_inplace(inplace)
        self._require_timestamps("timestamps_lt")
        return self._take(self._ts < timestamp)

    def timestamps_lte(self, timestamp: float, inplace: bool = False) -> InteractionMatrix:
        """Interactions with timestamp <= ``timestamp``."""
        _no_inplace(inplace)
        self._require_timestamps("timestamps_lte")
        return self._take(self._ts <= timestamp)

    def timestamps_gt(self, timestamp: float, inplace: bool = False) -> InteractionMatrix:
        """Interactions with timestamp > ``timestamp``."""
        _no_inplace(inplace)
        self._require_timestamps("timestamps_gt")
        return self._take(self._ts > timestamp)

    def timestamps_gte(self, timestamp: float, inplace: bool = False) -> InteractionMatrix:
        """Interactions with timestamp >= ``timestamp``."""
        _no_inplace(inplace)
        self._require_timestamps("timestamps_gte")
        return self._take(self._ts >= timestamp)

    def __getitem__(self, key: Any) -> InteractionMatrix:
        """Row selection (users), as sklearn's splitters index ``X[rows]`` / ``X[rows, ...]``.

        Returns :meth:`users_in` of the selected rows, with the same shape.
        """
        if isinstance(key, tuple):
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            elif len(key) == 2 and isinstance(key[1], slice) and key[1] == slice(None):
                key = key[0]
            else:
                raise IndexError("only row selection is supported: X[rows] or X[rows, ...]")
        rows = np.arange(self._shape[0])
        if isinstance(key, numbers.Integral):
            selected = rows[[int(key)]]
        else:
            if not isinstance(key, slice):
                key = np.asarray(key)
                if key.dtype.kind not in "biu" and key.size:
                    raise IndexError(f"rows must be integers or a boolean mask, got {key.dtype}")
                if key.size == 0:
                    key = key.astype(np.int64)
            selected = rows[key]
        return self.users_in(selected)

    # -- ordered views -------------------------------------------------------------------------

    def _sessions(self) -> tuple[SessionArrays, np.ndarray]:
        if self._session_cache is None:
            self._session_cache = _build_session_arrays(self._uid, self._iid, self._ts)
        return self._session_cache

    def session_arrays(self) -> SessionArrays:
        """The events as :class:`SessionArrays` (ordered by user, then time; cached)."""
        return self._sessions()[0]

    def _session_row_order(self) -> np.ndarray:
        """Row positions in :meth:`session_arrays` order."""
        return self._sessions()[1]

    def sorted_item_history(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(user, items)`` per active user, users ascending, items in time order.

        Equal timestamps keep the row order (stable); without timestamps the row order is used.
        """
        s = self.session_arrays()
        o = s.offsets
        for k in range(s.n_sessions):
            yield int(s.users[k]), s.items[o[k] : o[k + 1]]

    def sorted_interaction_history(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(user, interaction ids)`` per active user, in the order of
        :meth:`sorted_item_history`."""
        s, order = self._sessions()
        ids = self._ids[order]
        o = s.offsets
        for k in range(s.n_sessions):
            yield int(s.users[k]), ids[o[k] : o[k + 1]]

    def _require_timestamps(self, what: str) -> None:
        if self._ts is None:
            raise ValueError(f"{what} needs timestamps, and this matrix has none")


def _no_inplace(inplace: bool) -> None:
    if inplace:
        raise NotImplementedError("InteractionMatrix is immutable: use inplace=False")


def _as_index_array(values: Any, arg: str) -> np.ndarray:
    if isinstance(values, set | frozenset):
        values = list(values)
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{arg} must be integer indices, got dtype {arr.dtype}")
    return arr.ravel()


def _check_shape(shape: Any, uid: np.ndarray, iid: np.ndarray) -> tuple[int, int]:
    need = (int(uid.max()) + 1 if uid.size else 0, int(iid.max()) + 1 if iid.size else 0)
    if shape is None:
        return need
    try:
        n_users, n_items = shape
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair (n_users, n_items), got {shape!r}") from None
    if not isinstance(n_users, numbers.Integral) or not isinstance(n_items, numbers.Integral):
        raise ValueError(f"shape must hold integers, got {shape!r}")
    if n_users < need[0] or n_items < need[1]:
        raise ValueError(
            f"shape {tuple(shape)} is smaller than the ids need: at least {need} "
            "(max user index + 1, max item index + 1)"
        )
    return int(n_users), int(n_items)
