"""What users pass in, turned into what the network reads.

Frames of raw events and matrices become an :class:`~gru4rec.matrix.InteractionMatrix`
(encoded with the training vocabulary at inference), and then time-ordered
:class:`~gru4rec.matrix.SessionArrays`; lists of raw-id sessions (``recommend``) become
flat item indices plus offsets. Every check names what was wrong, before any work.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .matrix import InteractionMatrix, SessionArrays, Vocabulary, as_interaction_matrix, id_kind
from .notices import warn

__all__ = [
    "Columns",
    "as_matrix",
    "blocked_items",
    "check_index_sessions",
    "check_items",
    "item_ids",
    "item_indices",
    "model_vocabulary",
    "session_hashes",
    "session_lists",
    "timed_sessions",
    "warn_of_shared_sessions",
]

# The column that times the events of a frame without a time column (its row numbers).
_ROW_TIME = "__gru4rec_row__"


class Columns(NamedTuple):
    """The columns of a frame of raw events; ``time`` None: the rows are in time order."""

    session: str
    item: str
    time: str | None


def as_matrix(
    X: Any,
    columns: Columns,
    what: str = "X",
    vocabulary: Vocabulary | None = None,
    user_vocabulary: Vocabulary | None = None,
    first_row: int = 0,
    *,
    allow_empty: bool = False,
) -> InteractionMatrix:
    """``X`` as a matrix; a DataFrame of raw events is encoded with ``vocabulary``
    (None: a new one, as in ``fit``). Without a time column the events are timed by
    their row number plus ``first_row``. An empty DataFrame is an error naming ``what``,
    or with ``allow_empty`` (inference, with a ``vocabulary``) a matrix without rows."""
    if isinstance(X, InteractionMatrix):
        return X
    if isinstance(X, pd.DataFrame):
        if len(X) == 0:
            return _empty(X, columns, what, vocabulary if allow_empty else None)
        time_col = columns.time
        if time_col is None:
            # Row order is the time order: the row number serves as the timestamp
            # (counted on from first_row, so validation_out follows validation_in).
            time_col = _ROW_TIME
            X = X.assign(**{_ROW_TIME: np.arange(first_row, first_row + len(X))})
        return InteractionMatrix._from_named_events(
            X, columns.session, columns.item, time_col, vocabulary, user_vocabulary, what, what
        )
    # Objects with recpack's InteractionMatrix surface are converted; anything else
    # (a scipy matrix has no event order) is a TypeError saying what to pass.
    return as_interaction_matrix(X, what)


def _empty(
    X: pd.DataFrame, columns: Columns, what: str, vocabulary: Vocabulary | None
) -> InteractionMatrix:
    """A DataFrame without rows: with a vocabulary, a matrix of no users over its items;
    else an error naming ``what``."""
    wanted = {"session_col": columns.session, "item_col": columns.item, "time_col": columns.time}
    for arg, col in wanted.items():
        if col is not None and col not in X.columns:
            raise ValueError(
                f"column {col!r} not in {what} (columns {list(X.columns)}); set {arg}= to "
                "the column that holds it"
            )
    if vocabulary is None:
        raise ValueError(f"{what} is an empty DataFrame: it holds no events")
    none = np.zeros(0, dtype=np.int64)
    return InteractionMatrix._from_arrays(
        none, none, none, none, (0, len(vocabulary)), vocabulary, Vocabulary(none)
    )


def check_items(
    X: InteractionMatrix,
    n_items: int,
    vocabulary: Vocabulary | None,
    what: str = "X",
    fitted: bool = True,
) -> InteractionMatrix:
    """``X``, after checking that its columns are the training items (``fitted``: of the
    fitted model; else of the training data ``X`` of the fit under way)."""
    if X.shape[1] != n_items:
        if not fitted:
            raise ValueError(
                f"validation_data: {what} has {X.shape[1]} items (columns) but X has {n_items}"
            )
        raise ValueError(
            f"{what} has {X.shape[1]} items (columns) but the model was fitted on "
            f"{n_items}; build it with the training item vocabulary"
        )
    theirs = X.item_vocabulary
    if (
        vocabulary is not None
        and theirs is not None
        and theirs is not vocabulary
        and not np.array_equal(vocabulary.ids, theirs.ids)
    ):
        if not fitted:
            raise ValueError(
                f"validation_data: {what} numbers its items differently from X (another "
                "item vocabulary); build it with InteractionMatrix.from_events(..., "
                "item_vocabulary=X.item_vocabulary)"
            )
        raise ValueError(
            f"{what} was built with another item vocabulary than the training data; "
            "build it with InteractionMatrix.from_events(..., "
            "item_vocabulary=model.item_vocabulary_)"
        )
    return X


def timed_sessions(
    X: InteractionMatrix, what: str = "X", *, training: bool = False
) -> SessionArrays:
    """The sessions of ``X``, which must have timestamps (and, for ``training``, at least
    one session of 2 or more events)."""
    if not X.has_timestamps:
        raise ValueError(
            f"{what} has no timestamps: GRU4Rec learns from the order of events in a "
            "session, so it needs an InteractionMatrix with a timestamp column (or pass the "
            "events as a DataFrame with time_col=None: its row order is then the time order)"
        )
    sessions = X.session_arrays()
    if training and sessions.n_events == 0:
        raise ValueError(f"{what} holds no events")
    if training and int(sessions.lengths.max()) < 2:
        raise ValueError(
            f"{what} has no session with 2 or more events; GRU4Rec learns from consecutive pairs"
        )
    return sessions


def session_lists(
    sessions: Sequence[Any] | Sequence[Sequence[Any]],
    vocabulary: Vocabulary | None,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One session or a batch of sessions of raw item ids as ``(items, offsets, single)``:
    flat item indices, session offsets, and whether a single session was given.

    Unknown items are skipped with a warning giving their number; without a vocabulary
    (a model fitted on indices) the ids must be integer indices.
    """
    single = _is_single_session(sessions)
    batch = [sessions] if single else list(sessions)
    if not single:
        for i, session in enumerate(batch):
            if not _is_session(session):
                raise ValueError(
                    "sessions must be a list of item ids (one session) or a list of such lists "
                    f"(a batch), not a mix: sessions[{i}] is {_described(session)}"
                    + (
                        f" (a session of one item is [{session!r}])"
                        if isinstance(session, str | bytes)
                        else ""
                    )
                )
    lengths = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
    flat = list(itertools.chain.from_iterable(batch))
    items, offsets = flat_sessions(flat, lengths, vocabulary, n_items)
    return items, offsets, single


