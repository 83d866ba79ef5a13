"""One training epoch over a session-parallel schedule.

Everything a step needs is sliced from tensors moved to the device once per
fit (:class:`EpochData`); the loop runs over mini-batches only, never reads a
value back from the device, and accumulates the loss on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import kernels
from .device import fused_kernels, matmul
from .losses import (
    bpr_from_factors,
    bpr_max_value_grad,
    bpr_value_grad,
    cross_entropy_full,
    cross_entropy_value_grad,
    get_loss,
)
from .model import (
    GRU4RecNet,
    dropout_bits,
    dropout_mask,
    gru_cell_backward,
    gru_cell_forward,
)
from .optim import RowSparseOptimizer, clip_grad_norm, clip_grad_norm_arrays
from .samplers import NegativeSampler
from .schedule import Schedule

__all__ = ["REPORT_EVERY", "Epoch", "EpochData", "LossConfig", "train_epoch"]

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
class LossConfig:
    """How scores become a loss.

    ``name`` is a sampled loss of :mod:`gru4rec.losses` or ``'full-cross-entropy'``
    (softmax over the whole catalogue, no sampling).
    """

    name: str
    bpreg: float = 1.0
    elu_param: float = 0.0
    logq: float = 0.0

    @property
    def full(self) -> bool:
        return self.name == "full-cross-entropy"


def _scores_to_loss(
    scores: torch.Tensor,
    cfg: LossConfig,
    targets: torch.Tensor,
    negatives: torch.Tensor | None,
    sampler: NegativeSampler | None,
    log_mult: torch.Tensor | None = None,
) -> torch.Tensor:
    if cfg.full:
        return cross_entropy_full(scores, targets)
    log_weights = None
    if log_mult is not None:
        log_weights = torch.cat([log_mult.new_zeros(targets.shape[0]), log_mult])
    if cfg.name == "cross-entropy":
        bias = None
        if cfg.logq > 0 and sampler is not None:
            bias = sampler.log_probabilities(targets, negatives) * cfg.logq
        return get_loss("cross-entropy")(scores, logq_bias=bias, log_weights=log_weights)
    if cfg.elu_param > 0:
        scores = F.elu(scores, alpha=cfg.elu_param)
    return get_loss(cfg.name)(scores, bpreg=cfg.bpreg, log_weights=log_weights)


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


def train_epoch(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run one epoch; return the summed training loss over rows (a device scalar).

    Each step's loss is the sum over its rows divided by the full batch size (the
    first step's row count), so every row weighs the same, also in the shrinking
    steps at the end of the epoch. Dividing the returned sum by ``data.n_rows``
    gives the loss per event. ``on_steps(n)``, when given, hears every
    ``REPORT_EVERY`` steps (and at the end) how many steps were done since its last call.

    With ``bptt == 1`` and a sampled loss, every step is differentiated by hand
    (:func:`_train_epoch_direct`: the same numbers, no autograd graph; on the CPU, one GRU
    layer under cross-entropy, bpr-max or bpr runs as compiled calls, :func:`_train_epoch_fused`);
    otherwise autograd differentiates the step (:func:`train_epoch_autograd`).
    """
    if run.bptt == 1 and not run.loss.full and run.sampler is not None:
        if _fused_step_applies(run.model, run.loss):
            return _train_epoch_fused(run, on_steps)
        return _train_epoch_direct(run, on_steps)
    return train_epoch_autograd(run, on_steps)


