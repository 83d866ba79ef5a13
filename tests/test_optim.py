"""Tests of gru4rec.optim: row-sparse and dense updates, gradient clipping."""

from __future__ import annotations

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

from gru4rec import kernels
from gru4rec.optim import (
    OPTIMIZERS,
    RowSparseOptimizer,
    clip_grad_norm,
    clip_grad_norm_arrays,
)

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
@pytest.mark.parametrize("fused", [False, True], ids=["torch", "compiled"])
def test_step_rows_matches_per_row_reference_over_several_steps(algorithm, momentum, fused):
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(8, 3, generator=gen)
    ref = RefOptimizer(table.numpy(), algorithm, lr=0.1, momentum=momentum)
    opt = RowSparseOptimizer([], {"t": table}, algorithm=algorithm, lr=0.1, momentum=momentum)
    opt.fused = fused and kernels.AVAILABLE
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
    # Worked by hand: a first Adagrad step is lr * sign(g) unless |g| is near sqrt(eps) = 1e-3,
    # where g / sqrt(g^2 + eps) = 1e-3 / sqrt(2e-6) = 1 / sqrt(2).
    np.testing.assert_allclose(p.detach().numpy(), [-0.1, 0.1, -0.0707107], rtol=1e-5)


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
@pytest.mark.parametrize("on_arrays", [False, True], ids=["tensors", "arrays"])
def test_clip_grad_norm(scale, max_norm, seed, n, on_arrays):
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(2 + i, 3, generator=gen) * scale for i in range(n)]
    before = [g.clone() for g in grads]
    norm = _joint_norm(before)
    if on_arrays:  # the compiled step's version, on views of the same memory
        clip_grad_norm_arrays([g.numpy() for g in grads], max_norm)
    else:
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
    clip_grad_norm_arrays([], 1.0)
    grads = [torch.zeros(3), torch.zeros(2, 2)]
    clip_grad_norm(grads, 1.0)
    clip_grad_norm_arrays([g.numpy() for g in grads], 1.0)
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
    drawn = torch.zeros(20, dtype=torch.bool)
    for _ in range(4):
        rows = torch.randint(0, 20, (15,), generator=gen)  # with repeats
        drawn[rows] = True
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
    assert (~drawn).any()  # the draws leave some rows out
    torch.testing.assert_close(acc_table[~drawn], untouched[~drawn], rtol=0, atol=0)
    assert not torch.equal(acc_table[drawn], untouched[drawn])


