"""The compiled CPU training path: one GRU layer, ``bptt == 1``, a loss with a compiled form.

The computation of the hand-differentiated path in the same order, with the same random draws
(negatives, then the embedding's dropout bits, then the hidden layer's), each step in a few
compiled calls (:mod:`gru4rec.kernels`): the forward pass from the item gather to the scores,
the loss object's compiled value and gradient (:meth:`gru4rec.losses.Loss.compiled_value_grad`),
the backward pass, the optimiser's compiled updates. Per step, Python only slices the schedule
and calls the kernels, on NumPy views of the tensors taken once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import kernels
from ..device import fused_kernels
from ..losses import Loss, ScoredItems
from ..model import GRU4RecNet, dropout_bits
from ..optim import clip_grad_norm_arrays
from .epoch import Epoch, step_arrays

__all__ = ["applies", "train_epoch"]


def applies(model: GRU4RecNet, loss: Loss) -> bool:
    """Whether this path covers ``model`` and ``loss`` (else the hand-differentiated one)."""
    return (
        loss.compiled
        and len(model.cells) == 1
        and fused_kernels(model.item_output.device)
        and model.item_output.dtype == torch.float32
    )


class _Bound:
    """The NumPy views, scratch buffers and bound updaters of one epoch."""

    def __init__(self, run: Epoch) -> None:
        model, optimizer, sampler, batch = (
            run.model,
            run.optimizer,
            run.sampler,
            run.data.batch_size,
        )
        cell = model.cells[0]
        in_table = model.item_output if model.constrained else model.item_embedding
        self.tables = [t.detach().numpy() for t in (in_table, model.item_output, model.item_bias)]
        params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
        self.gru = [p.detach().numpy() for p in params]
        self.grads = [np.empty_like(a) for a in self.gru]
        self.dense_update = optimizer.dense_updater(params)
        # At most: the targets, every negative, and (one table) the inputs.
        max_rows = 2 * batch + sampler.n_samples
        self.out_update = optimizer.rows_updater("item_output", max_rows, "item_bias")
        self.in_update = None
        if not model.constrained:
            self.in_update = optimizer.rows_updater("item_embedding", batch)
        self.log_counts = sampler.log_counts().numpy()
        self.embed_width = in_table.shape[1]
        self.e_drawer = _Bits(batch * self.embed_width, run.dropout_embed, run.generator)
        self.h_drawer = _Bits(batch * model.hidden_size, run.dropout_hidden, run.generator)


@torch.no_grad()
def train_epoch(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`gru4rec.step.train_epoch` in compiled calls (where :func:`applies`)."""
    model, data, sampler, clipnorm = run.model, run.data, run.sampler, run.clipnorm
    loss = run.loss.build()
    model.train()
    batch, k = data.batch_size, model.hidden_size
    v = _Bound(run)
    gru, grads, tables, log_counts, e_width = v.gru, v.grads, v.tables, v.log_counts, v.embed_width
    e_draw, h_draw, dense_update = v.e_drawer.draw, v.h_drawer.draw, v.dense_update
    out_update, in_update = v.out_update, v.in_update
    hidden = np.zeros((batch, k), dtype=np.float32)
    no_mult = np.empty(0, np.float32)
    # Softmax losses weigh the negatives' multiplicities in the scores, the others in the loss.
    mult_in_scores, logq = loss.logit_terms()
    logq, alpha = np.float32(logq), np.float32(sampler.alpha)
    value_grad, may_fail = loss.compiled_value_grad, loss.may_fail
    merge_targets = loss.distinct_targets and clipnorm is not None
    total = 0.0
    for b, x_np, y_np, keep_np, neg_np, mult, target_pos in step_arrays(data, sampler, on_steps):
        mult = no_mult if mult is None else mult
        e_bits = e_draw(b * e_width)
        h_bits = h_draw(b * k)
        cols, weights, x_in, h, rz, n, gh_n, out, h_mask, logits_t = kernels.step_forward(
            x_np, y_np, neg_np, mult if mult_in_scores else no_mult,
            keep_np, hidden, *tables, log_counts, alpha, logq, *gru, *e_bits, *h_bits,
        )  # fmt: skip
        hidden = out
        scale = b / batch if b < batch else 1.0
        g_bias = np.empty((len(cols), 1), np.float32)
        step_loss = value_grad(logits_t, mult, scale, g_bias)
        if may_fail and step_loss != step_loss:  # NaN: outside the closed form's range
            step_loss, logits_t, g_bias = _long_way(
                run, loss, out, weights, cols, y_np, neg_np, mult, scale
            )
        # logits_t now holds the scores' gradient, transposed.
        g_in, g_weights = kernels.step_backward(
            logits_t, weights, out, h_mask, x_in, h, keep_np, rz, n, gh_n, *e_bits, gru[0], *grads
        )
        total += step_loss * batch
        if clipnorm is not None:
            norm_of = None
            if merge_targets and target_pos is not None:
                # The other paths score repeated targets as one column each.
                merged = _distinct_target_grads(target_pos, g_weights, g_bias)
                norm_of = [*grads, *merged, g_in]
            clip_grad_norm_arrays([*grads, g_weights, g_bias, g_in], clipnorm, norm_of)
        dense_update(grads)
        if in_update is None:
            out_update(np.concatenate([cols, x_np]), g_weights, g_in, g_bias)
        else:
            out_update(cols, g_weights, None, g_bias)
            in_update(x_np, g_in)
    return torch.tensor(total)


def _long_way(
    run: Epoch,
    loss: Loss,
    out: np.ndarray,
    weights: np.ndarray,
    cols: np.ndarray,
    targets: np.ndarray,
    negatives: np.ndarray,
    log_mult: np.ndarray,
    scale: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """A step's loss, its score gradient (transposed) and column-bias gradient by the loss's
    torch code (:meth:`gru4rec.losses.Loss.value_grad`): for the rare steps the compiled
    closed form cannot take (``log_mult`` empty: the negatives are raw draws)."""
    mult = torch.from_numpy(log_mult) if len(log_mult) else None
    targets_t, negatives_t = torch.from_numpy(targets), torch.from_numpy(negatives)
    columns = ScoredItems(targets_t, negatives_t, mult, run.sampler, scale)
    value, grad, grad_bias = loss.value_grad(
        torch.from_numpy(out),
        torch.from_numpy(weights),
        torch.from_numpy(cols),
        run.model.item_bias.detach(),
        columns,
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
