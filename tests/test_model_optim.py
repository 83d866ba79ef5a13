"""Tests of gru4rec.model (init, step, scoring) and gru4rec.optim (sparse updates, clipping)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import (
    accelerator_step_rows,
    dense,
    longer_events,
    neg,
    weights,
)

from gru4rec.model import GRU4RecNet, dropout
from gru4rec.optim import OPTIMIZERS, RowSparseOptimizer, clip_grad_norm

# -- model: initialisation -----------------------------------------------------------------------


def _bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def _check_uniform_block(t: torch.Tensor, bound: float) -> None:
    a = t.detach().abs()
    assert float(a.max()) <= bound + 1e-7
    # Close to the bound (a U(+-0.01) or a whole-matrix Glorot init would not get there).
    assert float(a.max()) > 0.8 * bound
    # Roughly uniform: mean |x| of U(-b, b) is b / 2.
    assert float(a.mean()) == pytest.approx(bound / 2, rel=0.25)


def test_reset_parameters_glorot_per_gate_block_and_zero_biases():
    n_items, h, emb = 60, 8, 12
    net = GRU4RecNet(n_items, hidden_size=h, num_layers=2, embedding_size=emb)
    net.reset_parameters(torch.Generator().manual_seed(0))

    _check_uniform_block(net.item_output, _bound(n_items, h))
    assert torch.count_nonzero(net.item_bias) == 0
    _check_uniform_block(net.item_embedding, _bound(n_items, emb))

    inputs = [emb, h]
    for cell, fan_in in zip(net.cells, inputs, strict=True):
        assert cell.weight_ih.shape == (3 * h, fan_in)
        for gate in range(3):
            rows = slice(gate * h, (gate + 1) * h)
            _check_uniform_block(cell.weight_ih[rows], _bound(fan_in, h))
            _check_uniform_block(cell.weight_hh[rows], _bound(h, h))
        assert torch.count_nonzero(cell.bias_ih) == 0
        assert torch.count_nonzero(cell.bias_hh) == 0
    # The gate blocks are drawn independently.
    w = net.cells[0].weight_hh
    assert not torch.equal(w[:h], w[h : 2 * h])


def test_reset_parameters_is_deterministic_per_generator_seed():
    def params(seed):
        net = GRU4RecNet(20, hidden_size=6, embedding_size=5)
        net.reset_parameters(torch.Generator().manual_seed(seed))
        return [p.detach().clone() for p in net.state_dict().values()]

    a, b, c = params(3), params(3), params(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_construction_and_init_leave_global_rng_untouched():
    state = torch.get_rng_state()
    net = GRU4RecNet(30, hidden_size=8, num_layers=2, embedding_size=4)
    net.reset_parameters(torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)


def test_constrained_embedding_shares_the_output_table():
    net = GRU4RecNet(15, hidden_size=6, embedding_size=99, constrained=True)
    net.reset_parameters(torch.Generator().manual_seed(0))
    assert net.embedding_size == 6
    assert not hasattr(net, "item_embedding")
    assert set(net.item_tables()) == {"item_output", "item_bias"}
    items = torch.tensor([3, 0, 3, 14])
    assert torch.equal(net.input_vectors(items), net.item_output[items])
    assert net.cells[0].input_size == 6


def test_separate_embedding_is_used_for_inputs():
    net = GRU4RecNet(15, hidden_size=6, embedding_size=4)
    net.reset_parameters(torch.Generator().manual_seed(0))
    assert set(net.item_tables()) == {"item_output", "item_bias", "item_embedding"}
    items = torch.tensor([1, 2])
    assert torch.equal(net.input_vectors(items), net.item_embedding[items])
    # The item tables are not autograd parameters; the GRU weights are.
    dense = {id(p) for p in net.dense_parameters()}
    assert id(net.item_output) not in dense and id(net.item_embedding) not in dense
    assert len(dense) == 4


# -- model: step and scoring ---------------------------------------------------------------------


def _net(seed=0, **kw):
    net = GRU4RecNet(kw.pop("n_items", 25), **{"hidden_size": 5, "embedding_size": 4, **kw})
    net.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # non-zero biases so that scoring uses them
        net.item_bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(9))
    return net


def test_score_is_dot_product_plus_bias_and_chunks_agree():
    net = _net()
    out = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    full = net.score(out, net.item_output, net.item_bias)
    w, b = net.item_output, net.item_bias[:, 0]
    assert torch.allclose(full, out @ w.T + b, atol=1e-6)
    items = torch.tensor([4, 0, 4])
    assert torch.allclose(net.score_items(out, items), full[:, items], atol=1e-6)
    chunks = torch.cat([s for _, s in net.score_chunks(out, chunk_size=7)], dim=1)
    starts = [start for start, _ in net.score_chunks(out, chunk_size=7)]
    assert starts == [0, 7, 14, 21]
    assert torch.allclose(chunks, full, atol=1e-6)


def test_step_matches_manual_gru_and_carries_output_as_state():
    net = _net(num_layers=2)
    x = net.input_vectors(torch.tensor([0, 4, 7]))
    hidden = net.init_hidden(3, "cpu")
    with torch.no_grad():
        out, new_hidden = net.step(x, hidden)
        # Manual: layer by layer with GRUCell.
        h1 = net.cells[0](x, hidden[0])
        h2 = net.cells[1](h1, hidden[1])
    assert torch.allclose(new_hidden[0], h1) and torch.allclose(new_hidden[1], h2)
    assert torch.equal(out, new_hidden[-1])


def test_step_with_hidden_dropout_carries_the_dropped_output():
    net = _net()
    x = net.input_vectors(torch.arange(20))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out, hidden = net.step(x, net.init_hidden(20, "cpu"), 0.0, 0.5, gen)
    assert torch.equal(out, hidden[0])
    zero_frac = float((out == 0).float().mean())
    assert 0.3 < zero_frac < 0.7


def test_dropout_scales_keeps_and_uses_only_the_generator():
    x = torch.ones(20000)
    state = torch.get_rng_state()
    y = dropout(x, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)
    kept = y != 0
    assert float(kept.float().mean()) == pytest.approx(0.75, abs=0.02)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert dropout(x, 0.0, None) is x
    y2 = dropout(x, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)


@pytest.mark.parametrize("p", [0.3, 0.5, 0.01])
def test_dropout_mask_keeps_with_the_right_rate_in_every_lane(p):
    # Four elements share one 64-bit draw: each of the four 16-bit lanes must be unbiased,
    # and the mask's mean must be 1 (inverted dropout).
    from gru4rec.model import dropout_mask

    x = torch.empty(400_000)
    mask = dropout_mask(x, p, torch.Generator().manual_seed(1))
    kept = mask != 0
    for lane in range(4):
        assert float(kept[lane::4].float().mean()) == pytest.approx(1 - p, abs=0.005)
    assert float(mask.mean()) == pytest.approx(1.0, abs=0.01)
    values = mask.unique().tolist()
    assert values[0] == 0.0 and len(values) == 2
    assert values[1] == pytest.approx(1 / (1 - p), rel=1e-4)
    odd = dropout_mask(torch.empty(3, 5), p, torch.Generator().manual_seed(1))
    assert odd.shape == (3, 5)


# -- optimiser: row-sparse updates ---------------------------------------------------------------


class RefOptimizer:
    """Per-row numpy reference: only touched rows change (params, accumulators, velocity)."""

    def __init__(self, table, algorithm, lr, momentum, eps=1e-6):
        self.p = np.array(table, dtype=np.float64)
        self.acc = np.zeros_like(self.p)
        self.vel = np.zeros_like(self.p)
        self.algorithm, self.lr, self.momentum, self.eps = algorithm, lr, momentum, eps

    def step_rows(self, rows, grad):
        summed = {}
        for r, g in zip(rows, grad, strict=True):
            summed[r] = summed.get(r, 0.0) + np.asarray(g, dtype=np.float64)
        for r, g in summed.items():
            if self.algorithm == "adagrad":
                self.acc[r] += g * g
                delta = self.lr * g / np.sqrt(self.acc[r] + self.eps)
            else:
                delta = self.lr * g
            if self.momentum > 0:
                self.vel[r] = self.momentum * self.vel[r] + delta
                delta = self.vel[r]
            self.p[r] -= delta


@pytest.mark.parametrize("algorithm", OPTIMIZERS)
@pytest.mark.parametrize("momentum", [0.0, 0.4])
def test_step_rows_matches_per_row_reference_over_several_steps(algorithm, momentum):
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(8, 3, generator=gen)
    ref = RefOptimizer(table.numpy(), algorithm, lr=0.1, momentum=momentum)
    opt = RowSparseOptimizer([], {"t": table}, algorithm=algorithm, lr=0.1, momentum=momentum)
    steps = [[1, 3, 1, 4, 1], [3, 3, 0], [1, 7, 7, 7, 2, 1], [5]]
    for rows in steps:
        grad = torch.randn(len(rows), 3, generator=gen)
        before = table.clone()
        opt.step_rows("t", torch.tensor(rows), grad)
        ref.step_rows(rows, grad.numpy())
        untouched = sorted(set(range(8)) - set(rows))
        assert torch.equal(table[untouched], before[untouched])
        np.testing.assert_allclose(table.numpy(), ref.p, rtol=1e-5, atol=1e-6)
    # Row 6 was never touched.
    assert torch.equal(table[6], torch.as_tensor(ref.p[6], dtype=torch.float32))


@pytest.mark.parametrize("algorithm", OPTIMIZERS)
@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_step_rows_with_duplicates_equals_dense_update_with_summed_gradients(algorithm, momentum):
    gen = torch.Generator().manual_seed(1)
    init = torch.randn(6, 4, generator=gen)
    rows = torch.tensor([2, 0, 2, 2, 5, 0])
    grad = torch.randn(6, 4, generator=gen)
    dense_grad = torch.zeros(6, 4).index_add_(0, rows, grad)

    sparse_t, dense_t = init.clone(), init.clone()
    sparse = RowSparseOptimizer([], {"t": sparse_t}, algorithm, lr=0.2, momentum=momentum)
    dense = RowSparseOptimizer([], {"t": dense_t}, algorithm, lr=0.2, momentum=momentum)
    sparse.step_rows("t", rows, grad)
    dense.step_table("t", dense_grad)
    assert torch.allclose(sparse_t, dense_t, atol=1e-6)
    assert torch.equal(sparse_t[[1, 3, 4]], init[[1, 3, 4]])
    assert not torch.allclose(sparse_t[[0, 2, 5]], init[[0, 2, 5]])


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_step_dense_sgd_matches_torch_sgd(momentum):
    gen = torch.Generator().manual_seed(2)
    w0 = torch.randn(4, 3, generator=gen)
    ours = torch.nn.Parameter(w0.clone())
    theirs = torch.nn.Parameter(w0.clone())
    opt = RowSparseOptimizer([ours], {}, "sgd", lr=0.05, momentum=momentum)
    torch_opt = torch.optim.SGD([theirs], lr=0.05, momentum=momentum)
    for _ in range(4):
        g = torch.randn(4, 3, generator=gen)
        ours.grad = g.clone()
        theirs.grad = g.clone()
        opt.step_dense()
        torch_opt.step()
        assert ours.grad is None  # cleared by the step
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.2])
def test_step_dense_adagrad_eps_inside_sqrt_with_heavy_ball(momentum):
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(5, generator=gen)
    p = torch.nn.Parameter(w0.clone())
    opt = RowSparseOptimizer([p], {}, "adagrad", lr=0.1, momentum=momentum, eps=1e-6)
    ref = RefOptimizer(w0.numpy()[:, None], "adagrad", 0.1, momentum, eps=1e-6)
    for _ in range(3):
        g = torch.randn(5, generator=gen)
        p.grad = g.clone()
        opt.step_dense()
        ref.step_rows(list(range(5)), g.numpy()[:, None])
    np.testing.assert_allclose(p.detach().numpy(), ref.p[:, 0], rtol=1e-5, atol=1e-6)


def test_adagrad_first_step_moves_each_coordinate_by_about_lr():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = RowSparseOptimizer([p], {}, "adagrad", lr=0.1)
    p.grad = torch.tensor([10.0, -0.5, 1e-3])
    opt.step_dense()
    # g / sqrt(g^2 + eps) ~ sign(g) unless |g| ~ sqrt(eps).
    expected = -0.1 * np.array([10.0, -0.5, 1e-3]) / np.sqrt(np.array([100.0, 0.25, 1e-6]) + 1e-6)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-5)


def test_unknown_algorithm_raises_naming_the_parameter():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="optimization_algorithm"):
        RowSparseOptimizer([p], {}, algorithm="adam", lr=0.1)


# -- gradient clipping ---------------------------------------------------------------------------


def _joint_norm(grads):
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


@settings(max_examples=30, deadline=None)
@given(
    scale=st.sampled_from([1e-3, 0.1, 1.0, 10.0, 1e4]),
    max_norm=st.sampled_from([0.01, 0.5, 1.0, 5.0]),
    seed=st.integers(0, 1000),
    n=st.integers(1, 3),
)
def test_clip_grad_norm(scale, max_norm, seed, n):
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(2 + i, 3, generator=gen) * scale for i in range(n)]
    before = [g.clone() for g in grads]
    norm = _joint_norm(before)
    clip_grad_norm(grads, max_norm)
    after = _joint_norm(grads)
    assert after <= max_norm * (1 + 1e-5)
    if norm <= max_norm * (1 - 1e-4):
        assert all(torch.equal(a, b) for a, b in zip(grads, before, strict=True))
    else:
        assert after == pytest.approx(max_norm, rel=1e-4)
        # Every tensor is scaled by the same coefficient (direction kept).
        coef = max_norm / norm
        for a, b in zip(grads, before, strict=True):
            assert torch.allclose(a, b * coef, rtol=1e-4, atol=1e-7 * scale)


def test_clip_grad_norm_of_nothing_or_of_zeros_changes_nothing():
    clip_grad_norm([], 1.0)  # a step without gradients (every row frozen) must not fail
    grads = [torch.zeros(3), torch.zeros(2, 2)]
    clip_grad_norm(grads, 1.0)
    # A zero norm must not turn into 0 / 0.
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


# -- the accelerator update branch, exercised on the CPU -------------------------------------------


def _optimizer(algorithm: str, momentum: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(20, 6, generator=gen)
    dense_p = torch.nn.Parameter(torch.randn(3, 3, generator=gen))
    opt = RowSparseOptimizer(
        [dense_p], {"t": table}, algorithm=algorithm, lr=0.1, momentum=momentum
    )
    return opt, table


@pytest.mark.parametrize("algorithm", ["sgd", "adagrad"])
@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_update_repeated_matches_update_distinct(algorithm, momentum):
    cpu_opt, cpu_table = _optimizer(algorithm, momentum)
    acc_opt, acc_table = _optimizer(algorithm, momentum)
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        rows = torch.randint(0, 20, (15,), generator=gen)  # with repeats
        blocks = [torch.randn(7, 6, generator=gen), torch.randn(8, 6, generator=gen)]
        cpu_opt.step_rows("t", rows, blocks)  # CPU branch: _update_distinct
        accelerator_step_rows(acc_opt, "t", rows, [b.clone() for b in blocks])
    torch.testing.assert_close(acc_table, cpu_table, rtol=1e-6, atol=1e-6)
    acc_state = [*acc_opt._acc.values(), *acc_opt._vel.values()]
    cpu_state = [*cpu_opt._acc.values(), *cpu_opt._vel.values()]
    for a, b in zip(acc_state, cpu_state, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # Rows never drawn are untouched by both.
    untouched = _optimizer(algorithm, momentum)[1]
    never = torch.ones(20, dtype=torch.bool)
    never[torch.randint(0, 20, (60,), generator=torch.Generator().manual_seed(1))] = False
    torch.testing.assert_close(acc_table[never], untouched[never], rtol=0, atol=0)


def test_update_repeated_equals_sequential_reference_on_repeated_rows():
    """Against a from-scratch Adagrad + momentum: repeated rows' gradients are summed once."""
    opt, table = _optimizer("adagrad", 0.5)
    start = table.clone()
    rows = torch.tensor([3, 5, 3, 3, 7])
    grad = torch.arange(30, dtype=torch.float32).reshape(5, 6) / 10
    accelerator_step_rows(opt, "t", rows, grad)
    expected = start.clone()
    for r in (3, 5, 7):
        g = grad[rows == r].sum(0)
        acc = opt.eps + g * g
        expected[r] -= 0.1 * g / acc.sqrt()
    torch.testing.assert_close(table, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(optimization_algorithm="adagrad", momentum=0.0),
        dict(optimization_algorithm="sgd", momentum=0.5, constrained_embedding=True),
    ],
)
def test_fit_through_accelerator_update_branch_matches_cpu_branch(monkeypatch, params):
    df = longer_events(n_items=6)  # few items: many repeated rows per step
    cpu = neg(max_epochs=2, **params).fit(df)
    monkeypatch.setattr(RowSparseOptimizer, "step_rows", accelerator_step_rows)
    acc = neg(max_epochs=2, **params).fit(df)
    for key, value in weights(cpu).items():
        torch.testing.assert_close(weights(acc)[key], value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense(acc.predict(df)), dense(cpu.predict(df)), rtol=1e-4, atol=1e-5)


