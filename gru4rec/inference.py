"""Running a trained network over sessions: final states, top-K items, next-item ranks.

Sessions are walked with the same session-parallel schedule as training
(every event gives a row; the hidden state starts from zero for each session),
so a session's result does not depend on which others share its batch. Sessions
are flat item indices plus offsets (session ``s`` is ``items[offsets[s]:offsets[s + 1]]``);
the network and how to run it travel together as one :class:`Scorer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .kernels import quantized
from .model import GRU4RecNet
from .notices import warn
from .schedule import by_length, session_parallel_schedule

__all__ = ["Int8Scorer", "Scorer"]

#: Scores in a full ``predict`` above which a warning suggests ``predict_topK``.
_LARGE_OUTPUT = 100_000_000

#: The score a seen item takes inside the chunks with ``exclude_seen``: below every real score
#: and above a filtered item's ``-inf``, so a filtered item never fills a place; returned as -inf.
_SEEN = float(torch.finfo(torch.float32).min)


@dataclass(frozen=True)
class Scorer:
    """A trained network, its device, and the sizes inference runs with.

    Parameters
    ----------
    model : GRU4RecNet
    device : torch.device
    batch_size : int, default=512
        Sessions walked in parallel (and rows scored at once).
    chunk_size : int, default=32768
        Items scored at once: the score buffer never exceeds ``batch_size x chunk_size``.
    """

    model: GRU4RecNet
    device: torch.device
    batch_size: int = 512
    chunk_size: int = 32768

    @torch.no_grad()
    def walk(
        self, items: np.ndarray, offsets: np.ndarray, select: np.ndarray
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Walk all sessions; yield ``(events, outputs)`` for the selected events of each step.

        ``select`` is a boolean per event (aligned with ``items``). Yields device
        tensors: the index of each selected event and the GRU output after reading
        it. Puts the model in evaluation mode (no dropout).
        """
        model, device = self.model, self.device
        model.eval()
        schedule = session_parallel_schedule(
            offsets, by_length(offsets), self.batch_size, include_last=True
        )
        offs = schedule.step_offsets
        if schedule.n_steps == 0:
            return
        inputs = torch.as_tensor(items[schedule.events], device=device)
        keep = torch.as_tensor(~schedule.resets, dtype=torch.float32, device=device)[:, None]
        chosen = np.flatnonzero(select[schedule.events])  # sorted schedule rows
        chosen_dev = torch.as_tensor(chosen, device=device)
        events_dev = torch.as_tensor(schedule.events[chosen], device=device)
        bounds = np.searchsorted(chosen, offs)  # chosen rows of step t: bounds[t]:bounds[t+1]
        hidden = model.init_hidden(int(offs[1] - offs[0]), device)
        for t in range(schedule.n_steps):
            s, e = int(offs[t]), int(offs[t + 1])
            hidden = [hl[: e - s] * keep[s:e] for hl in hidden]
            out, hidden = model.step(model.input_vectors(inputs[s:e]), hidden)
            a, b = int(bounds[t]), int(bounds[t + 1])
            if a < b:
                yield events_dev[a:b], out.index_select(0, chosen_dev[a:b] - s)

    def final_states(self, items: np.ndarray, offsets: np.ndarray) -> torch.Tensor:
        """GRU output after the last event of every session, shape ``(n_sessions, hidden)``.

        An empty session keeps the zero state.
        """
        n_sessions = len(offsets) - 1
        lengths = np.diff(offsets)
        last = np.zeros(len(items), dtype=bool)
        last[offsets[1:][lengths > 0] - 1] = True
        session_of_event = np.repeat(np.arange(n_sessions), lengths)
        session_dev = torch.as_tensor(session_of_event, device=self.device)
        states = torch.zeros(n_sessions, self.model.hidden_size, device=self.device)
        for events, out in self.walk(items, offsets, last):
            states.index_copy_(0, session_dev[events], out)
        return states

    @torch.no_grad()
    def top_k(
        self,
        states: torch.Tensor,
        k: int,
        seen: tuple[np.ndarray, np.ndarray] | None = None,
        blocked: np.ndarray | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` scores and item indices per row of ``states``, best first.

        ``seen``, the sessions as ``(items, offsets)`` aligned with the rows, scores each
        row's own items ``-inf`` first (so they come last), at a cost in the number of those
        items: a long session does not widen the other rows. ``blocked``, a boolean per item,
        masks the items never to return inside each score chunk, before its top-K: the rows
        are ``min(k, unblocked items)`` wide, so a blocked item never takes a place.
        """
        model = self.model
        block_dev = None
        n_candidates = model.n_items
        if blocked is not None:
            block_dev = torch.as_tensor(blocked, dtype=torch.bool, device=self.device)
            n_candidates -= int(block_dev.sum())
        k = min(k, n_candidates)
        if k <= 0:
            empty = states.new_zeros(states.shape[0], 0)
            return empty, empty.long()
        values, indices = [], []
        for r in range(0, states.shape[0], self.batch_size):
            best_val = best_idx = None
            if seen is not None:
                own_rows, own_items = self._own_items(seen, r, states.shape[0])
            for start, scores in model.score_chunks(
                states[r : r + self.batch_size], self.chunk_size
            ):
                if seen is not None:
                    inside = (own_items >= start) & (own_items < start + scores.shape[1])
                    scores[own_rows[inside], own_items[inside] - start] = _SEEN
                if block_dev is not None:  # after the seen ones: a blocked seen item stays out
                    scores.masked_fill_(block_dev[start : start + scores.shape[1]], float("-inf"))
                val, idx = torch.topk(scores, min(k, scores.shape[1]), dim=1)
                idx = idx + start
                if best_val is not None:
                    val = torch.cat([best_val, val], dim=1)
                    idx = torch.cat([best_idx, idx], dim=1)
                    val, pos = torch.topk(val, k, dim=1)
                    idx = idx.gather(1, pos)
                best_val, best_idx = val, idx
                del scores  # free this chunk before the next one is computed
            if seen is not None:
                best_val.masked_fill_(best_val <= _SEEN, float("-inf"))
            values.append(best_val)
            indices.append(best_idx)
        if not values:
            empty = states.new_zeros(0, k)
            return empty, empty.long()
        return torch.cat(values), torch.cat(indices)

    def _own_items(
        self, seen: tuple[np.ndarray, np.ndarray], first: int, n_rows: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (row within the block, item) pairs of the sessions of the rows ``first`` to
        ``first + batch_size``, on the device."""
        items, offsets = seen
        last = min(first + self.batch_size, n_rows)
        lengths = np.diff(offsets[first : last + 1])
        rows = np.repeat(np.arange(last - first), lengths)
        own = items[offsets[first] : offsets[last]]
        return (
            torch.as_tensor(rows, device=self.device),
            # A copy: the session arrays are read-only, which torch warns of.
            torch.as_tensor(np.array(own, dtype=np.int64), device=self.device),
        )

    def recommend(
        self,
        items: np.ndarray,
        offsets: np.ndarray,
        k: int,
        exclude_seen: bool = False,
        blocked: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The one recommendation path: top-``k`` item indices and scores of every session,
        best first, as host arrays of shape ``(n_sessions, min(k, candidates))``.

        ``exclude_seen`` leaves out each session's own items; where fewer than ``k`` other
        candidates exist, the last places hold seen items with score ``-inf``. ``blocked``
        (a boolean per item) are never returned: the candidates are the other items.
        """
        seen = (items, offsets) if exclude_seen and len(items) else None
        scores, idx = self.top_k(self.final_states(items, offsets), k, seen, blocked)
        return idx.cpu().numpy(), scores.cpu().numpy()

    def predict(
        self,
        items: np.ndarray,
        offsets: np.ndarray,
        rows: np.ndarray,
        shape: tuple[int, int],
        top_k: int | None,
    ) -> sp.csr_matrix:
        """Scores as a sparse matrix of ``shape``: session ``s`` fills row ``rows[s]``, with its
        ``top_k`` best items, or with every item when ``top_k`` is None."""
        if len(rows) == 0:
            return sp.csr_matrix(shape, dtype=np.float32)
        if top_k is not None:
            idx, val = self.recommend(items, offsets, top_k)
            return sp.csr_matrix(
                (val.ravel(), (np.repeat(rows, idx.shape[1]), idx.ravel())), shape=shape
            )
        n_items = self.model.n_items
        n_cells = len(rows) * n_items
        if n_cells > _LARGE_OUTPUT:
            warn(
                f"predict without predict_topK returns every item's score: {len(rows)} "
                f"sessions x {n_items} items = {n_cells / 1e6:.0f} million scores "
                f"({n_cells * 8 / 2**30:.1f} GiB); set predict_topK, or use recommend(), "
                "for the best items only"
            )
        states = self.final_states(items, offsets)
        # Filled straight into the CSR arrays, in row order: one copy of the output.
        order = np.argsort(rows, kind="stable")
        data = np.empty(n_cells, dtype=np.float32)
        block = max(1, (1 << 22) // max(1, n_items))
        with torch.no_grad():
            for s in range(0, len(rows), block):
                take = torch.as_tensor(order[s : s + block], device=states.device)
                scores = self.model.score(
                    states.index_select(0, take), self.model.item_output, self.model.item_bias
                )
                data[s * n_items : s * n_items + scores.numel()] = scores.cpu().numpy().ravel()
        index_dtype = np.int32 if n_cells < 2**31 else np.int64
        counts = np.zeros(shape[0], dtype=np.int64)
        counts[rows] = n_items
        indptr = np.zeros(shape[0] + 1, dtype=index_dtype)
        np.cumsum(counts, out=indptr[1:])
        indices = np.tile(np.arange(n_items, dtype=index_dtype), len(rows))
        return sp.csr_matrix((data, indices, indptr), shape=shape)

    @torch.no_grad()
    def next_item_ranks(
        self, items: np.ndarray, offsets: np.ndarray, last_only: bool = False
    ) -> np.ndarray:
        """Conservative rank of the true next item at every position of every session.

        Rank = number of items whose score is >= the target's (the target counted
        once), ranked against the whole catalogue. Returned in event order (by
        session, then position); with ``last_only``, only each session's last
        prediction.
        """
        model, device, chunk_size = self.model, self.device, self.chunk_size
        has_next = np.ones(len(items), dtype=bool)
        has_next[offsets[1:] - 1] = False
        if last_only:
            has_next[:] = False
            long_enough = np.diff(offsets) >= 2
            has_next[offsets[1:][long_enough] - 2] = True
        items_dev = torch.as_tensor(np.array(items, dtype=np.int64), device=device)
        ranks = torch.zeros(len(items), dtype=torch.int64, device=device)
        single_chunk = model.n_items <= chunk_size
        for events, out in self.walk(items, offsets, has_next):
            target = items_dev[events + 1]
            if single_chunk:
                scores = model.score(out, model.item_output, model.item_bias)
                target_score = scores.gather(1, target[:, None])
                rank = (scores >= target_score).sum(dim=1)
            else:
                rows = model.item_output.index_select(0, target)
                bias = model.item_bias.index_select(0, target)
                target_score = (out * rows).sum(dim=1, keepdim=True) + bias
                rank = torch.ones(len(target), dtype=torch.int64, device=device)
                for start, scores in model.score_chunks(out, chunk_size):
                    local = (target - start).clamp(0, scores.shape[1] - 1)[:, None]
                    inside = ((target >= start) & (target < start + scores.shape[1]))[:, None]
                    own = scores.gather(1, local)
                    scores.scatter_(1, local, torch.where(inside, float("-inf"), own))
                    rank += (scores >= target_score).sum(dim=1)
                    del scores  # free this chunk before the next one is computed
            ranks.index_copy_(0, events, rank)
        return ranks[torch.as_tensor(has_next, device=device)].cpu().numpy()


class Int8Scorer:
    """Top-K in two passes: every item scored from int8 item vectors (a quarter of the
    float32 table's memory, read once per event on a large catalogue), keeping each row's best
    ``k + margin`` on the fly, then those candidates scored again exactly in float32.

    The scores returned are exact; an item can be missed only when its int8 score falls
    ``margin`` places below its exact rank. The table is a copy of the network's item vectors
    when built: build another after training changes them. CPU only; without the compiled
    kernels (numba missing, or ``GRU4REC_DISABLE_KERNELS=1``) it scores exactly, as
    :class:`Scorer`.

    Parameters
    ----------
    model : GRU4RecNet
    margin : int, default=64
        Candidates kept beyond ``k`` for the exact pass.
    """

    def __init__(self, model: GRU4RecNet, margin: int = 64) -> None:
        from . import kernels

        self.model = model
        self.margin = int(margin)
        self._weights = np.ascontiguousarray(model.item_output.detach().cpu().numpy())
        self._bias = np.ascontiguousarray(model.item_bias.detach().cpu().numpy()[:, 0])
        self._exact = Scorer(model, torch.device("cpu"))
        self._table = quantized.Int8Table(self._weights) if kernels.AVAILABLE else None
        if self._table is not None:
            self._first_bias = self._table.padded_bias(self._bias)

    @torch.no_grad()
    def top_k(
        self,
        states: torch.Tensor,
        k: int,
        seen: tuple[np.ndarray, np.ndarray] | None = None,
        blocked: np.ndarray | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`Scorer.top_k`, for CPU states."""
        if self._table is None:
            return self._exact.top_k(states, k, seen, blocked)
        queries = states.detach().cpu().numpy()
        values, items = self.top_k_arrays(queries, k, seen, blocked)
        return torch.from_numpy(values), torch.from_numpy(items)

    def top_k_arrays(
        self,
        queries: np.ndarray,
        k: int,
        seen: tuple[np.ndarray, np.ndarray] | None = None,
        blocked: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`top_k` on host arrays: float32 states in, ``(scores, items)`` out."""
        if self._table is None:
            return self._exact_arrays(queries, k, seen, blocked)
        n_items = len(self._bias)
        first_bias = self._first_bias
        if blocked is not None:
            blocked = np.asarray(blocked, dtype=bool)
            first_bias = self._table.padded_bias(self._bias, blocked)
        n_candidates = n_items - (int(blocked.sum()) if blocked is not None else 0)
        k = min(k, n_candidates)
        rows = queries.shape[0]
        if k <= 0:
            return np.zeros((rows, 0), dtype=np.float32), np.zeros((rows, 0), dtype=np.int64)
        most_seen = int(np.diff(seen[1]).max(initial=0)) if seen is not None else 0
        m = min(k + self.margin + most_seen, n_candidates)  # seen items may take places
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        candidates = self._table.first_pass(first_bias, queries, m)
        values, items = quantized.exact_top_k(
            self._weights, self._bias, queries, candidates, k, seen, _SEEN
        )
        if (items < 0).any():  # fewer than k finite int8 scores (NaN weights or states)
            return self._exact_arrays(queries, k, seen, blocked)
        return values, items

    def _exact_arrays(self, queries, k, seen, blocked) -> tuple[np.ndarray, np.ndarray]:
        values, items = self._exact.top_k(torch.tensor(queries), k, seen, blocked)
        return values.numpy(), items.numpy()
