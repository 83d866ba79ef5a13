"""Interaction data: :class:`InteractionMatrix`, :class:`SessionArrays`, :class:`Vocabulary`.

:class:`InteractionMatrix` has the public surface of recpack's ``InteractionMatrix`` with the
same semantics. It holds one row per interaction (event): a user (session) index, an item index,
optionally a timestamp, and an interaction id (the position of the event in the frame the
matrix was first built from). Filters return a new matrix, or change this one with
``inplace=True``; the arrays inside are read-only, so a change replaces them and never alters a
matrix that shares them. :func:`to_csr_matrix`, :func:`to_binary` and
:class:`UnsupportedTypeError` are recpack's matrix utilities.

:func:`as_interaction_matrix` turns any object with an InteractionMatrix's public surface (such
as recpack's own) into this package's, through that public surface only.

The estimators read a matrix through :meth:`InteractionMatrix.session_arrays`, a flat,
order-preserving view (item index per event ordered by user, then time) computed once with numpy
and cached.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .defaults import ITEM, SESSION, TIME
from .notices import warn

__all__ = [
    "InteractionMatrix",
    "SessionArrays",
    "UnsupportedTypeError",
    "Vocabulary",
    "as_interaction_matrix",
    "is_interaction_matrix_like",
    "to_binary",
    "to_csr_matrix",
]


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


def _check_columns(df: pd.DataFrame, columns: dict[str, Any], source: Any = "df") -> None:
    """A ValueError for the first column of ``columns`` (parameter name -> column name) that
    ``df`` lacks, naming the parameter to set."""
    for arg, col in columns.items():
        if col not in df.columns:
            if col in (df.index.names or ()):
                raise ValueError(
                    f"column {col!r} is the index of {source}, not a column; move it into the "
                    "columns with reset_index()"
                )
            raise ValueError(
                f"column {col!r} not in {source} (columns {list(df.columns)}); set {arg}= to the "
                "column that holds it"
            )
        n = int((df.columns == col).sum())
        if n > 1:
            raise ValueError(f"column {col!r} ({arg}) appears {n} times in {source}; keep one")
    named = [(arg, col) for arg, col in columns.items() if col is not None]
    for i, (arg, col) in enumerate(named):
        for other, col2 in named[i + 1 :]:
            if col == col2:
                raise ValueError(
                    f"{arg} and {other} both name the column {col!r}; each must name its own"
                )


def _check_frame(df: Any, columns: dict[str, str | None], source: str = "df") -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{source} must be a pandas DataFrame, got {type(df).__name__}")
    _check_columns(df, {arg: col for arg, col in columns.items() if col is not None}, source)
    if len(df) == 0:
        raise ValueError(f"{source} is empty: an InteractionMatrix needs at least one interaction")


def _column_aliases(
    session_col: str, item_col: str, time_col: str | None, aliases: dict[str, Any]
) -> tuple[str, str, str | None]:
    """The column names, with the older keywords ``user``/``item``/``timestamp`` mapped."""
    names = {"user": session_col, "item": item_col, "timestamp": time_col}
    unknown = set(aliases) - set(names)
    if unknown:
        raise TypeError(f"from_events() got unexpected keyword arguments {sorted(unknown)}")
    defaults = {"user": SESSION, "item": ITEM, "timestamp": TIME}
    modern = {"user": "session_col", "item": "item_col", "timestamp": "time_col"}
    for old, value in aliases.items():
        if names[old] != defaults[old] and names[old] != value:
            raise TypeError(
                f"from_events() got both {modern[old]}={names[old]!r} and its older spelling "
                f"{old}={value!r}; give {modern[old]}= only"
            )
    names.update(aliases)
    return names["user"], names["item"], names["timestamp"]


def id_kind(values: Any) -> str:
    """'numbers', 'strings' or 'a mix of types': what a column or array of raw ids holds."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return "numbers"
    if arr.dtype.kind in "US":
        return "strings"
    sample = arr[:1000]
    if all(isinstance(v, str) for v in sample):
        return "strings"
    if all(isinstance(v, numbers.Number) for v in sample):
        return "numbers"
    return "a mix of types"


def _kind_hint(column: pd.Series, known: np.ndarray) -> str:
    """When a column's ids are of another kind than a vocabulary's: say so."""
    theirs, ours = id_kind(column.to_numpy()), id_kind(known)
    if theirs == ours:
        return ""
    return f"; the column holds {theirs} but the vocabulary {ours}: convert them to that type"


def _check_no_missing(s: pd.Series, col: str, what: str) -> None:
    n_missing = int(s.isna().sum())
    if n_missing:
        raise ValueError(f"column {col!r} ({what}) has {n_missing} missing values (NaN/None)")


