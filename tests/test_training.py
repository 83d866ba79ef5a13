"""Tests of gru4rec.step's training epoch: how a step's rows weigh in the update."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import (
    accelerator_step_rows,
    dense,
    many_sessions,
    neg,
)

from gru4rec import kernels, step
from gru4rec.losses import LossConfig, cross_entropy_full
from gru4rec.model import GRU4RecNet
from gru4rec.optim import RowSparseOptimizer, clip_grad_norm
from gru4rec.samplers import NegativeSampler
from gru4rec.schedule import session_parallel_schedule
from gru4rec.step import Epoch, EpochData, train_epoch

N_ITEMS, HIDDEN, LR = 7, 4, 0.1


def _setup(items: np.ndarray, offsets: np.ndarray, batch_size: int):
    order = np.arange(len(offsets) - 1)
    schedule = session_parallel_schedule(offsets, order, batch_size)
    data = EpochData.build(items, schedule, torch.device("cpu"))
    net = GRU4RecNet(N_ITEMS, hidden_size=HIDDEN, embedding_size=3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    opt = RowSparseOptimizer(net.dense_parameters(), net.item_tables(), "sgd", lr=LR)
    return data, net, opt


def test_short_last_step_rows_weigh_as_in_a_full_batch():
    # Sessions (0,1), (2,3), (4,5), batch 2: step 0 holds the first two, step 1 only the
    # third, which starts from a zero state. Its update must be that of one row of a
    # 2-row batch (loss / 2), not of a 1-row mean.
    items = np.array([0, 1, 2, 3, 4, 5])
    offsets = np.array([0, 2, 4, 6])
    loss_cfg = LossConfig("full-cross-entropy")
    data, net, opt = _setup(items, offsets, batch_size=2)
    assert list(np.diff(data.step_offsets)) == [2, 1]
    total = train_epoch(Epoch(net, data, opt, loss_cfg, None, torch.Generator()))

    # The same first step alone, then the last step's SGD update by hand.
    _, ref, ref_opt = _setup(items, offsets, batch_size=2)
    first = EpochData(data.inputs, data.targets, data.keep, data.step_offsets[:2])
    first_total = train_epoch(Epoch(ref, first, ref_opt, loss_cfg, None, torch.Generator()))
    cell = ref.cells[0]
    params = [p.detach().clone().requires_grad_(True) for p in cell.parameters()]
    emb = ref.item_embedding[torch.tensor([4])]
    out = torch._VF.gru_cell(emb, torch.zeros(1, HIDDEN), *params)
    scores = out @ ref.item_output.t() + ref.item_bias.t()
    row_loss = cross_entropy_full(scores, torch.tensor([5]))
    (row_loss / 2).backward()
    for p, r in zip(net.cells[0].parameters(), params, strict=True):
        torch.testing.assert_close(p.detach(), r.detach() - LR * r.grad)
    # The returned total stays the plain sum of the rows' losses.
    torch.testing.assert_close(total, first_total + row_loss.detach())


def _random_sessions(n_sessions: int, n_items: int, seed: int):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 6, size=n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return rng.integers(0, n_items, size=offsets[-1]), offsets


def test_step_distinct_targets_and_their_positions():
    items, offsets = _random_sessions(30, 4, seed=1)
    data, _, _ = _setup(items, offsets, batch_size=8)
    for t in range(len(data.step_offsets) - 1):
        s, e = data.step_offsets[t], data.step_offsets[t + 1]
        a, z = data.target_offsets[t], data.target_offsets[t + 1]
        uniq = data.target_unique[a:z]
        assert torch.equal(uniq, torch.unique(data.targets[s:e]))
        assert torch.equal(uniq[data.target_pos[s:e]], data.targets[s:e])
        counts = torch.bincount(data.target_pos[s:e], minlength=z - a).float()
        assert torch.equal(data.target_weights[a:z], counts)


def test_bpr_with_distinct_target_columns_trains_like_duplicated_columns():
    # Few items, so targets repeat within a step: the distinct-column fast path must
    # give the same model as scoring every row's target as its own column.
    items, offsets = _random_sessions(60, N_ITEMS, seed=2)
    loss_cfg = LossConfig("bpr")
    nets = []
    for distinct in (True, False):
        data, net, _ = _setup(items, offsets, batch_size=8)
        if not distinct:
            data = EpochData(data.inputs, data.targets, data.keep, data.step_offsets)
        opt = RowSparseOptimizer(net.dense_parameters(), net.item_tables(), "adagrad", lr=0.1)
        train_epoch(Epoch(net, data, opt, loss_cfg, None, torch.Generator()))
        nets.append(net)
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.equal(nets[0].item_output, _setup(items, offsets, 8)[1].item_output)


# -- the accelerator paths and the shared bias update, exercised on the CPU ------------------------


@pytest.mark.parametrize("loss_fn", ["cross-entropy", "bpr-max", "bpr", "top1-max"])
def test_accelerator_sampling_path_trains_like_the_cpu_path(monkeypatch, loss_fn):
    # On a GPU, negatives stay duplicated columns and the optimiser takes its no-sync
    # branch; on the CPU, distinct negatives are weighted and rows compacted. Both must
    # train the same model (up to float rounding): run the accelerator path here.
    df = many_sessions()
    params = dict(loss_fn=loss_fn, num_negatives=64, sample_alpha=1.0, max_epochs=2)
    cpu_path = neg(**params).fit(df)

    class Duplicated(NegativeSampler):
        def __init__(self, *args, **kwargs):
            kwargs["dedup"] = False
            super().__init__(*args, **kwargs)

    calls = []

    def counted(self, *args, **kwargs):
        calls.append(1)
        return accelerator_step_rows(self, *args, **kwargs)

    monkeypatch.setattr("gru4rec.step.parts.NegativeSampler", Duplicated)
    monkeypatch.setattr(RowSparseOptimizer, "step_rows", counted)
    # Off the compiled step, which has optimiser updates of its own: the torch code runs.
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    accel_path = neg(**params).fit(df)
    assert calls  # the accelerator branch of the optimiser ran
    losses_cpu = [h["train_loss"] for h in cpu_path.history_]
    losses_acc = [h["train_loss"] for h in accel_path.history_]
    np.testing.assert_allclose(losses_acc, losses_cpu, rtol=1e-4)
    np.testing.assert_allclose(
        dense(accel_path.predict(df)), dense(cpu_path.predict(df)), rtol=1e-3, atol=1e-4
    )


@pytest.mark.parametrize("bptt", [2, 3])  # bptt 1 runs the compiled step, not _update
@pytest.mark.parametrize("constrained", [True, False])
def test_bias_update_sharing_the_output_rows_pass_equals_its_own_update(
    monkeypatch, bptt, constrained
):
    # The output bias is updated in item_output's pass (its rows lead that pass); it must
    # equal a separate update of the bias at exactly the output rows.
    df = many_sessions()
    params = dict(bptt=bptt, constrained_embedding=constrained, momentum=0.3, max_epochs=2)
    shared = neg(**params).fit(df)

    calls = []

    def plain_update(model, optimizer, updates, clipnorm):
        # The straightforward semantics: each table updated on its own, at its own rows.
        calls.append(1)
        if clipnorm is not None:
            grads = [p.grad for p in model.dense_parameters() if p.grad is not None]
            clip_grad_norm(grads + [leaf.grad for _, leaf, _ in updates], clipnorm)
        optimizer.step_dense()
        per_table: dict[str, tuple[list, list]] = {}
        for name, leaf, rows in updates:
            entry = per_table.setdefault(name.split(":")[0], ([], []))
            entry[0].append(rows)
            entry[1].append(leaf.grad)
        for name, (rows, grads) in per_table.items():
            optimizer.step_rows(name, torch.cat(rows), torch.cat(grads))

    monkeypatch.setattr(step.reference, "_update", plain_update)
    reference = neg(**params).fit(df)
    assert calls
    for key, value in reference.model_.state_dict().items():
        torch.testing.assert_close(shared.model_.state_dict()[key], value, rtol=1e-5, atol=1e-6)