def _is_session(value: Any) -> bool:
    """A sequence of item ids: a list, tuple, 1-d array or Series (not a string)."""
    if isinstance(value, str | bytes | Mapping):
        return False
    if isinstance(value, np.ndarray | pd.Series | pd.Index):
        return value.ndim == 1
    return isinstance(value, Sequence)


def _described(value: Any) -> str:
    kind = type(value).__name__
    article = "an" if kind[:1] in "aeiou" else "a"
    shown = f" ({value!r})" if isinstance(value, str | bytes | numbers.Number) else ""
    return f"{article} {kind}{shown}"


def flat_sessions(
    raw: Sequence[Any],
    lengths: np.ndarray,
    vocabulary: Vocabulary | None,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sessions given as one flat sequence of raw item ids and their lengths, as
    ``(items, offsets)`` of model indices; unknown items are skipped with a warning."""
    items = item_indices(raw, vocabulary, n_items)
    known = items >= 0
    if not known.all():
        warn(
            f"recommend skipped {int((~known).sum())} of {len(items)} items unknown to the model"
            + _id_type_hint(list(raw), known, vocabulary)
        )
    n = len(lengths)
    kept = np.bincount(np.repeat(np.arange(n), lengths)[known], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(kept, out=offsets[1:])
    return items[known], offsets


def blocked_items(
    items: Any,
    filter_items: Any,
    vocabulary: Vocabulary | None,
    n_items: int,
    *,
    quiet: bool = False,
) -> tuple[np.ndarray | None, dict[str, int]]:
    """The candidate filters of ``recommend`` as one boolean per item, True for an item
    never to return (None without filters), and the number of unknown ids per parameter.

    ``items`` (an allow-list: rank among these only) and ``filter_items`` (ids never
    returned) hold raw item ids in any order. Ids unknown to the model are ignored (none of
    them can be returned anyway) with a warning naming the parameter, unless ``quiet``.
    """
    if items is None and filter_items is None:
        return None, {}
    blocked = np.zeros(n_items, dtype=bool)
    unknown = {}
    for name, ids in (("items", items), ("filter_items", filter_items)):
        if ids is None:
            continue
        if isinstance(ids, str | bytes | Mapping | pd.DataFrame) or not hasattr(ids, "__iter__"):
            raise ValueError(
                f"{name} must be a list (or array or set) of item ids, got {_described(ids)}"
            )
        raw = list(ids)
        try:
            index = item_indices(raw, vocabulary, n_items)
        except ValueError as error:  # indices of a model without a vocabulary: say which list
            raise ValueError(f"{name}: {error}".replace("sessions must", name + " must")) from None
        if (index < 0).any():
            unknown[name] = int((index < 0).sum())
            if not quiet:
                warn(
                    f"recommend ignored {unknown[name]} of {len(raw)} ids in {name} unknown to "
                    "the model" + _id_type_hint(raw, index >= 0, vocabulary)
                )
        index = index[index >= 0]
        if name == "items":
            allowed = np.zeros(n_items, dtype=bool)
            allowed[index] = True
            blocked |= ~allowed
        else:
            blocked[index] = True
    return blocked, unknown


def _is_single_session(sessions: Any) -> bool:
    if (
        isinstance(sessions, (str, bytes))
        or not hasattr(sessions, "__len__")
        or (isinstance(sessions, np.ndarray) and sessions.ndim == 0)
    ):
        raise ValueError(
            "sessions must be a list of item ids or a list of such lists; "
            f"got {type(sessions).__name__}"
        )
    _check_container(sessions, "sessions")
    if len(sessions) == 0:
        return True
    first = next(iter(sessions))  # not sessions[0]: a pandas Series indexes by label
    single = isinstance(first, (str, bytes)) or not hasattr(first, "__len__")
    if single:
        for i, item in enumerate(sessions):
            if _is_session(item) or isinstance(item, Mapping | pd.DataFrame):
                raise ValueError(
                    "sessions must be a list of item ids (one session) or a list of such lists "
                    f"(a batch), not a mix: sessions[0] is an item id but sessions[{i}] is "
                    f"{_described(item)}"
                )
    else:
        for i, session in enumerate(sessions):
            _check_container(session, f"sessions[{i}]")
    return single


def _check_container(value: Any, what: str) -> None:
    """Containers whose iteration is not a session's items in event order are errors."""
    if isinstance(value, pd.DataFrame):
        raise ValueError(
            f"{what} is a DataFrame; recommend takes lists of item ids (use predict(X) to "
            "score the sessions of a frame of events, or "
            "df.groupby(session_col)[item_col].agg(list).tolist())"
        )
    if isinstance(value, Mapping):
        raise ValueError(
            f"{what} is a mapping, whose iteration gives its keys; pass a list of sessions, "
            "e.g. list(d.values()), and keep the keys in the same order"
        )
    if isinstance(value, (set, frozenset)):
        raise ValueError(
            f"{what} is a set, which has no order; pass the items as a list in event order"
        )


def model_vocabulary(vocabulary: Vocabulary | None, n_items: int) -> Vocabulary:
    """The raw ids of a model's items as a vocabulary: ``vocabulary``, or for a model fitted
    on item indices (None) the indices themselves."""
    return Vocabulary(np.arange(n_items)) if vocabulary is None else vocabulary


def item_ids(indices: Any, vocabulary: Vocabulary | None) -> np.ndarray:
    """The raw item ids of model item indices, in their shape; the indices themselves for a
    model fitted on item indices (``vocabulary`` None).

    Every path that hands items back to the user (``recommend``, the command line,
    :func:`gru4rec.distributed.recommend_dask`) turns indices into ids here;
    :func:`item_indices` is the way back."""
    idx = np.asarray(indices)
    return idx if vocabulary is None else vocabulary.to_raw(idx)


def check_index_sessions(
    items: np.ndarray, offsets: np.ndarray, blocked: np.ndarray | None, n_items: int
) -> None:
    """Sessions given as model indices (``items``, ``offsets``) and a ``blocked`` flag per
    item: ``ValueError`` naming the array that does not fit a model of ``n_items`` items."""
    if items.ndim != 1 or (items.size and items.dtype.kind not in "iu"):
        raise ValueError(
            f"items must be a 1-D array of item indices; got {items.dtype} {items.shape}"
        )
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(
            f"items must be indices in [0, {n_items}); got {items.min()}..{items.max()}"
        )
    if (
        offsets.ndim != 1
        or offsets.size < 1
        or offsets.dtype.kind not in "iu"
        or offsets[0] != 0
        or offsets[-1] != items.size
        or (np.diff(offsets) < 0).any()
    ):
        raise ValueError(
            "offsets must be non-decreasing integers from 0 to len(items) (session s is "
            "items[offsets[s]:offsets[s + 1]])"
        )
    if blocked is not None and (
        np.shape(blocked) != (n_items,) or np.asarray(blocked).dtype != bool
    ):
        raise ValueError(f"blocked must be a boolean array of one flag per item ({n_items},)")


def item_indices(raw: Sequence[Any], vocabulary: Vocabulary | None, n_items: int) -> np.ndarray:
    """Model indices of raw item ids, -1 for unknown ones (the inverse of :func:`item_ids`)."""
    if vocabulary is not None:
        return vocabulary.index_of(raw) if len(raw) else np.zeros(0, dtype=np.int64)
    arr = np.asarray(raw)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            "this model was fitted on item indices, so sessions must hold integer item "
            f"indices; got {arr.dtype} values"
        )
    arr = arr.astype(np.int64)
    return np.where((arr >= 0) & (arr < n_items), arr, -1)


