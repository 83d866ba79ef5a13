"""Loading, preprocessing and splitting session data, and a synthetic session generator.

Every reader returns an event log with the canonical columns ``session_id``, ``item_id`` and
``timestamp`` (int64 seconds, unless the file already held other numbers), sorted by session and
then by the exact time of the source (ties keep the file order). Filters never drop events
silently: each one logs (logger ``gru4rec.datasets``, level INFO) or warns how many it removed.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .checks import check_int
from .defaults import ITEM, SESSION, TIME
from .matrix import InteractionMatrix, _check_columns, _timestamp_column
from .notices import warn

__all__ = [
    "SESSION",
    "ITEM",
    "TIME",
    "read_events",
    "read_rsc15",
    "read_diginetica",
    "read_retailrocket",
    "preprocess",
    "time_split",
    "last_item_split",
    "make_synthetic_sessions",
]

logger = logging.getLogger(__name__)

PathArg = str | PathLike
Paths = PathArg | Sequence[PathArg]

_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip", ".zst")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _as_paths(path: Paths) -> list[Path]:
    if isinstance(path, str | PathLike):
        paths = [Path(path)]
    else:
        paths = [Path(p) for p in path]
    if not paths:
        raise ValueError("path: no file given")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"path: no such file: {p}")
    return paths


def _first_line(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        opener = gzip.open
    elif name.endswith(".bz2"):
        opener = bz2.open
    elif name.endswith(".xz"):
        opener = lzma.open
    else:
        opener = open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.readline().rstrip("\r\n")


def _guess_sep(path: Path) -> str:
    """Separator from the extension (.csv ``,``, .tsv/.tab ``\\t``), else from the first line."""
    name = path.name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".tab")):
        return "\t"
    line = _first_line(path)
    counts = {sep: line.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        raise ValueError(f"sep: cannot guess the separator of {path}; pass sep=")
    return best


def _with_sep_hint(path: Path, header: pd.DataFrame, sep: str) -> str:
    """``path`` for an error about missing columns, with the separator the header seems to
    use when it parsed into a single column holding another one."""
    if len(header.columns) == 1:
        name = str(header.columns[0])
        for other in ("\t", ";", ",", "|"):
            if other != sep and other in name:
                return (
                    f"{path}, which seems to be separated by {other!r} (pass sep={other!r}, "
                    "--sep on the command line)"
                )
    return str(path)


# Integers as a file spells them when they are numbers: no sign but '-', no leading zeros.
_CANONICAL_INT = r"-?(?:0|[1-9][0-9]{0,18})"


def _id_column(raw: pd.Series) -> pd.Series:
    """Ids read as text, typed as a whole: int64 when every id is an integer written the
    canonical way, else the strings (stripped of surrounding blanks) as in the file, so
    ``007`` stays ``'007'`` and ``123`` is one id however the rest of the column looks."""
    codes, uniques = pd.factorize(raw)
    text = pd.Series(uniques, dtype=object).str.strip()
    if bool(text.str.fullmatch(_CANONICAL_INT).all()):
        try:
            values = text.to_numpy().astype(np.int64)
        except OverflowError:  # beyond int64: keep them as strings
            values = text.to_numpy()
    else:
        values = text.to_numpy()
    return pd.Series(values[codes], index=raw.index, name=raw.name)


def _check_no_missing(df: pd.DataFrame, columns: Sequence[str], source: Any) -> None:
    for col in columns:
        n = int(df[col].isna().sum())
        if n:
            raise ValueError(f"column {col!r} has {n} missing values in {source}")


def _sorted_events(
    session: np.ndarray | pd.Series, item: np.ndarray | pd.Series, exact: np.ndarray
) -> pd.DataFrame:
    """Sort by (session, exact time) stably; ``exact`` is already in seconds (float or int)."""
    session = np.asarray(session)
    codes, _ = pd.factorize(session, sort=True)
    order = np.lexsort((exact, codes))
    exact = np.asarray(exact)[order]
    ts = np.floor(exact).astype(np.int64) if exact.dtype.kind == "f" else exact.astype(np.int64)
    return pd.DataFrame(
        {SESSION: session[order], ITEM: np.asarray(item)[order], TIME: ts}
    ).reset_index(drop=True)


def _to_seconds(value: Any, arg: str) -> float:
    """A time given as a number (seconds), a string or a datetime, as float seconds (UTC)."""
    if isinstance(value, int | float | np.integer | np.floating):
        if not np.isfinite(value):
            raise ValueError(f"{arg} must be finite, got {value}")
        return float(value)
    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(f"{arg}: cannot read {value!r} as a time") from None
    if t is pd.NaT:
        raise ValueError(f"{arg} is NaT")
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return (t - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def read_events(
    path: Paths,
    session_col: str = SESSION,
    item_col: str = ITEM,
    time_col: str | None = TIME,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a CSV/TSV event log (optionally compressed) with a header row.

    Parameters
    ----------
    path : path or sequence of paths
        File(s) to read; several files are concatenated in the given order.
    session_col, item_col, time_col : str
        Column names in the file; ``time_col=None`` reads no timestamps.
    sep : str, optional
        Field separator; by default ``,`` for ``.csv``, tab for ``.tsv``/``.tab`` (also with a
        ``.gz``/``.bz2``/``.xz``/``.zip`` suffix), otherwise guessed from the first line.

    Returns
    -------
    pandas.DataFrame
        Columns ``session_id``, ``item_id`` and ``timestamp`` (when ``time_col`` is given), in
        file order. Timestamps are numbers as in the file, or seconds (UTC) when the file
        holds ISO-8601 times such as ``2014-04-07T10:51:09.277Z`` (int64, or float64 when some
        times have fractions of a second); other strings raise ``ValueError``, as do missing
        values and a file without events. Ids are int64 when every id of the column (over all
        files) is an integer written as numbers are (no leading zeros), else strings as the
        file spells them (``007`` stays ``'007'``).
    """
    wanted = {"session_col": session_col, "item_col": item_col}
    if time_col is not None:
        wanted["time_col"] = time_col
    paths = _as_paths(path)
    frames = []
    for p in paths:
        s = sep if sep is not None else _guess_sep(p)
        try:
            header = pd.read_csv(p, sep=s, nrows=0)
        except pd.errors.EmptyDataError:  # pandas names no file
            raise ValueError(
                f"path: {p} is empty: it needs a header line naming the columns, then events"
            ) from None
        _check_columns(header, wanted, source=_with_sep_hint(p, header, s))
        # Ids are read as text and typed once over all files (_id_column): pandas types each
        # chunk of a large file on its own, so a column mixing numbers and other ids would
        # hold both 123 and '123', two items for one id.
        frame = pd.read_csv(
            p, sep=s, usecols=list(wanted.values()), dtype={session_col: str, item_col: str}
        )
        _check_no_missing(frame, list(wanted.values()), p)
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(df) == 0:
        raise ValueError(f"path: {', '.join(map(str, paths))} holds no events (only a header)")
    rename = {session_col: SESSION, item_col: ITEM}
    if time_col is not None:
        rename[time_col] = TIME
    df = df[list(wanted.values())].rename(columns=rename)
    for col in (SESSION, ITEM):
        df[col] = _id_column(df[col])
    if time_col is not None and not pd.api.types.is_numeric_dtype(df[TIME].dtype):
        # ISO-8601 strings (or anything else, which fails with the reason) become seconds.
        df[TIME] = _timestamp_column(df[TIME], time_col)
    return df


