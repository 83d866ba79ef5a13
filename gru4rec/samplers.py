"""Session-parallel mini-batch schedules and the shared negative sampler.

The schedule is what the reference GRU4Rec iterator produces, computed up front
with numpy: ``batch_size`` slots each run one session at a time, in session
start order; when a slot's session ends, the next unused session takes the slot
(and its hidden state row is reset); when no sessions are left, the slot
retires and the batch shrinks. Slots are numbered so that the active slots of
every step are a prefix ``0 .. b_t - 1``: the hidden state of step ``t`` is then
simply ``H[:b_t]``, a view, with no gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "SESSION_ORDERS",
    "NegativeSampler",
    "Schedule",
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


class NegativeSampler:
    """Draws the negatives shared by a mini-batch, with replacement.

    ``P(item) ~ count(item) ** alpha`` (``alpha = 0``: uniform over the
    catalogue). Draws are made on the device in large chunks from a dedicated
    generator, so sampling never touches the global random state and costs no
    host work per step.

    Parameters
    ----------
    item_counts : np.ndarray
        Training event count of every item.
    alpha : float
        Popularity exponent.
    n_samples : int
        Negatives per step.
    generator : torch.Generator
        Generator on ``device``.
    device : torch.device
    buffer_size : int, default=2**22
        Approximate number of items drawn at once.
    dedup : bool, default=False
        Also prepare each step's distinct items with their multiplicities
        (:meth:`draw_unique`). The boundaries between steps are read back to the
        host once per refill, so this is meant for the CPU.
    """

    def __init__(
        self,
        item_counts: np.ndarray,
        alpha: float,
        n_samples: int,
        generator: torch.Generator,
        device: torch.device,
        buffer_size: int = 2**22,
        dedup: bool = False,
    ) -> None:
        self.n_samples = int(n_samples)
        self.dedup = bool(dedup)
        self.n_items = len(item_counts)
        self.generator = generator
        self.device = torch.device(device)
        self._uniform = alpha == 0
        if not self._uniform:
            weights = np.power(np.asarray(item_counts, dtype=np.float64), alpha)
            if weights.sum() <= 0:
                raise ValueError("sample_alpha > 0 needs at least one item with events")
            cdf = np.cumsum(weights)
            cdf /= cdf[-1]
            self._cdf = torch.as_tensor(cdf, device=self.device)
        self._rows = max(1, buffer_size // max(1, self.n_samples))
        self._buffer: torch.Tensor | None = None
        self._next = 0

    def _sorted_uniforms(self, rows: int, n: int) -> torch.Tensor:
        # Cumulative sums of n + 1 exponentials, normalised, are the order statistics
        # of n uniforms: each step's draws come out sorted at no extra cost. A step's
        # negatives are an unordered set, so this is exact; sorted draws make the
        # inverse-CDF search cache-friendly and repeated items adjacent.
        spacings = torch.empty(rows, n + 1, dtype=torch.float64, device=self.device)
        cum = spacings.exponential_(generator=self.generator).cumsum_(dim=1)
        return cum[:, :n] / cum[:, n:]

    def _refill(self) -> None:
        rows, n = self._rows, self.n_samples
        if self._uniform and not self.dedup:
            self._buffer = torch.randint(
                self.n_items, (rows, n), generator=self.generator, device=self.device
            )
        elif self._uniform:
            u = self._sorted_uniforms(rows, n)
            self._buffer = (u * self.n_items).long().clamp_(max=self.n_items - 1)
        else:
            idx = torch.searchsorted(self._cdf, self._sorted_uniforms(rows, n), right=True)
            self._buffer = idx.clamp_(max=self.n_items - 1)
        if self.dedup:
            self._compact()
        self._next = 0

    def _compact(self) -> None:
        """Distinct items and their multiplicities of every buffered step, flattened."""
        rows, n = self._rows, self.n_samples
        flat = self._buffer.reshape(-1)
        first = torch.ones_like(flat, dtype=torch.bool)
        first[1:] = flat[1:] != flat[:-1]
        first[::n] = True  # a step's first draw starts a run even if it equals the last one
        starts = first.nonzero().squeeze(1)
        ends = torch.cat([starts[1:], starts.new_tensor([flat.numel()])])
        self._unique = flat[starts]
        self._log_mult = (ends - starts).to(torch.float32).log_()
        # Host copy of the step boundaries: slicing needs Python ints (one read per refill).
        bounds = torch.searchsorted(starts, torch.arange(rows + 1, device=self.device) * n)
        self._bounds = bounds.cpu().numpy()

    def draw(self) -> torch.Tensor:
        """The next step's ``n_samples`` negatives (int64, on the device)."""
        if self._buffer is None or self._next >= self._rows:
            self._refill()
        out = self._buffer[self._next]
        self._next += 1
        return out

    def draw_unique(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next step's negatives as distinct items and the log of their multiplicities.

        When fewer than 10% of the draws repeat, the raw draws come back instead,
        with None for the multiplicities.

        Scoring each distinct item once, with ``log(multiplicity)`` added to its
        logit, gives exactly the softmax over the duplicated draws at a fraction
        of the cost. Needs ``dedup=True``.
        """
        if not self.dedup:
            raise RuntimeError("draw_unique() needs a sampler built with dedup=True")
        if self._buffer is None or self._next >= self._rows:
            self._refill()
        a, b = int(self._bounds[self._next]), int(self._bounds[self._next + 1])
        self._next += 1
        if b - a > 0.9 * self.n_samples:
            # Few repeats: scoring the raw draws as plain columns is cheaper than the
            # weighted losses (and exactly the same loss).
            return self._buffer[self._next - 1], None
        return self._unique[a:b], self._log_mult[a:b]