def _id_type_hint(raw: list[Any], known: np.ndarray, vocabulary: Vocabulary | None) -> str:
    """When no item is known and the ids are of another kind than the model's: say so."""
    if known.any() or vocabulary is None or not raw:
        return ""
    theirs = id_kind(np.asarray(pd.Index(raw, dtype=object)))
    ours = id_kind(vocabulary.ids)
    if theirs == ours:
        return ""
    first = vocabulary.ids[0]
    first = first.item() if isinstance(first, np.generic) else first
    return (
        f"; the request's ids are {theirs} but the model's item ids are {ours} "
        f"(e.g. {first!r}): convert them to the type used in fit"
    )


def _hashes(ids: np.ndarray) -> np.ndarray:
    """64-bit hashes of raw session ids: what a fit keeps to recognise its sessions later."""
    return pd.util.hash_array(np.asarray(ids, dtype=object))


def session_hashes(X: InteractionMatrix, seen: np.ndarray | None = None) -> np.ndarray | None:
    """The sorted hashes of the sessions of ``X`` (a matrix read from a frame), joined with
    those ``seen`` before (an update's); None when ``X`` names no sessions."""
    if X.user_vocabulary is None:
        return seen
    hashes = _hashes(X.user_vocabulary.ids)
    return np.unique(hashes) if seen is None else np.union1d(seen, hashes)


def warn_of_shared_sessions(X: InteractionMatrix, seen: np.ndarray | None) -> None:
    """Sessions cut between the training frame (hashes ``seen``) and ``X``: the mark of a
    DataFrame of events split by rows (scikit-learn's CV does that), which leaks the future."""
    if seen is None or X.user_vocabulary is None or len(X.user_vocabulary) == 0:
        return
    shared = int(np.isin(_hashes(X.user_vocabulary.ids), seen).sum())
    if 0 < shared < len(X.user_vocabulary):
        warn(
            f"X shares {shared} of its {len(X.user_vocabulary)} sessions with the frame "
            "the model was fitted on: their events were split between the two (as "
            "scikit-learn's CV splits a DataFrame, by rows), so the model saw part of what "
            "it is scored on; split by session (an InteractionMatrix, whose rows are "
            "sessions, or datasets.time_split)"
        )
