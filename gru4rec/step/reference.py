"""The reference training path: autograd differentiates every step.

Any loss, any ``bptt`` (gradients flow through ``bptt`` steps before an update), the whole
catalogue as columns for a loss that is not sampled. Every other path is checked against this
one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..losses import ScoredItems
from ..model import GRU4RecNet
from ..optim import RowSparseOptimizer, clip_grad_norm
from .epoch import Epoch, distinct_columns, mask_fn_for, steps

__all__ = ["train_epoch"]

# Update name of the output table's rows read as inputs (shared embedding).
_INPUT_ROWS = "item_output:input"


def train_epoch(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`gru4rec.step.train_epoch` with autograd differentiating every step."""
    model, data, optimizer, sampler = run.model, run.data, run.optimizer, run.sampler
    loss = run.loss.build()
    model.train()
    n_steps, batch = data.n_steps, data.batch_size
    hidden = model.init_hidden(batch, data.inputs.device)
    total = torch.zeros((), device=data.inputs.device)
    out_table, bias_table = model.item_output, model.item_bias
    mask_fn = mask_fn_for(out_table)
    window_loss: torch.Tensor | None = None
    updates: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
    for t, b, x, y, keep, negatives, log_mult in steps(data, sampler, on_steps):
        hidden = [hl[:b] * keep for hl in hidden]
        # Leaves hold only the rows this step reads; their grads go to the optimiser.
        positives = col_weights = None
        if not loss.sampled:
            out_leaf = out_table.detach().requires_grad_(True)
            bias_leaf = bias_table.detach().requires_grad_(True)
            cols = None
        else:
            if loss.distinct_targets:
                cols, positives, col_weights = distinct_columns(data, t, y, negatives, log_mult)
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

        out, hidden = model.step(
            emb, hidden, run.dropout_embed, run.dropout_hidden, run.generator, mask_fn
        )
        columns = ScoredItems(y, negatives, log_mult, sampler, 1.0, positives, col_weights)
        step_loss = loss.reference(out, out_leaf, bias_leaf, columns)
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

        if (t + 1) % run.bptt == 0 or t == n_steps - 1:
            window_loss.backward()
            _update(model, optimizer, updates, run.clipnorm)
            window_loss = None
            updates = []
            hidden = [hl.detach() for hl in hidden]
    return total


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
