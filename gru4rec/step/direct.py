"""The hand-differentiated training path: ``bptt == 1`` and a sampled loss, no autograd graph.

The forward pass keeps what the backward pass needs; the loss gradient with respect to the
scores comes from the loss object (:meth:`gru4rec.losses.Loss.value_grad`: its closed form,
else autograd over the score matrix alone), then the output layer and the GRU cells are
differentiated with a few matrix products. Random draws happen in the order of the reference
path (negatives, then the dropout masks layer by layer), so both give the same model from the
same generator state. Any device, any number of layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import kernels
from ..cpu import matmul
from ..device import fused_kernels
from ..losses import ScoredItems
from ..model import (
    GRU4RecNet,
    GRUCache,
    gru_cell_backward,
    gru_cell_forward,
    gru_weight_grads,
)
from ..optim import RowSparseOptimizer, clip_grad_norm
from .epoch import Epoch, distinct_columns, mask_fn_for, steps

__all__ = ["host_cell_backward", "train_epoch"]


@torch.no_grad()
def train_epoch(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`gru4rec.step.train_epoch` differentiated by hand."""
    model, data, sampler, generator = run.model, run.data, run.sampler, run.generator
    loss = run.loss.build()
    value_grad, cell_backward = loss.value_grad, gru_cell_backward
    if fused_kernels(data.inputs.device):  # the element-wise passes in compiled loops
        cell_backward = host_cell_backward
        if loss.host_value_grad is not None:
            value_grad = loss.host_value_grad
    model.train()
    batch = data.batch_size
    hidden = model.init_hidden(batch, data.inputs.device)
    total = torch.zeros((), device=data.inputs.device)
    out_table, bias_table = model.item_output, model.item_bias
    in_table = out_table if model.constrained else model.item_embedding
    dropout_mask = mask_fn_for(out_table)
    for t, b, x, y, keep, negatives, log_mult in steps(data, sampler, on_steps):
        hidden = [hl[:b] * keep for hl in hidden]
        if loss.distinct_targets:
            cols, positives, col_weights = distinct_columns(data, t, y, negatives, log_mult)
        else:
            cols, positives, col_weights = torch.cat([y, negatives]), None, None
        weights = out_table.index_select(0, cols)
        emb = in_table.index_select(0, x)

        embed_mask = dropout_mask(emb, run.dropout_embed, generator)
        out = emb if embed_mask is None else emb * embed_mask
        caches, masks = [], []
        for i, cell in enumerate(model.cells):
            out, cache = gru_cell_forward(cell, out, hidden[i])
            mask = dropout_mask(out, run.dropout_hidden, generator)
            if mask is not None:
                out.mul_(mask)
            hidden[i] = out
            caches.append(cache)
            masks.append(mask)

        scale = b / batch if b < batch else 1.0
        columns = ScoredItems(y, negatives, log_mult, sampler, scale, positives, col_weights)
        step_loss, grad_scores, grad_bias = value_grad(out, weights, cols, bias_table, columns)
        total += step_loss * batch

        grad = matmul(grad_scores, weights)
        grad_weights = matmul(grad_scores.t(), out)
        for i in range(len(model.cells) - 1, -1, -1):
            grad = cell_backward(model.cells[i], caches[i], grad, mask=masks[i])
        if embed_mask is not None:
            grad.mul_(embed_mask)

        _update(model, run.optimizer, cols, x, grad_weights, grad_bias, grad, run.clipnorm)
    return total


def _update(
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


def host_cell_backward(
    cell: torch.nn.GRUCell,
    cache: GRUCache,
    grad: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`gru4rec.model.gru_cell_backward` for CPU tensors, its element-wise part in one
    compiled pass (:func:`gru4rec.kernels.gru_backward`)."""
    x, h, rz, n, gh_n = cache
    k, b = cell.hidden_size, grad.shape[0]
    d_gi = torch.empty(b, 3 * k, dtype=grad.dtype)
    d_gh = torch.empty_like(d_gi)
    bias_ih = torch.empty(3 * k, dtype=grad.dtype)
    bias_hh = torch.empty_like(bias_ih)
    kernels.gru_backward(
        grad.numpy(),
        None if mask is None else mask.numpy(),
        *(t.numpy() for t in (h, rz, n, gh_n)),
        d_gi.numpy(),
        d_gh.numpy(),
        bias_ih.numpy(),
        bias_hh.numpy(),
    )
    cell.bias_ih.grad, cell.bias_hh.grad = bias_ih, bias_hh
    return gru_weight_grads(cell, d_gi, d_gh, x, h)
