"""The session-parallel schedule, shared by training and inference.

The schedule is what the reference GRU4Rec iterator produces, computed up front
with numpy: ``batch_size`` slots each run one session at a time, in a given
session order; when a slot's session ends, the next unused session takes the slot
(and its hidden state row is reset); when no sessions are left, the slot
retires and the batch shrinks. Slots are numbered so that the active slots of
every step are a prefix ``0 .. b_t - 1``: the hidden state of step ``t`` is then
simply ``H[:b_t]``, a view, with no gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SESSION_ORDERS",
    "Schedule",
    "by_length",
    "session_order",
    "session_parallel_schedule",
]


@dataclass(frozen=True)
class Schedule:
    """A session-parallel schedule, flattened step by step.

    Rows ``step_offsets[t]:step_offsets[t + 1]`` are step ``t``; within a step,
    row ``k`` is slot ``k``.

    Attributes
    ----------
    events : np.ndarray of int64
        Index (into the session arrays' ``items``) of each row's input event.
    resets : np.ndarray of bool
        True where the row's slot starts a new session (hidden state zeroed).
    sessions : np.ndarray of int64
        Session index (into the session arrays) of each row.
    positions : np.ndarray of int64
        Position of the row's input event within its session.
    step_offsets : np.ndarray of int64
        Row offsets of the steps, ``n_steps + 1`` entries.
    """

    events: np.ndarray
    resets: np.ndarray
    sessions: np.ndarray
    positions: np.ndarray
    step_offsets: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.step_offsets) - 1

    @property
    def n_rows(self) -> int:
        return len(self.events)

    @property
    def batch_sizes(self) -> np.ndarray:
        return np.diff(self.step_offsets)


def _assign_slots(counts: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy slot assignment: slot and first step of every session, in order.

    Loops over the moments when some slot frees up (at most one per step),
    never over sessions.
    """
    n = len(counts)
    b = min(batch_size, n)
    slot = np.empty(n, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    slot[:b] = np.arange(b)
    start[:b] = 0
    remaining = counts[:b].copy()
    t = 0
    nxt = b
    while nxt < n:
        m = remaining.min()
        t += m
        remaining -= m
        freed = np.flatnonzero(remaining == 0)[: n - nxt]
        k = len(freed)
        slot[nxt : nxt + k] = freed
        start[nxt : nxt + k] = t
        remaining[freed] = counts[nxt : nxt + k]
        nxt += k
    return slot, start


def session_parallel_schedule(
    offsets: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    *,
    include_last: bool = False,
) -> Schedule:
    """Build the session-parallel schedule of the sessions in ``order``.

    Parameters
    ----------
    offsets : np.ndarray of int64
        Session offsets (``n_sessions + 1``) into the flat event arrays.
    order : np.ndarray of int64
        Sessions in processing order (for training: by start time, oldest first).
    batch_size : int
        Number of slots.
    include_last : bool, default=False
        False (training): a session of length ``L`` gives ``L - 1`` rows, one per
        (item, next item) pair; sessions of length 1 give none. True
        (inference): every event gives a row, so the state after the last item
        is computed too.
    """
    order = np.asarray(order, dtype=np.int64)
    lengths = offsets[order + 1] - offsets[order]
    counts = lengths if include_last else lengths - 1
    keep = counts > 0
    order, counts = order[keep], counts[keep]
    if len(order) == 0:
        empty = np.empty(0, dtype=np.int64)
        return Schedule(empty, empty.astype(bool), empty, empty, np.zeros(1, dtype=np.int64))

    slot, start = _assign_slots(counts, batch_size)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(order)), counts)
    first_row = np.cumsum(counts) - counts
    pos = np.arange(total, dtype=np.int64) - first_row[owner]
    step = start[owner] + pos

    # Number slots by retirement, latest first, so active slots form a prefix.
    n_slots = int(slot[: min(batch_size, len(order))].max()) + 1
    end = np.zeros(n_slots, dtype=np.int64)
    np.maximum.at(end, slot, start + counts)
    relabel = np.empty(n_slots, dtype=np.int64)
    relabel[np.argsort(-end, kind="stable")] = np.arange(n_slots)
    row_slot = relabel[slot[owner]]

    rows = np.lexsort((row_slot, step))
    n_steps = int(end.max())
    step_offsets = np.zeros(n_steps + 1, dtype=np.int64)
    np.cumsum(np.bincount(step, minlength=n_steps), out=step_offsets[1:])
    sessions = order[owner[rows]]
    positions = pos[rows]
    return Schedule(
        events=offsets[sessions] + positions,
        resets=positions == 0,
        sessions=sessions,
        positions=positions,
        step_offsets=step_offsets,
    )


SESSION_ORDERS = ("time", "random")


def session_order(
    start_times: np.ndarray, rng: np.random.Generator, mode: str = "time"
) -> np.ndarray:
    """The order in which training visits the sessions.

    ``mode='time'`` sorts the sessions by start time, as the reference does; sessions
    that start at the same time come in an order drawn from ``rng``, never in id or
    row order. In session-parallel training the sessions near the end of an epoch
    leave the strongest mark, so an order that follows how ids were numbered (often
    grouped by user segment, by first item, by import batch) would bias the model.
    ``mode='random'`` ignores the times: a uniformly random permutation.

    Parameters
    ----------
    start_times : np.ndarray, shape (n_sessions,)
        Start time of every session.
    rng : numpy.random.Generator
        Source of the draw (the estimator's seeded generator).
    mode : {'time', 'random'}
    """
    if mode not in SESSION_ORDERS:
        raise ValueError(f"session order must be one of {SESSION_ORDERS}; got {mode!r}")
    perm = rng.permutation(len(start_times))
    if mode == "random":
        return perm
    return perm[np.argsort(np.asarray(start_times)[perm], kind="stable")]


def by_length(offsets: np.ndarray) -> np.ndarray:
    """Sessions longest first: the inference order, which keeps the batch full to the end."""
    return np.argsort(-np.diff(offsets), kind="stable")