def _factorize(s: pd.Series, col: str, arg: str) -> tuple[np.ndarray, Any]:
    try:
        return pd.factorize(s, sort=False)
    except TypeError as exc:  # e.g. unhashable ids such as lists
        raise ValueError(f"column {col!r} ({arg}) holds ids that are not hashable: {exc}") from None


def _encode_ids(
    s: pd.Series, col: str, arg: str, vocabulary: Vocabulary | None
) -> tuple[np.ndarray, Vocabulary]:
    """Dense int64 codes of raw ids and their vocabulary: ``vocabulary``'s indices (``-1``
    for ids not in it), or, without one, a new vocabulary in order of first appearance."""
    if vocabulary is not None:
        return vocabulary.index_of(s), vocabulary
    codes, uniques = _factorize(s, col, arg)
    return np.asarray(codes, dtype=np.int64), Vocabulary(np.asarray(uniques))


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
    """Validate timestamps; datetimes become seconds since the epoch (UTC): int64 when every
    time is a whole second, float64 when some have fractions (which order the events)."""
    _check_no_missing(s, col, "timestamp")
    s = _plain_times(s)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _ns_to_seconds(s.to_numpy().astype("datetime64[ns]").view(np.int64))
    if pd.api.types.is_timedelta64_dtype(s.dtype):  # e.g. time since the session's start
        return _ns_to_seconds(s.to_numpy().astype("timedelta64[ns]").view(np.int64))
    values = s.to_numpy()
    if values.dtype.kind in "OUS" and pd.api.types.infer_dtype(s, skipna=True) == "string":
        numbers = pd.to_numeric(s, errors="coerce")
        if not numbers.isna().any():  # numbers read as text (e.g. read_csv(dtype=str))
            return _timestamp_column(numbers, col)
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


def _plain_times(s: pd.Series) -> pd.Series:
    """Times held in wrappers as plain numbers, datetimes or strings: a categorical's values,
    periods' start times, and an object column's Python numbers, decimals, dates or datetimes
    (a frame built from records or concatenated with others can hold them)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    if isinstance(s.dtype, pd.PeriodDtype):
        return s.dt.to_timestamp()
    if s.dtype == object:
        kind = pd.api.types.infer_dtype(s, skipna=True)
        if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
            return pd.to_numeric(s)
        if kind in ("datetime", "datetime64", "date"):
            return pd.to_datetime(s, utc=True)
        if kind == "timedelta":
            return pd.to_timedelta(s)
    return s


def _ns_to_seconds(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds since the epoch as seconds: int64 when all are whole seconds, else float64.

    Flooring fractions away would tie events a fraction of a second apart, and ties keep
    row order, so a log whose rows are not in time order would lose its order of events.
    """
    whole = ns // 1_000_000_000
    if np.array_equal(whole * 1_000_000_000, ns):
        return whole
    return ns / 1e9


def _iso_seconds(s: pd.Series, col: str) -> np.ndarray:
    """ISO-8601 strings as seconds since the epoch (UTC; naive times are taken as UTC), as
    :func:`_ns_to_seconds` gives them."""
    try:
        t = pd.to_datetime(s, format="ISO8601", utc=True)
    except (TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # pandas goes on with advice on its own arguments, which do not apply here.
        reason = reason.split(". You might want to try")[0].rstrip(":. ")
        raise ValueError(
            f"column {col!r} (timestamp) holds strings that are not ISO-8601 times ({reason}); "
            "give numbers (seconds), datetimes or strings such as '2014-04-07T10:51:09Z'"
        ) from None
    return _ns_to_seconds(t.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64))


# --------------------------------------------------------------------------------------------
# InteractionMatrix
# --------------------------------------------------------------------------------------------