def train_epoch_autograd(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`train_epoch` with autograd differentiating every step (the reference path;
    any loss, any ``bptt``)."""
    model, data, optimizer, loss, sampler, generator = _parts(run)
    bptt, clipnorm = run.bptt, run.clipnorm
    dropout_embed, dropout_hidden = run.dropout_embed, run.dropout_hidden
    model.train()
    n_steps, batch = data.n_steps, data.batch_size
    hidden = model.init_hidden(batch, data.inputs.device)
    total = torch.zeros((), device=data.inputs.device)
    out_table, bias_table = model.item_output, model.item_bias
    window_loss: torch.Tensor | None = None
    updates: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
    fast_bpr = loss.name == "bpr"
    for t, b, x, y, keep, negatives, log_mult in _steps(data, sampler, on_steps):
        hidden = [hl[:b] * keep for hl in hidden]
        # Leaves hold only the rows this step reads; their grads go to the optimiser.
        positives = col_weights = None
        if loss.full:
            out_leaf = out_table.detach().requires_grad_(True)
            bias_leaf = bias_table.detach().requires_grad_(True)
            cols = None
        else:
            if fast_bpr:
                cols, positives, col_weights = _bpr_columns(data, t, y, negatives, log_mult)
            else:
                cols = y if negatives is None else torch.cat([y, negatives])
            out_leaf = model.gather_rows(out_table, cols)
            bias_leaf = model.gather_rows(bias_table, cols)
        if model.constrained:
            # The input vector is the output row; the bias is not read.
            emb = model.gather_rows(out_table, x)
            emb_name = _INPUT_ROWS
        else:
            emb = model.gather_rows(model.item_embedding, x)
            emb_name = "item_embedding"

        out, hidden = model.step(emb, hidden, dropout_embed, dropout_hidden, generator)
        if fast_bpr:
            # The default loss: scored and differentiated in one buffer.
            step_loss = bpr_from_factors(out, out_leaf, bias_leaf, positives, col_weights)
        else:
            scores = model.score(out, out_leaf, bias_leaf)
            step_loss = _scores_to_loss(scores, loss, y, negatives, sampler, log_mult)
        if b < batch:
            # Rows, not steps, carry equal weight: the shrinking steps at the end of an
            # epoch are scaled down to their share of a full batch, as the reference
            # implementation does (a mean over a few rows would give the last updates
            # of every epoch outsized steps; measured: MRR@20 -0.005 on RSC15).
            step_loss = step_loss * (b / batch)
        total += step_loss.detach() * batch
        window_loss = step_loss if window_loss is None else window_loss + step_loss
        updates.append(("item_output", out_leaf, cols))
        updates.append(("item_bias", bias_leaf, cols))
        updates.append((emb_name, emb, x))

        if (t + 1) % bptt == 0 or t == n_steps - 1:
            window_loss.backward()
            _update(model, optimizer, updates, clipnorm)
            window_loss = None
            updates = []
            hidden = [hl.detach() for hl in hidden]
    return total


@torch.no_grad()
def _train_epoch_direct(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`train_epoch` for ``bptt == 1`` and a sampled loss, differentiated by hand.

    The forward pass keeps what the backward pass needs; the loss gradient with respect to
    the scores comes in closed form (:mod:`gru4rec.losses`' ``*_value_grad``; autograd over
    the score matrix alone for the other losses), then the output layer and the GRU cells
    are differentiated with a few matrix products. Random draws happen in the order of the
    autograd path (negatives, then the dropout masks layer by layer), so both give the same
    model from the same generator state.
    """
    model, data, optimizer, loss, sampler, generator = _parts(run)
    dropout_embed, dropout_hidden, clipnorm = run.dropout_embed, run.dropout_hidden, run.clipnorm
    model.train()
    batch = data.batch_size
    hidden = model.init_hidden(batch, data.inputs.device)
    total = torch.zeros((), device=data.inputs.device)
    out_table, bias_table = model.item_output, model.item_bias
    in_table = out_table if model.constrained else model.item_embedding
    fast_bpr = loss.name == "bpr"
    for t, b, x, y, keep, negatives, log_mult in _steps(data, sampler, on_steps):
        hidden = [hl[:b] * keep for hl in hidden]
        if fast_bpr:
            cols, positives, col_weights = _bpr_columns(data, t, y, negatives, log_mult)
        else:
            cols, positives, col_weights = torch.cat([y, negatives]), None, None
        weights = out_table.index_select(0, cols)
        emb = in_table.index_select(0, x)

        embed_mask = dropout_mask(emb, dropout_embed, generator)
        out = emb if embed_mask is None else emb * embed_mask
        caches, masks = [], []
        for i, cell in enumerate(model.cells):
            out, cache = gru_cell_forward(cell, out, hidden[i])
            mask = dropout_mask(out, dropout_hidden, generator)
            if mask is not None:
                out.mul_(mask)
            hidden[i] = out
            caches.append(cache)
            masks.append(mask)

        scale = b / batch if b < batch else 1.0
        columns = _Columns(y, negatives, log_mult, sampler, scale, positives, col_weights)
        step_loss, grad_scores, grad_bias = _loss_value_grad(
            out, weights, cols, bias_table, loss, columns
        )
        total += step_loss * batch

        grad = matmul(grad_scores, weights)
        grad_weights = matmul(grad_scores.t(), out)
        for i in range(len(model.cells) - 1, -1, -1):
            grad = gru_cell_backward(model.cells[i], caches[i], grad, mask=masks[i])
        if embed_mask is not None:
            grad.mul_(embed_mask)

        _update_direct(model, optimizer, cols, x, grad_weights, grad_bias, grad, clipnorm)
    return total


def _parts(
    run: Epoch,
) -> tuple[GRU4RecNet, EpochData, RowSparseOptimizer, LossConfig, Any, torch.Generator]:
    return run.model, run.data, run.optimizer, run.loss, run.sampler, run.generator


def _fused_step_applies(model: GRU4RecNet, loss: LossConfig) -> bool:
    """Whether :func:`_train_epoch_fused` covers this model and loss (else the direct path)."""
    return (
        loss.name in ("cross-entropy", "bpr-max", "bpr")
        and len(model.cells) == 1
        and fused_kernels(model.item_output.device)
        and model.item_output.dtype == torch.float32
    )


@torch.no_grad()
def _train_epoch_fused(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`_train_epoch_direct` for one GRU layer and sampled cross-entropy, bpr-max or bpr on
    the CPU, with each step in a few compiled calls (:mod:`gru4rec.kernels`).

    The same computation in the same order, with the same random draws: negatives, then the
    embedding's dropout bits, then the hidden layer's. Per step, Python only slices the
    schedule and calls the kernels, on NumPy views of the tensors taken once per epoch.
    """
    model, data, optimizer, loss, sampler, generator = _parts(run)
    dropout_embed, dropout_hidden, clipnorm = run.dropout_embed, run.dropout_hidden, run.clipnorm
    model.train()
    batch = data.batch_size
    cell = model.cells[0]
    in_table = model.item_output if model.constrained else model.item_embedding
    tables = [t.detach().numpy() for t in (in_table, model.item_output, model.item_bias)]
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    gru = [p.detach().numpy() for p in params]
    grads = [np.empty_like(a) for a in gru]
    dense_update = optimizer.dense_updater(params)
    # At most: the targets, every negative, and (one table) the inputs.
    max_rows = 2 * batch + sampler.n_samples
    out_update = optimizer.rows_updater("item_output", max_rows, "item_bias")
    if not model.constrained:
        in_update = optimizer.rows_updater("item_embedding", batch)
    log_counts = sampler.log_counts().numpy()
    hidden = np.zeros((batch, model.hidden_size), dtype=np.float32)
    e_drawer = _Bits(batch * in_table.shape[1], dropout_embed, generator)
    h_drawer = _Bits(batch * model.hidden_size, dropout_hidden, generator)
    no_mult = np.empty(0, np.float32)
    xent = loss.name == "cross-entropy"
    # bpr-max and bpr weigh the negatives' multiplicities in the loss, not in the scores.
    logq = np.float32(loss.logq if xent else 0.0)
    total = 0.0
    for b, x_np, y_np, keep_np, neg_np, mult, target_pos in _steps_arrays(data, sampler, on_steps):
        mult = no_mult if mult is None else mult
        e_bits = e_drawer.draw(b * in_table.shape[1])
        h_bits = h_drawer.draw(b * model.hidden_size)
        cols, weights, x_in, h, rz, n, gh_n, out, h_mask, logits_t = kernels.step_forward(
            x_np, y_np, neg_np, mult if xent else no_mult,
            keep_np, hidden, tables[0], tables[1], tables[2], log_counts,
            np.float32(sampler.alpha), logq, *gru, *e_bits, *h_bits,
        )  # fmt: skip
        hidden = out
        scale = b / batch if b < batch else 1.0
        g_bias = np.empty((len(cols), 1), np.float32)
        if xent:
            step_loss = kernels.xent_step_softmax_loss(logits_t, scale / b, g_bias)
        elif loss.name == "bpr":
            step_loss = kernels.bpr_step_loss(logits_t, mult, scale, g_bias)
        else:
            step_loss = kernels.bpr_max_step_loss(
                logits_t, mult, loss.bpreg, loss.elu_param, scale / b, g_bias
            )
            if step_loss != step_loss:  # NaN: outside the closed form's range
                step_loss, logits_t, g_bias = _long_way(
                    run, out, weights, cols, y_np, neg_np, mult, scale
                )
        # logits_t now holds the scores' gradient, transposed.
        g_in, g_weights = kernels.step_backward(
            logits_t, weights, out, h_mask, x_in, h, keep_np, rz, n, gh_n, *e_bits, gru[0], *grads
        )
        total += step_loss * batch
        if clipnorm is not None:
            step_grads = [*grads, g_weights, g_bias, g_in]
            norm_of = None
            if loss.name == "bpr" and target_pos is not None:
                # The other paths score bpr's repeated targets as one column each.
                merged = _distinct_target_grads(target_pos, g_weights, g_bias)
                norm_of = [*grads, *merged, g_in]
            clip_grad_norm_arrays(step_grads, clipnorm, norm_of)
        dense_update(grads)
        if model.constrained:
            out_update(np.concatenate([cols, x_np]), g_weights, g_in, g_bias)
        else:
            out_update(cols, g_weights, None, g_bias)
            in_update(x_np, g_in)
    return torch.tensor(total)


def _long_way(
    run: Epoch,
    out: np.ndarray,
    weights: np.ndarray,
    cols: np.ndarray,
    targets: np.ndarray,
    negatives: np.ndarray,
    log_mult: np.ndarray,
    scale: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """A fused step's loss, its score gradient (transposed) and column-bias gradient by the
    direct path's torch code: for the rare steps the compiled closed form cannot take
    (``log_mult`` empty: the negatives are raw draws)."""
    mult = torch.from_numpy(log_mult) if len(log_mult) else None
    targets_t, negatives_t = torch.from_numpy(targets), torch.from_numpy(negatives)
    step = _Columns(targets_t, negatives_t, mult, run.sampler, scale, None, None)
    value, grad, grad_bias = _loss_value_grad(
        torch.from_numpy(out),
        torch.from_numpy(weights),
        torch.from_numpy(cols),
        run.model.item_bias.detach(),
        run.loss,
        step,
    )
    return float(value), grad.t().contiguous().numpy(), grad_bias.contiguous().numpy()


class _Bits:
    """:func:`gru4rec.model.dropout_bits` for the compiled step: the same draws from the
    same generator, into one buffer per epoch; ``(bits, threshold, keep)`` as NumPy values
    (empty bits where ``p`` is 0: nothing is drawn then)."""

    def __init__(self, max_n: int, p: float, generator: torch.Generator) -> None:
        self.generator = generator
        self.on = p > 0.0
        if not self.on:
            self.none = (np.empty(0, np.int16), np.int16(0), np.float32(0.0))
            return
        self.p = p
        self.words = torch.empty((max_n + 3) // 4, dtype=torch.int64)
        self.bits = self.words.numpy().view(np.int16)

    def draw(self, n: int) -> tuple[np.ndarray, np.int16, np.float32]:
        if not self.on:
            return self.none
        _, threshold, keep = dropout_bits(n, self.p, self.generator, out=self.words)
        return self.bits[:n], np.int16(threshold), np.float32(keep)


def _distinct_target_grads(
    target_pos: np.ndarray, g_weights: np.ndarray, g_bias: np.ndarray
) -> list[np.ndarray]:
    """The output gradients with the target columns of equal items summed (the columns
    the other paths score for bpr), for the gradient norm: ``[weights, bias]`` of the
    distinct targets, then of the negatives."""
    b = len(target_pos)
    k = int(target_pos.max()) + 1 if b else 0
    merged_w = np.zeros((k, g_weights.shape[1]), g_weights.dtype)
    merged_b = np.zeros((k, 1), g_bias.dtype)
    np.add.at(merged_w, target_pos, g_weights[:b])
    np.add.at(merged_b, target_pos, g_bias[:b])
    return [merged_w, merged_b, g_weights[b:], g_bias[b:]]


def _steps_arrays(
    data: EpochData,
    sampler: NegativeSampler,
    on_steps: Callable[[int], None] | None,
) -> Iterator[
    tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]
]:
    """:func:`_steps` for the compiled step (CPU), as NumPy views: ``(rows, inputs, targets,
    keep, negatives, log_mult, target_pos)`` (``target_pos``: each row's target among the
    step's distinct targets, when the data has them). The same draws in the same
    order; a NumPy slice costs a tenth of a tensor slice and its conversion."""
    inputs, targets = data.inputs.numpy(), data.targets.numpy()
    keep = data.keep.numpy().reshape(-1)
    target_pos = None if data.target_pos is None else data.target_pos.numpy()
    for s, e in _step_spans(data, on_steps):
        if sampler.dedup:
            negatives, log_mult = sampler.draw_unique_arrays()
        else:
            negatives, log_mult = sampler.draw().numpy(), None
        pos = None if target_pos is None else target_pos[s:e]
        yield e - s, inputs[s:e], targets[s:e], keep[s:e], negatives, log_mult, pos


def _step_spans(
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


def _steps(
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
    for t, (s, e) in enumerate(_step_spans(data, on_steps)):
        negatives = log_mult = None
        if sampler is not None and sampler.dedup:
            negatives, log_mult = sampler.draw_unique()
        elif sampler is not None:
            negatives = sampler.draw()
        yield t, e - s, data.inputs[s:e], data.targets[s:e], data.keep[s:e], negatives, log_mult


def _update_direct(
    model: GRU4RecNet,
    optimizer: RowSparseOptimizer,
    cols: torch.Tensor,
    inputs: torch.Tensor,
    grad_weights: torch.Tensor,
    grad_bias: torch.Tensor,
    grad_inputs: torch.Tensor,
    clipnorm: float | None,
) -> None:
    """Apply one hand-differentiated step: the GRU from ``.grad``, the item rows from the
    gradients of the scored columns ``cols`` and of the input rows ``inputs``."""
    if clipnorm is not None:
        grads = [p.grad for p in model.dense_parameters() if p.grad is not None]
        clip_grad_norm([*grads, grad_weights, grad_bias, grad_inputs], clipnorm)
    optimizer.step_dense()
    if model.constrained:
        optimizer.step_rows(
            "item_output",
            torch.cat([cols, inputs]),
            [grad_weights, grad_inputs],
            leading={"item_bias": grad_bias},
        )
    else:
        optimizer.step_rows("item_output", cols, grad_weights, leading={"item_bias": grad_bias})
        optimizer.step_rows("item_embedding", inputs, grad_inputs)


class _Columns(NamedTuple):
    """A step's scored columns beyond the weights: targets, then negatives."""

    targets: torch.Tensor
    negatives: torch.Tensor
    log_mult: torch.Tensor | None  # log multiplicity of each distinct negative
    sampler: NegativeSampler
    scale: float  # the step's share of a full batch
    positives: torch.Tensor | None  # each row's positive column (bpr's distinct targets)
    col_weights: torch.Tensor | None


def _loss_value_grad(
    out: torch.Tensor,
    weights: torch.Tensor,
    cols: torch.Tensor,
    bias_table: torch.Tensor,
    cfg: LossConfig,
    step: _Columns,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The step's loss (times ``scale``), its gradient w.r.t. the scores ``out @ weights.T +
    bias[cols]`` (closed form where :mod:`gru4rec.losses` has one) and w.r.t. the column
    biases ``bias[cols]`` (shape ``(columns, 1)``)."""
    targets, negatives, log_mult, sampler, scale = step[:5]
    if cfg.name == "cross-entropy" and fused_kernels(out.device):
        # Output bias, -logq log q and log multiplicity of every column in one pass.
        col_bias = torch.empty(1, cols.shape[0])
        kernels.xent_column_bias(
            bias_table.numpy(),
            sampler.log_counts().numpy(),
            targets.numpy(),
            negatives.numpy(),
            None if log_mult is None else log_mult.numpy(),
            sampler.alpha,
            cfg.logq,
            col_bias.numpy()[0],
        )
        grad_bias = torch.empty(cols.shape[0], 1)
        value, grad = cross_entropy_value_grad(
            matmul(out, weights.t(), col_bias), scale, col_sums=grad_bias.view(-1)
        )
        return value, grad, grad_bias
    col_bias = bias_table.index_select(0, cols).t()
    value, grad = _scores_value_grad(out, weights, col_bias, cfg, step)
    return value, grad, grad.sum(dim=0).unsqueeze(1)


def _scores_value_grad(
    out: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, cfg: LossConfig, step: _Columns
) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's loss (times ``scale``) and its gradient w.r.t. the scores ``out @ weights.T
    + bias``, in closed form where :mod:`gru4rec.losses` has one."""
    targets, negatives, log_mult, sampler, scale, positives, col_weights = step
    col_bias = bias
    if cfg.name == "bpr":
        scores = matmul(out, weights.t(), col_bias)
        return bpr_value_grad(scores, positives, col_weights, scale)
    b = targets.shape[0]
    if cfg.name == "cross-entropy":
        # Every column bias (output bias, -logq log q, log multiplicity) in the one addmm.
        if cfg.logq > 0:
            log_q = sampler.log_probabilities(targets, negatives)
            col_bias = torch.add(col_bias, log_q, alpha=-cfg.logq)
        if log_mult is not None:
            col_bias[:, b:] += log_mult  # a fresh gather or sum: free to change
        return cross_entropy_value_grad(matmul(out, weights.t(), col_bias), scale)
    log_weights = None
    if log_mult is not None:
        log_weights = torch.cat([log_mult.new_zeros(b), log_mult])
    if cfg.name == "bpr-max":
        scores = matmul(out, weights.t(), col_bias)
        result = bpr_max_value_grad(scores, cfg.bpreg, cfg.elu_param, log_weights, scale)
        if result is not None:
            return result
    scores = matmul(out, weights.t(), col_bias)
    # Any other loss (or bpr-max beyond its closed form's range): autograd over the scores.
    with torch.enable_grad():
        scores.requires_grad_(True)
        value = _scores_to_loss(scores, cfg, targets, negatives, sampler, log_mult) * scale
        value.backward()
    return value.detach(), scores.grad


def _bpr_columns(
    data: EpochData,
    step: int,
    targets: torch.Tensor,
    negatives: torch.Tensor | None,
    log_mult: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Columns scored by :func:`bpr_from_factors` at ``step``: the distinct targets
    (when known), then the negatives; each row's positive column; column weights."""
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


# Update name of the output table's rows read as inputs (shared embedding).
_INPUT_ROWS = "item_output:input"


def _update(
    model: GRU4RecNet,
    optimizer: RowSparseOptimizer,
    updates: list[tuple[str, torch.Tensor, torch.Tensor | None]],
    clipnorm: float | None,
) -> None:
    if clipnorm is not None:
        grads = [p.grad for p in model.dense_parameters() if p.grad is not None]
        grads += [leaf.grad for _, leaf, _ in updates if leaf.grad is not None]
        clip_grad_norm(grads, clipnorm)
    optimizer.step_dense()
    full: dict[str, torch.Tensor] = {}
    sparse: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for name, leaf, rows in updates:
        if leaf.grad is None:
            continue
        if rows is None:
            full[name] = leaf.grad if name not in full else full[name] + leaf.grad
        else:
            entry = sparse.setdefault(name, ([], []))
            entry[0].append(rows)
            entry[1].append(leaf.grad)
    # One update per table, so repeated rows (an input item that is also a target)
    # get their gradients summed first. The output rows go first, then the rows read
    # as inputs: the bias, which has exactly the output rows, rides on the same pass.
    out_rows, out_grads = sparse.pop("item_output", ([], []))
    in_rows, in_grads = sparse.pop(_INPUT_ROWS, ([], []))
    _, bias_grads = sparse.pop("item_bias", ([], []))
    if "item_output" in full:
        for r, g in zip(in_rows, in_grads, strict=True):
            full["item_output"].index_add_(0, r, g)
    elif out_rows or in_rows:
        rows = torch.cat(out_rows + in_rows)
        leading = {"item_bias": torch.cat(bias_grads)} if bias_grads else None
        optimizer.step_rows("item_output", rows, out_grads + in_grads, leading=leading)
    for name, (rows, grads) in sparse.items():
        optimizer.step_rows(name, torch.cat(rows), grads)
    for name, grad in full.items():
        optimizer.step_table(name, grad)