def read_rsc15(path: Paths) -> pd.DataFrame:
    """Read YOOCHOOSE / RecSys Challenge 2015 clicks.

    Two layouts are recognised from the first line of each file:

    * ``yoochoose-clicks.dat``: no header, comma separated ``SessionId,Timestamp,ItemId,Category``
      with ISO-8601 UTC timestamps (``2014-04-07T10:51:09.277Z``);
    * the prepared form with a header ``SessionId<TAB>ItemId<TAB>Time`` (float unix seconds).

    Returns the canonical columns, sorted by session and exact time (ties keep file order);
    ``timestamp`` is the floor of the time in seconds.
    """
    sessions, items, times = [], [], []
    for p in _as_paths(path):
        first = _first_line(p)
        if first.startswith("SessionId"):
            s = "\t" if "\t" in first else ","
            df = pd.read_csv(p, sep=s)
            _check_columns(df, {"SessionId": "SessionId", "ItemId": "ItemId", "Time": "Time"}, p)
            _check_no_missing(df, ["SessionId", "ItemId", "Time"], p)
            exact = df["Time"].to_numpy(dtype=np.float64)
        else:
            if first.count(",") != 3:
                raise ValueError(
                    f"path: {p} is neither yoochoose-clicks (4 comma-separated fields, no header) "
                    "nor the prepared SessionId/ItemId/Time form"
                )
            df = pd.read_csv(
                p,
                sep=",",
                header=None,
                names=["SessionId", "Timestamp", "ItemId", "Category"],
                dtype={"Category": str},
            )
            _check_no_missing(df, ["SessionId", "Timestamp", "ItemId"], p)
            t = pd.to_datetime(df["Timestamp"], format="ISO8601", utc=True)
            ns = t.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view(np.int64)
            exact = ns / 1e9
        sessions.append(df["SessionId"].to_numpy())
        items.append(df["ItemId"].to_numpy())
        times.append(exact)
    return _sorted_events(np.concatenate(sessions), np.concatenate(items), np.concatenate(times))