class InteractionMatrix:
    """Interactions of users (sessions) with items, with optional timestamps.

    Has the public surface of recpack's ``InteractionMatrix`` with its semantics: one row per
    interaction (a user and an item interacting twice are two rows), shape
    ``(n_users, n_items)``, filters that return a new matrix (or, with ``inplace=True``, change
    this one and return None), the history iterators as properties, and recpack's file layout
    in :meth:`save` / :meth:`load`.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per interaction, with 0-based integer user and item indices.
    item_ix : str
        Name of the item index column.
    user_ix : str
        Name of the user index column.
    timestamp_ix : str, optional
        Name of the timestamp column (numbers, or datetimes which become seconds: int64, or
        float64 when some times have fractions of a second).
    shape : (int, int), optional
        ``(n_users, n_items)``; defaults to ``(max user + 1, max item + 1)``.

    Notes
    -----
    Each interaction has an id: its row position in ``df``. Filters keep the ids of the rows
    they keep; :meth:`union` and :meth:`load` number the rows afresh, as recpack does.

    Use :meth:`from_events` to build a matrix from raw (arbitrary) ids: it then carries
    :class:`Vocabulary` objects mapping indices back to those ids.
    """

    USER_IX = "uid"
    ITEM_IX = "iid"
    TIMESTAMP_IX = "ts"
    INTERACTION_IX = "interactionid"

    @dataclass
    class InteractionMatrixProperties:
        """What :meth:`InteractionMatrix.save` writes besides the interactions."""

        num_users: int
        num_items: int
        has_timestamps: bool

        def to_dict(self) -> dict[str, Any]:
            """The properties as a plain dict."""
            return asdict(self)

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
        self._shape = (int(shape[0]), int(shape[1]))
        self.item_vocabulary: Vocabulary | None = item_vocabulary
        self.user_vocabulary: Vocabulary | None = user_vocabulary
        self._assign(uid, iid, ts, interaction_ids)

    def _assign(self, uid, iid, ts, interaction_ids) -> None:
        """Set the interaction arrays and drop every cache derived from them."""
        self._uid = _readonly(uid)
        self._iid = _readonly(iid)
        self._ts = None if ts is None else _readonly(ts)
        self._ids = _readonly(interaction_ids)
        self._session_cache: tuple[SessionArrays, np.ndarray] | None = None
        self._values_cache: sp.csr_matrix | None = None

    @classmethod
    def _from_arrays(
        cls, uid, iid, ts, interaction_ids, shape, item_vocabulary=None, user_vocabulary=None
    ) -> InteractionMatrix:
        obj = cls.__new__(cls)
        obj._init(uid, iid, ts, interaction_ids, shape, item_vocabulary, user_vocabulary)
        return obj

    def _take(self, rows: Any) -> InteractionMatrix:
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

    def _select(self, rows: Any, inplace: bool) -> InteractionMatrix | None:
        """:meth:`_take`, or with ``inplace`` keep only those rows here and return None."""
        if not inplace:
            return self._take(rows)
        self._assign(
            self._uid[rows],
            self._iid[rows],
            None if self._ts is None else self._ts[rows],
            self._ids[rows],
        )
        return None

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
        session_col: str = SESSION,
        item_col: str = ITEM,
        time_col: str | None = TIME,
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
        or ISO-8601 strings (the last two become seconds since the epoch, UTC: int64, or
        float64 when some times have fractions of a second, which then order the events);
        timedeltas (such as the time since the session's start) become seconds the same way,
        and categoricals, periods and object columns of Python numbers, decimals or dates
        are read as what they hold. ``time_col=None`` builds a matrix without timestamps.
        """
        user, item, timestamp = _column_aliases(session_col, item_col, time_col, aliases)
        return cls._from_named_events(
            df, user, item, timestamp, item_vocabulary, user_vocabulary, "df", "from_events"
        )

    @classmethod
    def _from_named_events(
        cls,
        df: pd.DataFrame,
        user: str,
        item: str,
        timestamp: str | None,
        item_vocabulary: Vocabulary | None,
        user_vocabulary: Vocabulary | None,
        source: str,
        teller: str,
    ) -> InteractionMatrix:
        """:meth:`from_events`, with ``source`` naming ``df`` in errors and ``teller`` starting
        the warning about dropped events (the estimators name the argument, e.g.
        ``validation_out``)."""
        _check_frame(df, {"session_col": user, "item_col": item, "time_col": timestamp}, source)
        _check_no_missing(df[user], user, "user")
        _check_no_missing(df[item], item, "item")
        ts = None if timestamp is None else _timestamp_column(df[timestamp], timestamp)
        if item_vocabulary is not None and not isinstance(item_vocabulary, Vocabulary):
            raise ValueError("item_vocabulary must be a Vocabulary or None")
        if user_vocabulary is not None and not isinstance(user_vocabulary, Vocabulary):
            raise ValueError("user_vocabulary must be a Vocabulary or None")

        user_given = user_vocabulary is not None
        iid, item_vocabulary = _encode_ids(df[item], item, "item", item_vocabulary)
        uid, user_vocabulary = _encode_ids(df[user], user, "user", user_vocabulary)
        keep = (iid >= 0) & (uid >= 0)
        n_drop = int(len(df) - keep.sum())
        if n_drop:
            if n_drop == len(df):
                if user_given and not (uid >= 0).any() and (iid >= 0).any():
                    raise ValueError(
                        f"{teller}: none of the {len(df)} events belongs to a known session "
                        f"(column {user!r}; {len(user_vocabulary)} known sessions, ids such as "
                        f"{user_vocabulary.ids[:3].tolist()})"
                    )
                if not user_given:
                    raise ValueError(
                        f"{teller}: none of the {len(df)} events has an item of the given item "
                        f"vocabulary (column {item!r}; {len(item_vocabulary)} known items, such "
                        f"as {item_vocabulary.ids[:3].tolist()})"
                        + _kind_hint(df[item], item_vocabulary.ids)
                    )
                raise ValueError(
                    f"{teller}: none of the {len(df)} events has an item (column {item!r}) and "
                    f"user (column {user!r}) in the given vocabularies; check that the id types "
                    "match "
                    f"(column dtypes {df[item].dtype}/{df[user].dtype}, vocabulary dtypes "
                    f"{item_vocabulary.ids.dtype}/{user_vocabulary.ids.dtype})"
                )
            n_item = int((iid < 0).sum())
            n_user = int((uid < 0).sum())
            if user_given:
                warn(
                    f"{teller} dropped {n_drop} of {len(df)} events whose ids are not in the "
                    f"given vocabularies ({n_item} unknown items, {n_user} unknown users)"
                )
            else:
                warn(
                    f"{teller} dropped {n_drop} of {len(df)} events whose item is not in the "
                    "item vocabulary (for a fitted model: items it never saw in training; a "
                    "session goes on from its previous known item)"
                )
            uid, iid = uid[keep], iid[keep]
            ts = None if ts is None else ts[keep]
        # Interaction ids are row positions in df (kept rows only when some were dropped).
        interaction_ids = np.flatnonzero(keep).astype(np.int64)
        shape = (len(user_vocabulary), len(item_vocabulary))
        return cls._from_arrays(
            uid, iid, ts, interaction_ids, shape, item_vocabulary, user_vocabulary
        )

    @classmethod
    def from_csr_matrix(cls, X: sp.spmatrix | sp.sparray) -> InteractionMatrix:
        """Build a matrix without timestamps from a sparse count matrix.

        A cell with value ``v`` (a positive integer) becomes ``v`` interactions; zeros are not
        interactions. As in recpack, the cells holding 1 come first (row by row), then the
        cells holding more, each repeated ``v`` times; that is the interaction id order.
        """
        if not sp.issparse(X):
            raise ValueError(f"X must be a scipy sparse matrix, got {type(X).__name__}")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        csr = sp.csr_matrix(X, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        coo = csr.tocoo()  # canonical csr -> cells in row-major order
        data = np.asarray(coo.data)
        if data.size and (
            not np.all(np.isfinite(data)) or np.any(data < 0) or np.any(data != np.floor(data))
        ):
            raise ValueError("X must hold non-negative integer interaction counts")
        counts = data.astype(np.int64)
        order = np.concatenate([np.flatnonzero(counts == 1), np.flatnonzero(counts > 1)])
        rows = np.repeat(coo.row[order].astype(np.int64), counts[order])
        cols = np.repeat(coo.col[order].astype(np.int64), counts[order])
        return cls._from_arrays(rows, cols, None, np.arange(rows.shape[0], dtype=np.int64), X.shape)

    # -- recpack's file layout -----------------------------------------------------------------

    def save(self, file_prefix: str) -> None:
        """Write ``<file_prefix>.csv`` and ``<file_prefix>_properties.yaml`` (recpack's layout).

        The csv holds the columns ``interactionid, uid, iid`` (and ``ts``) with a header; the
        yaml file holds ``has_timestamps``, ``num_items`` and ``num_users``. recpack's
        ``InteractionMatrix.load`` reads these files, and :meth:`load` reads recpack's. Raw-id
        vocabularies are not part of the layout and are not written. Each file is written
        atomically (a temporary file renamed into place).
        """
        df = self.to_dataframe()
        columns = [self.INTERACTION_IX, self.USER_IX, self.ITEM_IX]
        if self.has_timestamps:
            columns.append(self.TIMESTAMP_IX)
        props = self.properties
        yaml_text = (
            f"has_timestamps: {'true' if props.has_timestamps else 'false'}\n"
            f"num_items: {props.num_items}\n"
            f"num_users: {props.num_users}\n"
        )
        _write_atomically(f"{file_prefix}.csv", df[columns].to_csv(header=True, index=False))
        _write_atomically(f"{file_prefix}_properties.yaml", yaml_text)

    @classmethod
    def load(cls, file_prefix: str) -> InteractionMatrix:
        """Read a matrix written by :meth:`save` or by recpack's ``InteractionMatrix.save``.

        As in recpack, the interactions get fresh ids ``0 .. n - 1`` in file order.
        """
        props_file = f"{file_prefix}_properties.yaml"
        with open(props_file, encoding="utf-8") as f:
            props = cls.InteractionMatrixProperties(**_read_properties(f.read(), props_file))
        df = pd.read_csv(f"{file_prefix}.csv")
        return cls(
            df,
            cls.ITEM_IX,
            cls.USER_IX,
            timestamp_ix=cls.TIMESTAMP_IX if props.has_timestamps else None,
            shape=(props.num_users, props.num_items),
        )

    # -- basic properties ----------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``."""
        return self._shape

    @property
    def properties(self) -> InteractionMatrix.InteractionMatrixProperties:
        """Number of users and items and whether there are timestamps."""
        return self.InteractionMatrixProperties(
            num_users=self._shape[0], num_items=self._shape[1], has_timestamps=self.has_timestamps
        )

    @property
    def has_timestamps(self) -> bool:
        """Whether the interactions have timestamps."""
        return self._ts is not None

    @property
    def num_interactions(self) -> int:
        """Number of interactions (events), duplicates included."""
        return int(self._uid.shape[0])

    @property
    def values(self) -> sp.csr_matrix:
        """Number of interactions per (user, item), as an int32 csr matrix (a fresh copy)."""
        if self._values_cache is None:
            data = np.ones(self._uid.shape[0], dtype=np.int32)
            m = sp.csr_matrix((data, (self._uid, self._iid)), shape=self._shape, dtype=np.int32)
            m.sum_duplicates()
            self._values_cache = m
        return self._values_cache.copy()

    @property
    def binary_values(self) -> sp.csr_matrix:
        """1 where a user interacted with an item at least once (int32 csr matrix)."""
        return to_binary(self.values)

    @property
    def density(self) -> float:
        """Fraction of the (user, item) cells with at least one interaction."""
        n_users, n_items = self._shape
        return self.values.nnz / (n_users * n_items)

    @property
    def active_users(self) -> set[int]:
        """Users with at least one interaction."""
        return {int(u) for u in np.unique(self._uid)}

    @property
    def num_active_users(self) -> int:
        """Number of users with at least one interaction."""
        return int(np.unique(self._uid).shape[0])

    @property
    def active_items(self) -> set[int]:
        """Items with at least one interaction."""
        return {int(i) for i in np.unique(self._iid)}

    @property
    def num_active_items(self) -> int:
        """Number of items with at least one interaction."""
        return int(np.unique(self._iid).shape[0])

    @property
    def timestamps(self) -> pd.Series:
        """Timestamp of each interaction in row order, indexed by a ``(uid, iid)`` MultiIndex.

        Raises AttributeError when the matrix has no timestamps.
        """
        self._require_timestamps()
        index = pd.MultiIndex.from_arrays(
            [np.asarray(self._uid), np.asarray(self._iid)], names=[self.USER_IX, self.ITEM_IX]
        )
        return pd.Series(np.array(self._ts), index=index, name=self.TIMESTAMP_IX)

    def get_timestamp(self, interaction_id: int) -> Any:
        """Timestamp of the interaction with this id.

        Raises AttributeError without timestamps and KeyError for an unknown id.
        """
        self._require_timestamps()
        hit = np.flatnonzero(self._ids == interaction_id)
        if hit.size == 0:
            raise KeyError(f"Interaction ID {interaction_id} not present in data")
        return self._ts[hit[0]]

    @property
    def last_timestamps_matrix(self) -> sp.csr_matrix:
        """csr matrix holding, per (user, item), the latest timestamp of their interactions.

        Raises AttributeError when the matrix has no timestamps.
        """
        self._require_timestamps()
        key = self._uid * self._shape[1] + self._iid
        cells, inverse = np.unique(key, return_inverse=True)
        latest = np.full(cells.shape[0], np.min(self._ts) if self._ts.size else 0, self._ts.dtype)
        np.maximum.at(latest, inverse.reshape(-1), self._ts)
        rows, cols = np.divmod(cells, self._shape[1]) if cells.size else (cells, cells)
        return sp.csr_matrix((latest, (rows, cols)), shape=self._shape)

    def eliminate_timestamps(self, inplace: bool = False) -> InteractionMatrix | None:
        """The matrix without timestamps (``inplace``: drop them here and return None)."""
        target = self if inplace else self.copy()
        target._assign(target._uid, target._iid, None, target._ids)
        return None if inplace else target

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
        """An independent matrix with the same content.

        The interaction arrays are read-only and every change (also ``inplace``) replaces
        them, so the copy shares them safely.
        """
        return self._take(slice(None))

    def union(self, im: Any) -> InteractionMatrix:
        """The interactions of this matrix followed by those of ``im``, ids numbered afresh.

        Both must have the same shape and both or neither have timestamps (ValueError
        otherwise); vocabularies, when both have one, must be the same. ``im`` may be any
        object with an InteractionMatrix's public surface.
        """
        other = as_interaction_matrix(im, "im")
        if self.has_timestamps != other.has_timestamps:
            which = "this" if self.has_timestamps else "the other"
            raise ValueError(
                "both matrices must have timestamps, or neither; only "
                f"{which} InteractionMatrix has timestamps"
            )
        if self.shape != other.shape:
            raise ValueError(
                f"shapes don't match: this InteractionMatrix has shape {self.shape}, "
                f"the other {other.shape}"
            )
        vocabularies = []
        for name in ("item_vocabulary", "user_vocabulary"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine is not theirs:
                if not np.array_equal(mine.ids, theirs.ids):
                    kind = name.split("_")[0]
                    raise ValueError(
                        f"the two matrices number their {kind}s differently "
                        f"(different {kind} vocabularies)"
                    )
            vocabularies.append(mine if mine is not None else theirs)
        ts = None if self._ts is None else np.concatenate([self._ts, other._ts])
        n = self.num_interactions + other.num_interactions
        return type(self)._from_arrays(
            np.concatenate([self._uid, other._uid]),
            np.concatenate([self._iid, other._iid]),
            ts,
            np.arange(n, dtype=np.int64),
            self._shape,
            *vocabularies,
        )

    def __add__(self, other: Any) -> InteractionMatrix:
        return self.union(other)

    def users_in(self, U: Any, inplace: bool = False) -> InteractionMatrix | None:
        """Interactions of the users in ``U`` (a set or list of user indices) only."""
        return self._select(np.isin(self._uid, _as_index_array(U, "U")), inplace)

    def items_in(self, I: Any, inplace: bool = False) -> InteractionMatrix | None:  # noqa: E741
        """Interactions with the items in ``I`` (a set or list of item indices) only."""
        return self._select(np.isin(self._iid, _as_index_array(I, "I")), inplace)

    def interactions_in(
        self, interaction_ids: Any, inplace: bool = False
    ) -> InteractionMatrix | None:
        """The interactions with these ids only.

        Warns (UserWarning) about ids not in the matrix, and when ``interaction_ids`` is empty.
        """
        ids = _as_index_array(interaction_ids, "interaction_ids")
        unknown = np.setdiff1d(ids, self._ids)
        if unknown.size:
            warn(f"IDs {set(unknown.tolist())} not present in data")
        if ids.size == 0:
            warn("No interaction IDs given, returning empty InteractionMatrix.")
        return self._select(np.isin(self._ids, ids), inplace)

    def indices_in(self, u_i_lists: Any, inplace: bool = False) -> InteractionMatrix | None:
        """The interactions of the given (user, item) pairs, pair by pair.

        ``u_i_lists`` is ``(users, items)``, two sequences of equal length. As in recpack, the
        result lists the interactions of the first pair (in row order), then of the second,
        and so on, so a pair given twice gives its interactions twice. A pair without
        interactions is a KeyError.
        """
        try:
            users, items = u_i_lists
        except (TypeError, ValueError):
            raise ValueError("u_i_lists must be a pair (users, items)") from None
        users = _as_index_array(users, "u_i_lists[0]")
        items = _as_index_array(items, "u_i_lists[1]")
        if users.shape != items.shape:
            raise ValueError(
                f"u_i_lists: {users.size} users but {items.size} items; both lists need one "
                "entry per pair"
            )
        n_items = max(self._shape[1], int(items.max()) + 1 if items.size else 0)
        key = self._uid * n_items + self._iid
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        wanted = users * n_items + items
        lo = np.searchsorted(sorted_key, wanted, side="left")
        hi = np.searchsorted(sorted_key, wanted, side="right")
        counts = hi - lo
        if np.any(counts == 0):
            missing = np.column_stack([users, items])[counts == 0][:10].tolist()
            raise KeyError(f"(user, item) pairs without interactions: {missing}")
        start = np.repeat(lo - np.cumsum(counts) + counts, counts)
        rows = order[start + np.arange(int(counts.sum()))]
        return self._select(rows, inplace)

    def timestamps_lt(self, timestamp: float, inplace: bool = False) -> InteractionMatrix | None:
        """Interactions with timestamp < ``timestamp`` (KeyError without timestamps)."""
        return self._select(self._timestamps_for("timestamps_lt") < timestamp, inplace)

    def timestamps_lte(self, timestamp: float, inplace: bool = False) -> InteractionMatrix | None:
        """Interactions with timestamp <= ``timestamp`` (KeyError without timestamps)."""
        return self._select(self._timestamps_for("timestamps_lte") <= timestamp, inplace)

    def timestamps_gt(self, timestamp: float, inplace: bool = False) -> InteractionMatrix | None:
        """Interactions with timestamp > ``timestamp`` (KeyError without timestamps)."""
        return self._select(self._timestamps_for("timestamps_gt") > timestamp, inplace)

    def timestamps_gte(self, timestamp: float, inplace: bool = False) -> InteractionMatrix | None:
        """Interactions with timestamp >= ``timestamp`` (KeyError without timestamps)."""
        return self._select(self._timestamps_for("timestamps_gte") >= timestamp, inplace)

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

    @property
    def binary_item_history(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(user, items)`` per active user, users ascending; each item once, in the order
        of its first interaction (row order)."""
        if self._uid.size == 0:
            return iter(())
        key = self._uid * self._shape[1] + self._iid
        _, first = np.unique(key, return_index=True)
        first.sort()
        return _grouped(self._uid[first], self._iid[first])

    @property
    def interaction_history(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(user, interaction ids)`` per active user, users ascending, ids in row order."""
        return _grouped(self._uid, self._ids)

    @property
    def sorted_item_history(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(user, items)`` per active user, users ascending, items by timestamp.

        Interactions with equal timestamps keep their row order. Raises AttributeError when
        the matrix has no timestamps.
        """
        self._require_timestamps()
        s = self.session_arrays()
        return _split(s.users, s.items, s.offsets)

    @property
    def sorted_interaction_history(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(user, interaction ids)`` per active user, in :attr:`sorted_item_history` order.

        Raises AttributeError when the matrix has no timestamps.
        """
        self._require_timestamps()
        s, order = self._sessions()
        return _split(s.users, self._ids[order], s.offsets)

    def _require_timestamps(self) -> None:
        if self._ts is None:
            raise AttributeError("this InteractionMatrix has no timestamps")

    def _timestamps_for(self, what: str) -> np.ndarray:
        if self._ts is None:
            raise KeyError(f"{what} needs timestamps, and this InteractionMatrix has none")
        return self._ts


def _grouped(keys: np.ndarray, values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(key, values of that key in their order)`` per distinct key, keys ascending."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else keys
    offsets = np.r_[starts, keys.size]
    return _split(keys[starts], values, offsets)


def _split(
    keys: np.ndarray, values: np.ndarray, offsets: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    for k in range(keys.shape[0]):
        yield int(keys[k]), values[offsets[k] : offsets[k + 1]]


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_YAML_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _read_properties(text: str, filename: str) -> dict[str, Any]:
    """The ``key: value`` lines of a properties file (the flat yaml that recpack writes)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line == "---":
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{filename}: cannot read the line {line!r} (want 'key: value')")
        key, value = key.strip(), value.strip()
        if key == "has_timestamps":
            if value.lower() not in _YAML_BOOLS:
                raise ValueError(f"{filename}: has_timestamps must be true or false, got {value!r}")
            out[key] = _YAML_BOOLS[value.lower()]
        elif key in ("num_users", "num_items"):
            try:
                out[key] = int(value)
            except ValueError:
                raise ValueError(f"{filename}: {key} must be an integer, got {value!r}") from None
        else:
            raise ValueError(f"{filename}: unknown property {key!r}")
    missing = {"has_timestamps", "num_users", "num_items"} - set(out)
    if missing:
        raise ValueError(f"{filename} lacks {sorted(missing)}")
    return out


def _as_index_array(values: Any, arg: str) -> np.ndarray:
    if isinstance(values, set | frozenset):
        values = list(values)
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{arg} must be integer indices, got dtype {arr.dtype}")
    return arr.ravel().astype(np.int64, copy=False)


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
        # recpack's wording is kept as well: code written against its messages matches on it.
        recpack_words = []
        if n_users < need[0]:
            recpack_words.append(
                f"can't have fewer rows than maximal user identifier ({n_users} < {need[0]})"
            )
        if n_items < need[1]:
            recpack_words.append(
                f"can't have fewer columns than maximal item identifier ({n_items} < {need[1]})"
            )
        raise ValueError(
            f"shape {tuple(shape)} is smaller than the ids need: at least {need} "
            f"(max user index + 1, max item index + 1); {'; '.join(recpack_words)}"
        )
    return int(n_users), int(n_items)


# --------------------------------------------------------------------------------------------
# Conversions (recpack's matrix utilities) and objects with the same public surface
# --------------------------------------------------------------------------------------------


class UnsupportedTypeError(Exception):
    """Raised by :func:`to_csr_matrix` for an object that is not a supported matrix type.

    Parameters
    ----------
    X : object
        The object received.
    """

    def __init__(self, X: Any):
        super().__init__(
            "supported matrix types are InteractionMatrix and csr_matrix; "
            f"received {type(X).__name__}"
        )


def to_binary(X: sp.csr_matrix) -> sp.csr_matrix:
    """``X`` with every nonzero value set to 1, in ``X``'s dtype."""
    return X.astype(bool).astype(X.dtype)


def to_csr_matrix(X: Any, binary: bool = False) -> Any:
    """A csr matrix from an :class:`InteractionMatrix` (its :attr:`~InteractionMatrix.values`)
    or a ``csr_matrix`` (itself); a tuple or list of them gives a tuple or list.

    Parameters
    ----------
    X : InteractionMatrix, scipy.sparse.csr_matrix, or a tuple or list of them
        Objects with an InteractionMatrix's public surface count as InteractionMatrix.
    binary : bool, default False
        Set every nonzero value to 1.

    Raises
    ------
    UnsupportedTypeError
        For any other type (a dense array, another sparse format, ...).
    """
    if isinstance(X, tuple | list):
        return type(X)(to_csr_matrix(x, binary=binary) for x in X)
    if isinstance(X, sp.csr_matrix):
        out = X
    elif isinstance(X, InteractionMatrix) or is_interaction_matrix_like(X):
        out = X.values
    else:
        raise UnsupportedTypeError(X)
    return to_binary(out) if binary else out


# The public members whose presence makes an object count as an InteractionMatrix: those the
# conversion reads, and the sorted history that marks an interaction log (not any sparse array).
_SURFACE = ("shape", "values", "has_timestamps", "timestamps", "sorted_item_history")


def is_interaction_matrix_like(obj: Any) -> bool:
    """Whether ``obj`` has an InteractionMatrix's public surface (recpack's, for instance).

    Looks the members up without running them (a ``timestamps`` property raises on a matrix
    without timestamps, and ``values`` may be costly).
    """
    if isinstance(obj, InteractionMatrix):
        return True
    if isinstance(obj, type) or sp.issparse(obj) or isinstance(obj, pd.DataFrame):
        return False
    for name in _SURFACE:
        try:
            inspect.getattr_static(obj, name)
        except AttributeError:
            return False
    return True


def as_interaction_matrix(obj: Any, what: str = "X") -> InteractionMatrix:
    """``obj`` as an :class:`InteractionMatrix` of this package.

    An InteractionMatrix comes back unchanged. An object with an InteractionMatrix's public
    surface (recpack's ``InteractionMatrix``, for instance) is converted through that
    surface only: its ``timestamps`` series (user, item and timestamp of each interaction, in
    its row order) when it has timestamps, else its ``values`` counts. The result has the
    same shape; its interactions are numbered ``0 .. n - 1`` in the object's row order.

    Parameters
    ----------
    obj : object
        The matrix.
    what : str, default "X"
        The name used for ``obj`` in error messages.

    Raises
    ------
    TypeError
        For anything else, a scipy sparse matrix included (it has no timestamps, so it
        cannot give the order of the events), with a message saying what to pass.
    """
    if isinstance(obj, InteractionMatrix):
        return obj
    if is_interaction_matrix_like(obj):
        return _convert_matrix_like(obj, what)
    if sp.issparse(obj):
        raise TypeError(
            f"{what} is a scipy sparse matrix ({type(obj).__name__}), which has no timestamps "
            "and so no order of events; pass an InteractionMatrix with timestamps, "
            "e.g. InteractionMatrix(df, item_ix, user_ix, timestamp_ix=...) or "
            "InteractionMatrix.from_events(df), or a DataFrame of events "
            "(InteractionMatrix.from_csr_matrix(X) converts counts without timestamps)"
        )
    raise TypeError(
        f"{what} must be an InteractionMatrix (this package's, or an object with its public "
        "surface such as recpack's) or a DataFrame of events; got "
        f"{type(obj).__module__}.{type(obj).__name__}"
    )


def _convert_matrix_like(obj: Any, what: str) -> InteractionMatrix:
    shape = obj.shape
    try:
        n_users, n_items = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{what}.shape must be a pair (n_users, n_items), got {shape!r}") from None
    if not obj.has_timestamps:
        counts = obj.values
        if not sp.issparse(counts) or counts.shape != (n_users, n_items):
            raise TypeError(f"{what}.values must be a sparse matrix of shape {(n_users, n_items)}")
        return InteractionMatrix.from_csr_matrix(counts)
    series = obj.timestamps
    if not isinstance(series, pd.Series) or series.index.nlevels != 2:
        raise TypeError(
            f"{what}.timestamps must be a pandas Series indexed by (user, item); "
            f"got {type(series).__name__}"
        )
    uid = _index_column(
        pd.Series(series.index.get_level_values(0)), "user level", f"{what}.timestamps"
    )
    iid = _index_column(
        pd.Series(series.index.get_level_values(1)), "item level", f"{what}.timestamps"
    )
    ts = _timestamp_column(series.reset_index(drop=True), f"{what}.timestamps")
    if uid.size and (uid.max() >= n_users or iid.max() >= n_items):
        raise ValueError(
            f"{what}: user or item indices beyond its shape {(n_users, n_items)} "
            f"(max {int(uid.max())}, {int(iid.max())})"
        )
    ids = np.arange(uid.shape[0], dtype=np.int64)
    return InteractionMatrix._from_arrays(uid, iid, ts, ids, (n_users, n_items))
