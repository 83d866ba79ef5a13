"""Running a trained network over sessions: final states, top-K scores, next-item ranks.

Sessions are walked with the same session-parallel schedule as training
(every event gives a row; the hidden state starts from zero for each session),
so a session's result does not depend on which others share its batch.
"""

from __future__ import annotations

import numpy as np
import torch

from .model import GRU4RecNet
from .samplers import Schedule, session_parallel_schedule

__all__ = ["final_states", "next_item_ranks", "score_topk", "walk"]


def _by_length(offsets: np.ndarray) -> np.ndarray:
    # Longest first balances the slots, so the batch stays full until the end.
    return np.argsort(-np.diff(offsets), kind="stable")


def walk(
    model: GRU4RecNet,
    items: np.ndarray,
    offsets: np.ndarray,
    batch_size: int,
    device: torch.device,
    select: np.ndarray,
):
    """Walk all sessions; yield ``(events, outputs)`` for the selected events of each step.

    ``select`` is a boolean per event (aligned with ``items``). Yields device
    tensors: the index of each selected event and the GRU output after reading
    it. Puts the model in evaluation mode (no dropout).
    """
    schedule = session_parallel_schedule(
        offsets, _by_length(offsets), batch_size, include_last=True
    )
    yield from _walk_schedule(model, items, schedule, device, select)


@torch.no_grad()
def _walk_schedule(
    model: GRU4RecNet,
    items: np.ndarray,
    schedule: Schedule,
    device: torch.device,
    select: np.ndarray,
):
    model.eval()
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


def final_states(
    model: GRU4RecNet,
    items: np.ndarray,
    offsets: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """GRU output after the last event of every session, shape ``(n_sessions, hidden)``."""
    n_sessions = len(offsets) - 1
    last = np.zeros(len(items), dtype=bool)
    last[offsets[1:] - 1] = True
    session_of_event = np.repeat(np.arange(n_sessions), np.diff(offsets))
    session_dev = torch.as_tensor(session_of_event, device=device)
    states = torch.zeros(n_sessions, model.hidden_size, device=device)
    for events, out in walk(model, items, offsets, batch_size, device, last):
        states.index_copy_(0, session_dev[events], out)
    return states


@torch.no_grad()
def score_topk(
    model: GRU4RecNet,
    states: torch.Tensor,
    k: int,
    chunk_size: int = 65536,
    block_rows: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` scores and item indices per row of ``states``, best first.

    Rows are taken ``block_rows`` at a time and items ``chunk_size`` at a time,
    so the score buffer never exceeds ``block_rows x chunk_size``.
    """
    k = min(k, model.n_items)
    values, indices = [], []
    for r in range(0, states.shape[0], block_rows):
        best_val = best_idx = None
        for start, scores in model.score_chunks(states[r : r + block_rows], chunk_size):
            val, idx = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            idx = idx + start
            if best_val is not None:
                val = torch.cat([best_val, val], dim=1)
                idx = torch.cat([best_idx, idx], dim=1)
                val, pos = torch.topk(val, k, dim=1)
                idx = idx.gather(1, pos)
            best_val, best_idx = val, idx
            del scores  # free this chunk before the next one is computed
        values.append(best_val)
        indices.append(best_idx)
    if not values:
        empty = states.new_zeros(0, k)
        return empty, empty.long()
    return torch.cat(values), torch.cat(indices)


@torch.no_grad()
def next_item_ranks(
    model: GRU4RecNet,
    items: np.ndarray,
    offsets: np.ndarray,
    batch_size: int,
    device: torch.device,
    last_only: bool = False,
    chunk_size: int = 65536,
) -> np.ndarray:
    """Conservative rank of the true next item at every position of every session.

    Rank = number of items whose score is >= the target's (the target counted
    once), ranked against the whole catalogue. Returned in event order (by
    session, then position); with ``last_only``, only each session's last
    prediction.
    """
    has_next = np.ones(len(items), dtype=bool)
    has_next[offsets[1:] - 1] = False
    if last_only:
        has_next[:] = False
        long_enough = np.diff(offsets) >= 2
        has_next[offsets[1:][long_enough] - 2] = True
    items_dev = torch.as_tensor(np.array(items, dtype=np.int64), device=device)
    ranks = torch.zeros(len(items), dtype=torch.int64, device=device)
    single_chunk = model.n_items <= chunk_size
    for events, out in walk(model, items, offsets, batch_size, device, has_next):
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