def read_diginetica(path: Paths) -> pd.DataFrame:
    """Read DIGINETICA (CIKM Cup 2016) ``train-item-views.csv``.

    The file is ``;``-separated with header ``session_id;user_id;item_id;timeframe;eventdate``;
    ``timeframe`` is in milliseconds since the session's first event and ``eventdate`` a day. The
    timestamp of an event is UTC midnight of its session's first ``eventdate`` (the date of the
    event with the smallest ``timeframe``) plus ``floor(timeframe / 1000)`` seconds. Rows are
    sorted by session and exact ``timeframe`` (ties keep file order).
    """
    frames = []
    for p in _as_paths(path):
        df = pd.read_csv(p, sep=";", dtype={"eventdate": str})
        cols = {c: c for c in ("session_id", "item_id", "timeframe", "eventdate")}
        _check_columns(df, cols, str(p))
        _check_no_missing(df, list(cols), p)
        frames.append(df[list(cols)])
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    session = df["session_id"].to_numpy()
    timeframe = df["timeframe"].to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(session, sort=True)
    order = np.lexsort((timeframe, codes))
    day = pd.to_datetime(df["eventdate"], format="%Y-%m-%d", utc=True)
    day_s = day.dt.tz_localize(None).to_numpy().astype("datetime64[s]").view(np.int64)
    # The first event of each session in sorted order carries the session's first date.
    codes_sorted = codes[order]
    is_first = np.ones(len(order), dtype=bool)
    is_first[1:] = codes_sorted[1:] != codes_sorted[:-1]
    first_day = np.empty(codes.max() + 1, dtype=np.int64)
    first_day[codes_sorted[is_first]] = day_s[order][is_first]
    ts = first_day[codes_sorted] + timeframe[order] // 1000
    return pd.DataFrame(
        {SESSION: session[order], ITEM: df["item_id"].to_numpy()[order], TIME: ts}
    ).reset_index(drop=True)