def test_update_repeated_equals_sequential_reference_on_repeated_rows():
    """Against a from-scratch Adagrad + momentum: repeated rows' gradients are summed once."""
    opt, table = _optimizer("adagrad", 0.5)
    start = table.clone()
    rows = torch.tensor([3, 5, 3, 3, 7])
    # Mixed signs and two steps: a first Adagrad step from a fresh accumulator is about
    # lr * sign(g) whatever the size of g, so one step could not tell a sum from one term.
    grads = [
        (torch.arange(30, dtype=torch.float32).reshape(5, 6) - 14.5) / 10,
        torch.linspace(-1.0, 2.0, 30).reshape(5, 6),
    ]
    expected, acc, vel = start.clone(), torch.full_like(start, 0.0), torch.zeros_like(start)
    for grad in grads:
        accelerator_step_rows(opt, "t", rows, grad)
        for r in (3, 5, 7):
            g = grad[rows == r].sum(0)
            acc[r] += g * g
            vel[r] = 0.5 * vel[r] + 0.1 * g / (opt.eps + acc[r]).sqrt()
            expected[r] -= vel[r]
    torch.testing.assert_close(table, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(optimization_algorithm="adagrad", momentum=0.0),
        dict(optimization_algorithm="sgd", momentum=0.5, constrained_embedding=True),
    ],
)
def test_fit_through_accelerator_update_branch_matches_cpu_branch(monkeypatch, params):
    df = longer_events(n_items=6)  # few items: many repeated rows per step
    # top1-max: a loss the compiled step does not run, so the updates go through step_rows.
    params = {**params, "loss_fn": "top1-max"}
    cpu = neg(max_epochs=2, **params).fit(df)
    calls = []

    def counted(self, *args, **kwargs):
        calls.append(1)
        return accelerator_step_rows(self, *args, **kwargs)

    monkeypatch.setattr(RowSparseOptimizer, "step_rows", counted)
    acc = neg(max_epochs=2, **params).fit(df)
    assert calls  # the branch under test ran
    for key, value in weights(cpu).items():
        torch.testing.assert_close(weights(acc)[key], value, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense(acc.predict(df)), dense(cpu.predict(df)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("algorithm", OPTIMIZERS)
@pytest.mark.parametrize("momentum", [0.0, 0.3])
@pytest.mark.parametrize(
    "branch", ["compiled", "compact", "accelerator"], ids=["compiled", "torch", "accelerator"]
)
def test_step_rows_with_leading_table_matches_per_row_reference(algorithm, momentum, branch):
    # The output rows of a step (targets with repeats, then negatives) followed by the input
    # rows, which repeat some of them; the bias table moves at the leading rows only.
    gen = torch.Generator().manual_seed(4)
    table, bias = torch.randn(9, 3, generator=gen), torch.randn(9, 1, generator=gen)
    ref = RefOptimizer(table.numpy(), algorithm, lr=0.1, momentum=momentum)
    ref_bias = RefOptimizer(bias.numpy(), algorithm, lr=0.1, momentum=momentum)
    opt = RowSparseOptimizer(
        [], {"t": table, "b": bias}, algorithm=algorithm, lr=0.1, momentum=momentum
    )
    opt.compact = branch != "accelerator"
    opt.fused = branch == "compiled" and kernels.AVAILABLE
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


# -- the compiled updates (gru4rec.kernels.updates) against the torch code ------------------------


def _optimizer_with_bias(algorithm: str, momentum: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(30, 6, generator=g)
    bias = torch.randn(30, 1, generator=g)
    dense = torch.nn.Parameter(torch.randn(4, 5, generator=g))
    opt = RowSparseOptimizer(
        [dense], {"out": table, "bias": bias}, algorithm, lr=0.1, momentum=momentum
    )
    return opt, table, bias, dense


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.integers(0, 29), min_size=1, max_size=25),
    split=st.integers(0, 25),
    n_bias=st.integers(0, 25),
    algorithm=st.sampled_from(["sgd", "adagrad"]),
    momentum=st.sampled_from([0.0, 0.4]),
    seed=st.integers(0, 3),
)
def test_row_update_equals_the_torch_update(rows, split, n_bias, algorithm, momentum, seed):
    # Repeated rows (their gradients summed first), two gradient blocks, a bias riding on
    # the first rows: the state after three steps is that of the torch code.
    pytest.importorskip("numba")
    split, n_bias = min(split, len(rows)), min(n_bias, len(rows))
    idx = torch.tensor(rows)
    g = torch.Generator().manual_seed(100 + seed)
    grad = torch.randn(len(rows), 6, generator=g)
    blocks = [grad[:split], grad[split:]] if 0 < split < len(rows) else [grad]
    bias_grad = torch.randn(n_bias, 1, generator=g)
    results = []
    for fused in (False, True):
        opt, table, bias, _ = _optimizer_with_bias(algorithm, momentum, seed)
        opt.fused = fused
        for _ in range(3):
            leading = {"bias": bias_grad} if n_bias else None
            opt.step_rows("out", idx, blocks, leading=leading)
        results.append((table, bias, *opt._acc.values(), *opt._vel.values()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    untouched = sorted(set(range(30)) - set(rows))
    fresh = _optimizer_with_bias(algorithm, momentum, seed)[1]
    assert torch.equal(results[1][0][untouched], fresh[untouched])


@pytest.mark.parametrize("algorithm", ["sgd", "adagrad"])
@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_dense_update_equals_the_torch_update(algorithm, momentum):
    pytest.importorskip("numba")
    results = []
    for fused in (False, True):
        opt, _, _, dense = _optimizer_with_bias(algorithm, momentum)
        opt.fused = fused
        g = torch.Generator().manual_seed(5)
        for _ in range(3):
            dense.grad = torch.randn(4, 5, generator=g)
            opt.step_dense()
            assert dense.grad is None
        results.append((dense.detach().clone(), *opt._acc.values(), *opt._vel.values()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(results[1][0], _optimizer_with_bias(algorithm, momentum)[3].detach())


def test_rows_update_leaves_the_owner_scratch_clean():
    pytest.importorskip("numba")
    table = np.zeros((10, 3), np.float32)
    owner = np.full(10, -1, np.int64)
    scratch = (np.empty(4, np.int64), np.empty((4, 3), np.float32), np.empty(4, np.float32))
    rows = np.array([3, 3, 7, 3])
    update = kernels.rows_updater(table, None, None, owner, scratch, 0.5, 0.0)
    k = update(rows, np.ones((4, 3), np.float32))
    assert k == 2
    assert (owner == -1).all()
    np.testing.assert_array_equal(table[3], [-1.5] * 3)  # three gradients of 1, lr 0.5
    np.testing.assert_array_equal(table[7], [-0.5] * 3)