def test_clip_grad_norm_empty_list_is_a_no_op():
    clip_grad_norm([], 1.0)


@pytest.mark.parametrize("algorithm", OPTIMIZERS)
@pytest.mark.parametrize("momentum", [0.0, 0.3])
@pytest.mark.parametrize("compact", [True, False])
def test_step_rows_with_leading_table_matches_per_row_reference(algorithm, momentum, compact):
    # The output rows of a step (targets with repeats, then negatives) followed by the input
    # rows, which repeat some of them; the bias table moves at the leading rows only.
    gen = torch.Generator().manual_seed(4)
    table, bias = torch.randn(9, 3, generator=gen), torch.randn(9, 1, generator=gen)
    ref = RefOptimizer(table.numpy(), algorithm, lr=0.1, momentum=momentum)
    ref_bias = RefOptimizer(bias.numpy(), algorithm, lr=0.1, momentum=momentum)
    opt = RowSparseOptimizer(
        [], {"t": table, "b": bias}, algorithm=algorithm, lr=0.1, momentum=momentum
    )
    opt.compact = compact
    steps = [([1, 3, 1, 0, 5, 6], [3, 8, 8]), ([2, 2, 4], [2, 7]), ([0], [0, 0, 1])]
    for out_rows, in_rows in steps:
        g_out = torch.randn(len(out_rows), 3, generator=gen)
        g_in = torch.randn(len(in_rows), 3, generator=gen)
        g_bias = torch.randn(len(out_rows), 1, generator=gen)
        before = bias.clone()
        opt.step_rows("t", torch.tensor(out_rows + in_rows), [g_out, g_in], leading={"b": g_bias})
        ref.step_rows(out_rows + in_rows, torch.cat([g_out, g_in]).numpy())
        ref_bias.step_rows(out_rows, g_bias.numpy())
        np.testing.assert_allclose(table.numpy(), ref.p, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bias.numpy(), ref_bias.p, rtol=1e-5, atol=1e-6)
        only_input = sorted(set(in_rows) - set(out_rows))
        assert torch.equal(bias[only_input], before[only_input])