def read_retailrocket(
    path: Paths,
    gap_seconds: float = 1800.0,
    event_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read RetailRocket ``events.csv`` and cut each visitor's events into sessions.

    The file has the header ``timestamp,visitorid,event,itemid,transactionid`` (timestamps in
    milliseconds). Events are first restricted to ``event_types`` (e.g. ``["view"]``; default:
    all), then each visitor's events, in time order, start a new session after more than
    ``gap_seconds`` of inactivity. ``session_id`` numbers the sessions 0, 1, ... by visitor and
    time; ``timestamp`` is floor(ms / 1000).
    """
    if not np.isfinite(gap_seconds) or gap_seconds <= 0:
        raise ValueError(f"gap_seconds must be a positive number, got {gap_seconds}")
    frames = []
    for p in _as_paths(path):
        df = pd.read_csv(p, sep=",", usecols=lambda c: c != "transactionid")
        cols = {c: c for c in ("timestamp", "visitorid", "event", "itemid")}
        _check_columns(df, cols, str(p))
        _check_no_missing(df, list(cols), p)
        frames.append(df[list(cols)])
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if event_types is not None:
        keep = df["event"].isin(list(event_types)).to_numpy()
        n_drop = int((~keep).sum())
        if n_drop:
            logger.info(
                "read_retailrocket: kept event types %s, removed %d of %d events",
                list(event_types),
                n_drop,
                len(df),
            )
        df = df[keep]
    visitor = df["visitorid"].to_numpy()
    ms = df["timestamp"].to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(visitor, sort=True)
    order = np.lexsort((ms, codes))
    codes_s, ms_s = codes[order], ms[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (codes_s[1:] != codes_s[:-1]) | (np.diff(ms_s) > gap_seconds * 1000.0)
    session = np.cumsum(new) - 1
    return pd.DataFrame(
        {SESSION: session, ITEM: df["itemid"].to_numpy()[order], TIME: ms_s // 1000}
    )


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def _session_order(df: pd.DataFrame, session_col: str, time_col: str) -> tuple[np.ndarray, Any]:
    """Row order by (session, time) stably, and the session codes."""
    codes, _ = pd.factorize(df[session_col], sort=False)
    if time_col in df.columns:
        order = np.lexsort((_seconds(df[time_col], time_col), codes))
    else:
        order = np.argsort(codes, kind="stable")
    return order, codes


def _seconds(ts: pd.Series, time_col: str) -> np.ndarray:
    """Timestamps as numbers: as given, or seconds for datetimes and ISO-8601 strings."""
    if pd.api.types.is_numeric_dtype(ts.dtype) and not pd.api.types.is_bool_dtype(ts.dtype):
        return ts.to_numpy()
    return _timestamp_column(ts, time_col)


def _sizes(values: pd.Series) -> np.ndarray:
    """For each row, how many rows share its value."""
    codes, _ = pd.factorize(values, sort=False)
    return np.bincount(codes)[codes]


def _check_positive_int(value: Any, arg: str, minimum: int = 1) -> int:
    return check_int(arg, value, minimum, what=f"an integer >= {minimum}")


def _check_events(df: Any, session_col: str, item_col: str, time_col: str | None = None) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    cols = {"session_col": session_col, "item_col": item_col}
    if time_col is not None:
        cols["time_col"] = time_col
    _check_columns(df, cols)
    if len(df) == 0:
        raise ValueError("df is empty")
    _check_no_missing(df, list(cols.values()), "df")


def preprocess(
    df: pd.DataFrame,
    min_session_length: int = 2,
    min_item_support: int = 5,
    remove_consecutive_duplicates: bool = False,
    *,
    session_col: str = SESSION,
    item_col: str = ITEM,
    time_col: str = TIME,
) -> pd.DataFrame:
    """The GRU4Rec filters, in this order:

    0. optionally remove an event whose item equals the previous event's item in the same
       session (by time, stable; by row order when there is no ``time_col`` column);
    1. drop sessions with fewer than ``min_session_length`` events;
    2. drop items with fewer than ``min_item_support`` events;
    3. drop sessions with fewer than ``min_session_length`` events again.

    ``session_col``, ``item_col`` and ``time_col`` name the columns, as in the estimators.
    Each step logs how many events it removed (logger ``gru4rec.datasets``, INFO). The result
    keeps the input row order (index reset).
    """
    _check_events(df, session_col, item_col)
    min_session_length = _check_positive_int(min_session_length, "min_session_length")
    min_item_support = _check_positive_int(min_item_support, "min_item_support")
    out = df
    if remove_consecutive_duplicates:
        order, codes = _session_order(out, session_col, time_col)
        items = out[item_col].to_numpy()[order]
        sess = codes[order]
        dup_sorted = np.zeros(len(order), dtype=bool)
        dup_sorted[1:] = (sess[1:] == sess[:-1]) & (items[1:] == items[:-1])
        dup = np.zeros(len(order), dtype=bool)
        dup[order] = dup_sorted
        out = _filter(out, ~dup, "consecutive duplicates")
    out = _filter(out, _sizes(out[session_col]) >= min_session_length, "short sessions")
    out = _filter(out, _sizes(out[item_col]) >= min_item_support, "rare items")
    out = _filter(out, _sizes(out[session_col]) >= min_session_length, "short sessions (again)")
    return out.reset_index(drop=True)


def _filter(df: pd.DataFrame, keep: np.ndarray, what: str) -> pd.DataFrame:
    n_drop = int(len(keep) - np.count_nonzero(keep))
    logger.info("preprocess: %s removed %d of %d events", what, n_drop, len(keep))
    return df[keep] if n_drop else df


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def time_split(
    df: pd.DataFrame,
    test_days: float,
    tmax: Any = None,
    min_test_session_length: int = 2,
    *,
    session_col: str = SESSION,
    item_col: str = ITEM,
    time_col: str = TIME,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split an event log by session start time.

    Test = sessions whose first event is at or after ``tmax - test_days * 86400`` seconds;
    ``tmax`` defaults to the last timestamp and may be a number (seconds), a string or a
    datetime (UTC when naive). Timestamps may be numbers (seconds), datetimes or ISO-8601
    strings. Sessions starting after ``tmax`` also go to test. Every session lies wholly in
    train or in test. Test events whose item does not occur in train are then dropped (the
    session goes on from its previous known item), and test sessions left with fewer than
    ``min_test_session_length`` events are dropped. The counts are logged; an empty test set
    is also a warning that says why (for instance, every session starting at the same time,
    as when the times are positions within each session).
    ``session_col``, ``item_col`` and ``time_col`` name the columns, as in the estimators.

    Returns ``(train_df, test_df)``, each in input row order with a fresh index.
    """
    _check_events(df, session_col, item_col, time_col)
    if isinstance(test_days, bool) or not isinstance(test_days, int | float | np.number):
        raise ValueError(f"test_days must be a positive number, got {test_days!r}")
    if not np.isfinite(test_days) or test_days <= 0:
        raise ValueError(f"test_days must be a positive number, got {test_days!r}")
    min_test_session_length = _check_positive_int(
        min_test_session_length, "min_test_session_length"
    )
    ts = pd.Series(_seconds(df[time_col], time_col), index=df.index)
    t_max = float(ts.max()) if tmax is None else _to_seconds(tmax, "tmax")
    cutoff = t_max - float(test_days) * 86400.0
    start = ts.groupby(df[session_col], sort=False).transform("min").to_numpy()
    is_test = start >= cutoff
    train = df[~is_test]
    test = df[is_test]
    n_test_sessions = test[session_col].nunique()
    if len(train) == 0:
        raise ValueError(f"test_days={test_days}: every session starts after the cutoff {cutoff}")
    known = test[item_col].isin(pd.unique(train[item_col])).to_numpy()
    n_unknown = int((~known).sum())
    test = test[known]
    long = _sizes(test[session_col]) >= min_test_session_length
    n_short_events = int((~long).sum())
    test = test[long]
    logger.info(
        "time_split: cutoff %s; train %d events / %d sessions; test %d sessions started after the "
        "cutoff; removed %d test events with items unknown to train and %d events of %d test "
        "sessions shorter than %d; test %d events / %d sessions",
        cutoff,
        len(train),
        train[session_col].nunique(),
        n_test_sessions,
        n_unknown,
        n_short_events,
        n_test_sessions - test[session_col].nunique(),
        min_test_session_length,
        len(test),
        test[session_col].nunique(),
    )
    if len(test) == 0:
        why = _why_no_test(start, cutoff, n_test_sessions, min_test_session_length)
        why += _unit_hint(ts.to_numpy(), float(test_days))
        warn(f"time_split: the test set is empty: {why}")
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _why_no_test(start: np.ndarray, cutoff: float, n_test_sessions: int, min_length: int) -> str:
    """Why a split at ``cutoff`` of sessions starting at ``start`` (per row) has no test set."""
    if n_test_sessions:
        return (
            f"none of the {n_test_sessions} sessions starting at or after the cutoff {cutoff:.15g} "
            f"keeps {min_length} or more events with items seen in train"
        )
    if np.all(start == start[0]):
        # A larger test_days cannot help: the sessions all go to one side.
        return (
            f"every session starts at the same time ({start[0]}), so no cutoff separates them "
            "(are the times positions within each session?); give real timestamps"
        )
    return f"no session starts at or after the cutoff {cutoff:.15g}; give a larger test_days"


def _unit_hint(times: np.ndarray, test_days: float) -> str:
    """A note for a split whose timestamps look like milliseconds (or finer), not seconds."""
    top = float(np.max(np.abs(times))) if len(times) else 0.0
    # Seconds since 1970 stay below 1e11 until the year 5138; milliseconds passed it in 1973.
    if top < 1e11:
        return ""
    unit = "microseconds" if top >= 1e14 else "milliseconds"
    return (
        f"; the timestamps (up to {top:.15g}) look like {unit}, and test_days counts days of "
        f"86400 seconds, so test_days={test_days:g} spans {test_days * 86400:g} of their units: "
        f"divide the timestamps by {1000 if unit == 'milliseconds' else 1_000_000} first"
    )


def last_item_split(matrix: InteractionMatrix) -> tuple[InteractionMatrix, InteractionMatrix]:
    """Split each session into its history and its last event (recpack-style).

    Per session (user), the last event by time (stable for ties) goes to ``validation_out`` and
    the others to ``validation_in``. Sessions with fewer than 2 events go to neither, with a
    warning giving their number. Both matrices keep the shape and vocabularies of ``matrix``.
    """
    if not isinstance(matrix, InteractionMatrix):
        raise ValueError(f"matrix must be an InteractionMatrix, got {type(matrix).__name__}")
    events = matrix.to_dataframe()
    users = events[InteractionMatrix.USER_IX].to_numpy()
    times = events[InteractionMatrix.TIMESTAMP_IX] if matrix.has_timestamps else 0 * users
    order = np.lexsort((np.asarray(times), users))  # stable: ties keep the row order
    ids = events[InteractionMatrix.INTERACTION_IX].to_numpy()[order]
    new_user = np.diff(users[order], prepend=-1, append=-1) != 0
    first, last = new_user[:-1], new_user[1:]
    n_short = int((first & last).sum())
    if n_short:
        warn(f"last_item_split: {n_short} sessions with fewer than 2 events go to neither side")
    return _interactions(matrix, ids[~last]), _interactions(matrix, ids[last & ~first])


def _interactions(matrix: InteractionMatrix, ids: np.ndarray) -> InteractionMatrix:
    # interactions_in warns about an empty request (as recpack does); an empty side is normal
    # here (no session long enough), so it is asked for as the matrix of no user.
    return matrix.interactions_in(ids) if len(ids) else matrix.users_in([])


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def make_synthetic_sessions(
    n_sessions: int = 2000,
    n_items: int = 500,
    mean_length: float = 6.0,
    seed: int | None = 0,
    *,
    n_successors: int = 3,
    p_follow: float = 0.8,
    popularity_exponent: float = 1.0,
    start_time: int = 1_600_000_000,
) -> pd.DataFrame:
    """Session data with real sequential signal.

    Each item has ``n_successors`` likely successors (drawn uniformly at random, weights 1/2,
    1/4, ... renormalised). A session's first item is drawn by popularity (Zipf with
    ``popularity_exponent``, items in random popularity order); every next item is, with
    probability ``p_follow``, a successor of the current item, and otherwise a popularity draw
    (noise). Session lengths are ``1 + Geometric(1 / (mean_length - 1))``, so every session has
    at least 2 events and the mean length is ``mean_length``. Sessions start at strictly
    increasing times from ``start_time``; events inside a session are 1 to 120 s apart.

    Returns a DataFrame ``session_id, item_id, timestamp`` (ids 0-based ints, timestamps int64
    seconds), ordered by session and time. Everything is drawn from
    ``np.random.default_rng(seed)``.
    """
    n_sessions = _check_positive_int(n_sessions, "n_sessions")
    n_items = _check_positive_int(n_items, "n_items", minimum=2)
    n_successors = _check_positive_int(n_successors, "n_successors")
    if not np.isfinite(mean_length) or mean_length < 2:
        raise ValueError(f"mean_length must be >= 2, got {mean_length!r}")
    if not 0.0 <= p_follow <= 1.0:
        raise ValueError(f"p_follow must be in [0, 1], got {p_follow!r}")
    if not np.isfinite(popularity_exponent) or popularity_exponent < 0:
        raise ValueError(f"popularity_exponent must be >= 0, got {popularity_exponent!r}")
    rng = np.random.default_rng(seed)

    popularity = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** popularity_exponent
    popularity = popularity[rng.permutation(n_items)]
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    successors = rng.integers(0, n_items, size=(n_items, n_successors))
    succ_cdf = np.cumsum(0.5 ** np.arange(n_successors))
    succ_cdf /= succ_cdf[-1]

    def popular(m: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(m), side="right"), n_items - 1)

    lengths = 1 + rng.geometric(1.0 / (mean_length - 1.0), size=n_sessions)
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.empty(offsets[-1], dtype=np.int64)
    current = popular(n_sessions)
    items[offsets[:-1]] = current
    alive = np.arange(n_sessions)
    for pos in range(1, int(lengths.max())):
        still = lengths[alive] > pos
        alive, current = alive[still], current[still]
        m = alive.shape[0]
        column = np.minimum(
            np.searchsorted(succ_cdf, rng.random(m), side="right"), n_successors - 1
        )
        follow = rng.random(m) < p_follow
        current = np.where(follow, successors[current, column], popular(m))
        items[offsets[alive] + pos] = current

    starts = start_time + np.cumsum(1 + rng.exponential(30.0, size=n_sessions).astype(np.int64))
    gaps = rng.integers(1, 121, size=items.shape[0])
    gaps[offsets[:-1]] = 0
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[offsets[:-1]], lengths)
    timestamps = np.repeat(starts, lengths) + within
    return pd.DataFrame(
        {
            SESSION: np.repeat(np.arange(n_sessions, dtype=np.int64), lengths),
            ITEM: items,
            TIME: timestamps.astype(np.int64),
        }
    )
