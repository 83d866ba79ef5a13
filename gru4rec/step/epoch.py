"""What every training path shares: the schedule on the device, the parts of an epoch,
and the iteration over its steps (with their negatives drawn in one order for all paths)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .. import kernels
from ..device import fused_kernels
from ..losses import LossConfig
from ..model import GRU4RecNet, MaskFn, dropout_bits, dropout_mask
from ..optim import RowSparseOptimizer
from ..samplers import NegativeSampler
from ..schedule import Schedule

__all__ = [
    "REPORT_EVERY",
    "Epoch",
    "EpochData",
    "distinct_columns",
    "host_dropout_mask",
    "mask_fn_for",
    "step_arrays",
    "steps",
]

#: Steps between two calls of ``train_epoch``'s ``on_steps``.
REPORT_EVERY = 50


@dataclass(frozen=True)
class EpochData:
    """A training schedule on the device.

    ``target_*`` describe each step's distinct targets (for losses that score each
    distinct target once): ``target_unique[target_offsets[t]:target_offsets[t + 1]]``
    are step ``t``'s distinct targets, ``target_weights`` how many rows have each, and
    ``target_pos`` the position of each row's target in its step's list.
    """

    inputs: torch.Tensor  # input item of every row
    targets: torch.Tensor  # next item of every row
    keep: torch.Tensor  # (rows, 1) float: 0 where the slot starts a new session
    step_offsets: np.ndarray  # host copy: slicing needs Python ints
    target_unique: torch.Tensor | None = None
    target_weights: torch.Tensor | None = None
    target_pos: torch.Tensor | None = None
    target_offsets: np.ndarray | None = None

    @classmethod
    def build(cls, items: np.ndarray, schedule: Schedule, device: torch.device) -> EpochData:
        events = schedule.events
        targets = items[events + 1]
        # Distinct targets per step, with numpy once per fit: key = (step, item).
        n_steps = schedule.n_steps
        step = np.repeat(np.arange(n_steps, dtype=np.int64), schedule.batch_sizes)
        n_keys = int(targets.max()) + 1 if len(targets) else 1
        keys, inverse, counts = np.unique(
            step * n_keys + targets, return_inverse=True, return_counts=True
        )
        target_offsets = np.searchsorted(keys // n_keys, np.arange(n_steps + 1))
        return cls(
            inputs=torch.as_tensor(items[events], device=device),
            targets=torch.as_tensor(targets, device=device),
            keep=torch.as_tensor(~schedule.resets, dtype=torch.float32, device=device)[:, None],
            step_offsets=schedule.step_offsets,
            target_unique=torch.as_tensor(keys % n_keys, device=device),
            target_weights=torch.as_tensor(counts, dtype=torch.float32, device=device),
            target_pos=torch.as_tensor(inverse.reshape(-1) - target_offsets[step], device=device),
            target_offsets=target_offsets,
        )

    @property
    def n_rows(self) -> int:
        return int(self.step_offsets[-1])

    @property
    def n_steps(self) -> int:
        return len(self.step_offsets) - 1

    @property
    def batch_size(self) -> int:
        """Rows of the first (full) step; 0 for an empty schedule."""
        return int(self.step_offsets[1] - self.step_offsets[0]) if self.n_steps else 0


@dataclass(frozen=True)
class Epoch:
    """What a training epoch runs on: the parts built once per fit and how steps train."""

    model: GRU4RecNet
    data: EpochData
    optimizer: RowSparseOptimizer
    loss: LossConfig
    sampler: NegativeSampler | None
    generator: torch.Generator
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.0
    clipnorm: float | None = None
    bptt: int = 1


def steps(
    data: EpochData,
    sampler: NegativeSampler | None,
    on_steps: Callable[[int], None] | None,
) -> Iterator[
    tuple[
        int, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None
    ]
]:
    """Each step's ``(t, rows, inputs, targets, keep, negatives, log_mult)``, for both paths.

    The negatives are drawn before the step's body runs (so before its dropout masks: the
    draw order both paths share); with a deduplicating sampler each distinct negative is
    scored once and ``log_mult`` holds the log of how often it was drawn (else ``None``, as
    are both without a sampler). ``on_steps`` hears every ``REPORT_EVERY`` finished steps
    and, at the end, of the rest.
    """
    for t, (s, e) in enumerate(step_spans(data, on_steps)):
        negatives = log_mult = None
        if sampler is not None and sampler.dedup:
            negatives, log_mult = sampler.draw_unique()
        elif sampler is not None:
            negatives = sampler.draw()
        yield t, e - s, data.inputs[s:e], data.targets[s:e], data.keep[s:e], negatives, log_mult


def step_arrays(
    data: EpochData,
    sampler: NegativeSampler,
    on_steps: Callable[[int], None] | None,
) -> Iterator[
    tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]
]:
    """:func:`steps` for the compiled step (CPU), as NumPy views: ``(rows, inputs, targets,
    keep, negatives, log_mult, target_pos)`` (``target_pos``: each row's target among the
    step's distinct targets, when the data has them). The same draws in the same
    order; a NumPy slice costs a tenth of a tensor slice and its conversion."""
    inputs, targets = data.inputs.numpy(), data.targets.numpy()
    keep = data.keep.numpy().reshape(-1)
    target_pos = None if data.target_pos is None else data.target_pos.numpy()
    for s, e in step_spans(data, on_steps):
        if sampler.dedup:
            negatives, log_mult = sampler.draw_unique_arrays()
        else:
            negatives, log_mult = sampler.draw().numpy(), None
        pos = None if target_pos is None else target_pos[s:e]
        yield e - s, inputs[s:e], targets[s:e], keep[s:e], negatives, log_mult, pos


def step_spans(
    data: EpochData, on_steps: Callable[[int], None] | None
) -> Iterator[tuple[int, int]]:
    """Each step's row span ``(start, stop)``; ``on_steps`` hears every ``REPORT_EVERY``
    finished steps and, at the end, of the rest."""
    offs, n_steps = data.step_offsets, data.n_steps
    for t in range(n_steps):
        yield int(offs[t]), int(offs[t + 1])
        if on_steps is not None and (t + 1) % REPORT_EVERY == 0:
            on_steps(REPORT_EVERY)
    if on_steps is not None and n_steps % REPORT_EVERY:
        on_steps(n_steps % REPORT_EVERY)


def distinct_columns(
    data: EpochData,
    step: int,
    targets: torch.Tensor,
    negatives: torch.Tensor | None,
    log_mult: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The columns of ``step`` for a loss that scores each distinct target once
    (:attr:`gru4rec.losses.Loss.distinct_targets`): the distinct targets (when known), then
    the negatives; each row's positive column; the column weights."""
    positives = target_weights = None
    cols = targets
    if data.target_unique is not None:
        a, z = int(data.target_offsets[step]), int(data.target_offsets[step + 1])
        cols, target_weights = data.target_unique[a:z], data.target_weights[a:z]
        offs = data.step_offsets
        positives = data.target_pos[int(offs[step]) : int(offs[step + 1])]
    if negatives is None:
        return cols, positives, target_weights
    neg_weights = None if log_mult is None else log_mult.exp()
    if target_weights is None and neg_weights is None:
        return torch.cat([cols, negatives]), None, None
    weights = [
        w if w is not None else torch.ones(len(c), device=c.device)
        for w, c in ((target_weights, cols), (neg_weights, negatives))
    ]
    return torch.cat([cols, negatives]), positives, torch.cat(weights)


def host_dropout_mask(
    x: torch.Tensor, p: float, generator: torch.Generator | None
) -> torch.Tensor | None:
    """:func:`gru4rec.model.dropout_mask` for float32 CPU tensors, the mask made in one
    compiled pass from the same draws (the same mask, bit for bit)."""
    drawn = dropout_bits(x.numel(), p, generator, x.device)
    if drawn is None:
        return None
    bits, threshold, keep = drawn
    mask = torch.empty(x.shape, dtype=x.dtype)
    kernels.dropout_mask(bits.numpy(), threshold, keep, mask.view(-1).numpy())
    return mask


def mask_fn_for(table: torch.Tensor) -> MaskFn:
    """The dropout mask function for a model whose tables are like ``table``: the compiled
    one on the CPU (float32, kernels available), else :func:`gru4rec.model.dropout_mask`."""
    if fused_kernels(table.device) and table.dtype == torch.float32:
        return host_dropout_mask
    return dropout_mask
