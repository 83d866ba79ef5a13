"""Tests of gru4rec.kernels: every compiled pass gives what the torch code gives.

The reference in each test is the package's own torch code with the kernels switched off
(``kernels.AVAILABLE = False``), which the rest of the suite checks against autograd and
hand-computed values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from gru4rec import kernels  # noqa: E402
from gru4rec.device import fused_kernels  # noqa: E402
from gru4rec.losses import cross_entropy_value_grad  # noqa: E402
from gru4rec.model import gru_cell_backward, gru_cell_forward  # noqa: E402
from gru4rec.optim import RowSparseOptimizer  # noqa: E402


@pytest.fixture
def torch_only(monkeypatch):
    """Run the block with the kernels switched off (the torch reference code)."""

    def switch(on: bool) -> None:
        monkeypatch.setattr(kernels, "AVAILABLE", on)

    return switch


def test_kernels_are_used_on_the_cpu_only(monkeypatch):
    monkeypatch.setattr(kernels, "AVAILABLE", True)
    assert fused_kernels(torch.device("cpu"))
    assert not fused_kernels(torch.device("cuda"))
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert not fused_kernels(torch.device("cpu"))


def _optimizer(algorithm: str, momentum: float, seed: int = 0):
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
    split, n_bias = min(split, len(rows)), min(n_bias, len(rows))
    idx = torch.tensor(rows)
    g = torch.Generator().manual_seed(100 + seed)
    grad = torch.randn(len(rows), 6, generator=g)
    blocks = [grad[:split], grad[split:]] if 0 < split < len(rows) else [grad]
    bias_grad = torch.randn(n_bias, 1, generator=g)
    results = []
    for fused in (False, True):
        opt, table, bias, _ = _optimizer(algorithm, momentum, seed)
        opt.fused = fused
        for _ in range(3):
            leading = {"bias": bias_grad} if n_bias else None
            opt.step_rows("out", idx, blocks, leading=leading)
        results.append((table, bias, *opt._acc.values(), *opt._vel.values()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    untouched = sorted(set(range(30)) - set(rows))
    fresh = _optimizer(algorithm, momentum, seed)[1]
    assert torch.equal(results[1][0][untouched], fresh[untouched])


@pytest.mark.parametrize("algorithm", ["sgd", "adagrad"])
@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_dense_update_equals_the_torch_update(algorithm, momentum):
    results = []
    for fused in (False, True):
        opt, _, _, dense = _optimizer(algorithm, momentum)
        opt.fused = fused
        g = torch.Generator().manual_seed(5)
        for _ in range(3):
            dense.grad = torch.randn(4, 5, generator=g)
            opt.step_dense()
            assert dense.grad is None
        results.append((dense.detach().clone(), *opt._acc.values(), *opt._vel.values()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.equal(results[1][0], _optimizer(algorithm, momentum)[3].detach())


def test_cross_entropy_kernel_equals_the_torch_loss_and_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=g) * 4
    logits[2, 2] = -200.0  # the positive's probability underflows in float32
    ref_loss, ref_grad = cross_entropy_value_grad(logits.clone(), scale=0.75)
    grad = torch.softmax(logits, dim=1)
    sums = np.empty(40, np.float32)
    loss = kernels.softmax_xent_finish(logits.numpy(), grad.numpy(), 0.75 / 6, sums)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5, abs=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sums, ref_grad.sum(0).numpy(), rtol=1e-4, atol=1e-6)
    assert loss > 200 * 0.75 / 6  # the underflowed row's loss is counted in full


@pytest.mark.parametrize("with_mask", [False, True])
def test_gru_backward_kernel_equals_the_torch_backward(torch_only, with_mask):
    g = torch.Generator().manual_seed(1)
    cell = torch.nn.GRUCell(5, 7)
    x, h = torch.randn(4, 5, generator=g), torch.randn(4, 7, generator=g)
    grad = torch.randn(4, 7, generator=g)
    mask = (torch.rand(4, 7, generator=g) > 0.3).float() * 1.5 if with_mask else None
    grads = []
    for on in (False, True):
        torch_only(on)
        _, cache = gru_cell_forward(cell, x, h)
        d_input = gru_cell_backward(cell, cache, grad.clone(), mask=mask)
        grads.append([d_input] + [p.grad.clone() for p in cell.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # And both are autograd's gradient of sum(grad * mask * cell(x, h)).
    cell.zero_grad()
    xr = x.clone().requires_grad_(True)
    out = cell(xr, h) * (mask if mask is not None else 1.0)
    (out * grad).sum().backward()
    torch.testing.assert_close(grads[1][0], xr.grad, rtol=1e-5, atol=1e-6)
    for ours, ref in zip(grads[1][1:], cell.parameters(), strict=True):
        torch.testing.assert_close(ours, ref.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        dict(
            loss_fn="cross-entropy",
            logq=1.0,
            sample_alpha=0.5,
            momentum=0.2,
            constrained_embedding=True,
            dropout_hidden=0.3,
        ),
        dict(loss_fn="bpr-max", bpreg=0.5, elu_param=0.5, dropout=0.2, momentum=0.1),
        dict(loss_fn="bpr", optimization_algorithm="sgd", learning_rate=0.05),
    ],
    ids=["xe-logq", "bpr-max", "bpr-sgd"],
)
def test_a_fit_with_kernels_trains_like_the_torch_code(torch_only, params):
    from tiny import many_sessions, neg

    from gru4rec import InteractionMatrix

    X = InteractionMatrix.from_events(many_sessions())
    fits = []
    for on in (False, True):
        torch_only(on)
        est = neg(max_epochs=1, hidden_size=8, num_negatives=12, batch_size=6, seed=3, **params)
        fits.append(est.fit(X))
    ref, ours = (dict(e.model_.state_dict()) for e in fits)
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-3, atol=1e-4)
    assert fits[1].history_[0]["train_loss"] == pytest.approx(
        fits[0].history_[0]["train_loss"], rel=1e-4
    )


def test_rows_update_leaves_the_owner_scratch_clean():
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


@pytest.mark.parametrize("p", [0.1, 0.4, 0.77])
def test_dropout_mask_kernel_gives_the_torch_mask_exactly(torch_only, p):
    from gru4rec.model import dropout_mask

    x = torch.ones(13, 7)
    masks = []
    for on in (False, True):
        torch_only(on)
        masks.append(dropout_mask(x, p, torch.Generator().manual_seed(3)))
    assert torch.equal(masks[0], masks[1])
    assert 0 < int((masks[1] == 0).sum()) < x.numel()


def test_cross_entropy_column_bias_kernel_equals_the_torch_sum():
    from gru4rec.samplers import NegativeSampler

    g = torch.Generator().manual_seed(0)
    counts = np.array([5, 0, 3, 9, 1, 2])
    sampler = NegativeSampler(counts, 0.5, 4, g, torch.device("cpu"))
    bias = torch.randn(6, 1, generator=g)
    targets, negatives = torch.tensor([3, 0, 3]), torch.tensor([1, 2, 5])
    log_mult = torch.log(torch.tensor([1.0, 2.0, 3.0]))
    out = np.empty(6, np.float32)
    kernels.xent_column_bias(
        bias.numpy(), sampler.log_counts().numpy(), targets.numpy(), negatives.numpy(),
        log_mult.numpy(), 0.5, 0.8, out,
    )  # fmt: skip
    log_q = sampler.log_probabilities(targets, negatives)
    expected = bias[torch.cat([targets, negatives]), 0] - 0.8 * log_q
    expected[3:] += log_mult
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-6, atol=1e-6)
    # By hand for one negative: bias - logq * alpha * log(count) + log(multiplicity).
    assert out[5] == pytest.approx(float(bias[5]) - 0.8 * 0.5 * np.log(2) + np.log(3), abs=1e-6)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"constrained": False},
        {"dedup": False},
        {"dropout": (0.0, 0.0), "momentum": 0.0},
        {"dropout": (0.5, 0.0)},
        {"clipnorm": 0.05},  # tight enough to clip (0.5 never did here)
    ],
    ids=["default", "separate-embedding", "raw-negatives", "plain", "embedding-dropout", "clip"],
)
@pytest.mark.parametrize(
    "loss",
    [
        ("cross-entropy", 1.0, 0.0, 0.0),
        ("cross-entropy", 0.0, 0.0, 0.0),
        ("bpr-max", 0.0, 0.9, 1.0),
        ("bpr-max", 0.0, 0.0, 0.0),
        ("bpr", 0.0, 0.0, 0.0),
    ],
    ids=["xe-logq", "xe", "bpr-max-elu", "bpr-max-plain", "bpr"],
)
def test_compiled_step_trains_like_autograd(torch_only, variant, loss):
    # The compiled step against the plain reference computation (autograd, torch code),
    # from the same generator state: same model, same optimiser path, same loss.
    from test_training import _train_once

    from gru4rec.losses import LossConfig

    name, logq, bpreg, elu = loss
    cfg = LossConfig(name, logq=logq, bpreg=bpreg, elu_param=elu)
    torch_only(False)
    ref, ref_totals = _train_once(False, cfg, **variant)
    torch_only(True)
    net, totals = _train_once("fused", cfg, **variant)
    for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    for a, b in zip(totals, ref_totals, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5)


def test_compiled_step_clips_the_gradient_norm(torch_only):
    # The clip variant above must clip: a tight bound changes the trained model.
    from test_training import _train_once

    from gru4rec.losses import LossConfig

    torch_only(True)
    cfg = LossConfig("bpr-max", bpreg=0.9, elu_param=1.0)
    free, _ = _train_once("fused", cfg)
    clipped, _ = _train_once("fused", cfg, clipnorm=0.05)
    ref, _ = _train_once(True, cfg, clipnorm=0.05)
    assert not torch.allclose(free.item_output, clipped.item_output, rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(clipped.item_output, ref.item_output, rtol=1e-3, atol=1e-4)


def test_train_epoch_takes_the_compiled_step_where_it_applies(monkeypatch):
    from gru4rec import step
    from gru4rec.losses import LossConfig
    from gru4rec.model import GRU4RecNet

    calls = []
    monkeypatch.setattr(step.compiled, "train_epoch", lambda *a, **k: calls.append("fused"))
    monkeypatch.setattr(step.direct, "train_epoch", lambda *a, **k: calls.append("direct"))
    one, two = GRU4RecNet(5, 4, num_layers=1), GRU4RecNet(5, 4, num_layers=2)
    xe, bpr_max = LossConfig("cross-entropy"), LossConfig("bpr-max")
    bpr, top1 = LossConfig("bpr"), LossConfig("top1")
    epoch = step.Epoch
    step.train_epoch(epoch(one, None, None, xe, object(), None))
    step.train_epoch(epoch(one, None, None, bpr_max, object(), None))
    step.train_epoch(epoch(one, None, None, xe, object(), None, clipnorm=1.0))
    step.train_epoch(epoch(one, None, None, bpr, object(), None))
    step.train_epoch(epoch(two, None, None, xe, object(), None))
    step.train_epoch(epoch(one, None, None, top1, object(), None))
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    step.train_epoch(epoch(one, None, None, xe, object(), None))
    assert calls == ["fused", "fused", "fused", "fused", "direct", "direct", "direct"]


@pytest.mark.parametrize("dedup", [False, True])
def test_sampler_draws_the_same_negatives_with_the_merge_search(torch_only, dedup):
    from gru4rec.samplers import NegativeSampler

    counts = np.random.default_rng(0).integers(0, 50, size=300)
    counts[[0, 7, 299]] = 0  # never drawn, also at the ends of the table
    draws = []
    for on in (False, True):
        torch_only(on)
        gen = torch.Generator().manual_seed(5)
        sampler = NegativeSampler(counts, 0.7, 64, gen, torch.device("cpu"), 64 * 40, dedup)
        draws.append(torch.cat([sampler.draw() for _ in range(90)]))  # three refills
    assert torch.equal(draws[0], draws[1])
    assert not bool(torch.isin(draws[1], torch.tensor([0, 7, 299])).any())


def _compiled_map(fn):
    import numba

    @numba.njit(cache=False)
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return apply


def _elementwise(name: str, x: np.ndarray) -> np.ndarray:
    """The kernels' own float32 ``exp``, ``sigmoid``, ``tanh`` or ``log1p_unit`` of a 1-D
    array, as the compiled loops inline them."""
    from gru4rec.kernels import scalar

    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _compiled_map(getattr(scalar, f"_{name}"))(x, out)
    return out


@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_the_kernels_elementwise_functions_are_float32_accurate(name):
    x = np.concatenate(
        [np.linspace(-95, 95, 40001), np.linspace(-0.3, 0.3, 6001), [0.0, 88.7, -87.3]]
    ).astype(np.float32)
    ref = {"exp": np.exp, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}[name](
        x.astype(np.float64)
    )
    with np.errstate(over="ignore"):
        out = _elementwise(name, x)
        expected = ref.astype(np.float32)
    normal = np.isfinite(expected) & (np.abs(expected) >= np.finfo(np.float32).tiny)
    np.testing.assert_allclose(out[normal], ref[normal], rtol=6e-7, atol=0)
    # Overflow gives inf, values below float32's normal range give 0 or a denormal.
    assert np.array_equal(np.isinf(out), np.isinf(expected))
    tiny = np.finfo(np.float32).tiny
    assert np.all(np.abs(out[~normal & np.isfinite(expected)]) < tiny)
    special = _elementwise(name, np.array([np.inf, -np.inf, np.nan], np.float32))
    expected = {"exp": [np.inf, 0.0], "sigmoid": [1.0, 0.0], "tanh": [1.0, -1.0]}[name]
    assert special[:2].tolist() == expected and np.isnan(special[2])


def test_the_kernels_log1p_on_the_unit_interval_is_float32_accurate():
    # What the bpr kernel's softplus needs: log(1 + y) for y = exp(-|d|) in [0, 1].
    y = np.concatenate([np.linspace(0, 1, 100001), np.geomspace(1e-45, 1e-3, 2001)])
    y = y.astype(np.float32)
    out = _elementwise("log1p_unit", y)
    ref = np.log1p(y.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=2.5e-7, atol=0)
    assert out[0] == 0.0 and out[-1] > 0.0


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    negatives=st.integers(0, 40),
    weighted=st.booleans(),
    spread=st.sampled_from([0.5, 5.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_transposed_bpr_kernel_equals_the_torch_loss(rows, negatives, weighted, spread, seed):
    from gru4rec.losses import bpr_value_grad

    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, rows + negatives, generator=g) * spread
    counts = torch.randint(1, 4, (negatives,), generator=g).float()
    log_mult = counts.log() if weighted else None
    col_weights = torch.cat([torch.ones(rows), counts]) if weighted else None
    positives = torch.arange(rows) if weighted else None
    ref_loss, ref_grad = bpr_value_grad(scores.clone(), positives, col_weights, 0.7)
    scores_t = scores.t().contiguous().numpy()
    col_grad = np.empty((rows + negatives, 1), np.float32)
    mult = None if log_mult is None else log_mult.numpy()
    loss = kernels.bpr_step_loss(scores_t, mult, 0.7, col_grad)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(scores_t.T, ref_grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(col_grad[:, 0], ref_grad.sum(0).numpy(), rtol=1e-4, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    cols=st.integers(5, 60),
    rows=st.integers(1, 5),
    spread=st.sampled_from([0.1, 5.0, 60.0]),
    seed=st.integers(0, 2**16),
)
def test_transposed_softmax_kernel_equals_the_cross_entropy_loss(cols, rows, spread, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, cols, generator=g) * spread  # positives: the first columns
    scale = 0.6
    logits_ref = logits.clone().requires_grad_(True)
    ref_loss = torch.nn.functional.cross_entropy(logits_ref, torch.arange(rows)) * scale
    ref_loss.backward()
    ref_grad = logits_ref.grad
    logits_t = logits.t().contiguous().numpy()
    col_grad = np.empty((cols, 1), np.float32)
    loss = kernels.xent_step_softmax_loss(logits_t, scale / rows, col_grad)
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(logits_t, ref_grad.t().numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(col_grad[:, 0], ref_grad.sum(0).numpy(), rtol=1e-4, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 6),
    negatives=st.integers(1, 40),
    weighted=st.booleans(),
    elu=st.sampled_from([0.0, 0.5, 1.0]),
    bpreg=st.sampled_from([0.0, 0.9]),
    spread=st.sampled_from([0.5, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_transposed_bpr_max_kernel_equals_the_torch_loss(
    rows, negatives, weighted, elu, bpreg, spread, seed
):
    from gru4rec.losses import bpr_max_value_grad

    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, rows + negatives, generator=g) * spread
    log_mult = torch.randint(1, 4, (negatives,), generator=g).float().log() if weighted else None
    log_weights = None if log_mult is None else torch.cat([torch.zeros(rows), log_mult])
    ref_loss, ref_grad = bpr_max_value_grad(scores.clone(), bpreg, elu, log_weights, 0.7)
    scores_t = scores.t().contiguous().numpy()
    col_grad = np.empty((rows + negatives, 1), np.float32)
    mult = None if log_mult is None else log_mult.numpy()
    loss = kernels.bpr_max_step_loss(scores_t, mult, bpreg, elu, 0.7 / rows, col_grad)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5, abs=1e-6)
    # A gradient element is a difference of terms of the order of the scale (0.7 / rows):
    # where they cancel, float32 rounding of the terms (~1e-7) is the absolute error.
    np.testing.assert_allclose(scores_t.T, ref_grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(col_grad[:, 0], ref_grad.sum(0).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("where", [(0, 0), (0, 1), (4, 1)])  # a positive, a target, a negative
def test_a_nan_score_gives_a_nan_loss_in_both_step_losses(where):
    # The softmax shift takes maxima declared NaN-free: a NaN must still reach the loss.
    scores_t = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    scores_t[where] = np.nan
    col_grad = np.empty((6, 1), np.float32)
    assert np.isnan(kernels.xent_step_softmax_loss(scores_t.copy(), 0.5, col_grad))
    assert np.isnan(kernels.bpr_max_step_loss(scores_t.copy(), None, 0.9, 1.0, 0.5, col_grad))


def test_bpr_max_kernel_reports_where_its_closed_form_fails():
    scores = np.zeros((3, 2), np.float32)  # columns x rows: two rows, one negative
    scores[2, 0] = 200.0  # row 0's negative far above its positive: every sigmoid underflows
    loss = kernels.bpr_max_step_loss(scores, None, 0.5, 0.0, 0.5, np.empty((3, 1), np.float32))
    assert np.isnan(loss)


def test_compiled_bpr_max_step_takes_the_torch_loss_where_the_closed_form_fails(
    torch_only, monkeypatch
):
    # Every step through the fallback: still the reference computation's training.
    from test_training import _train_once

    from gru4rec.losses import LossConfig

    cfg = LossConfig("bpr-max", bpreg=0.9, elu_param=1.0)
    torch_only(False)
    ref, ref_totals = _train_once(False, cfg)
    torch_only(True)
    calls = []

    def no_closed_form(scores_t, *args):
        calls.append(1)
        return float("nan")

    monkeypatch.setattr(kernels, "bpr_max_step_loss", no_closed_form)
    net, totals = _train_once("fused", cfg)
    assert calls
    for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    for a, b in zip(totals, ref_totals, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("keep", [[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
def test_products_skip_the_zero_hidden_rows_of_starting_sessions(keep):
    rng = np.random.default_rng(0)
    keep = np.array(keep, np.float32)
    h = rng.standard_normal((4, 5), dtype=np.float32) * keep[:, None]
    w = rng.standard_normal((6, 5), dtype=np.float32)
    d = rng.standard_normal((4, 6), dtype=np.float32)
    np.testing.assert_allclose(kernels._live_rows_product(h, w, keep), h @ w.T, rtol=1e-6)
    out = np.full((6, 5), np.nan, np.float32)
    kernels._live_rows_grad(d, h, keep, out)
    np.testing.assert_allclose(out, d.T @ h, rtol=1e-5, atol=1e-6)


if kernels.AVAILABLE:
    import numba

    @numba.njit(cache=False)
    def _mm_call(a, trans_a, b, trans_b, out):
        kernels._mm(a, trans_a, b, trans_b, out)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 40),
    k=st.integers(0, 40),
    n=st.integers(0, 40),
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_kernel_matrix_product_equals_numpy(m, k, n, trans_a, trans_b, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)  # every entry is written, k == 0 included
    _mm_call(a, trans_a, b, trans_b, out)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_kernel_matrix_product_takes_strided_operands_and_propagates_nan():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 10), dtype=np.float32)[:, ::2]  # not contiguous
    b = rng.standard_normal((5, 7), dtype=np.float32)
    out = np.empty((6, 7), np.float32)
    _mm_call(a, False, b, False, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    a = np.ascontiguousarray(a)
    a[2, 3] = np.nan
    _mm_call(a, False, b, False, out)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, axis=0)).all()


def test_kernels_bind_their_products_to_numpys_blas_when_it_has_one():
    import os

    if os.environ.get("GRU4REC_KERNEL_BLAS") == "numba":
        pytest.skip("the fallback was asked for")
    has_numpys = kernels._numpy_sgemm_address() != 0
    assert kernels.SGEMM_BACKEND == ("numpy" if has_numpys else "numba")


def test_kernels_without_numpys_blas_train_the_same_model(tmp_path):
    """GRU4REC_KERNEL_BLAS=numba binds the products to numba's np.dot, as where NumPy's BLAS
    has no 64-bit-integer sgemm: the same model up to float32 rounding."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, numpy as np; sys.path.insert(0, 'tests')\n"
        "from tiny import longer_events, neg\n"
        "from gru4rec import kernels\n"
        "df = longer_events()\n"
        "est = neg(max_epochs=2, loss_fn='bpr-max', num_negatives=6).fit(df)\n"
        "np.save(sys.argv[1], est.predict(df).toarray())\n"
        "print(kernels.SGEMM_BACKEND)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = {}
    for choice in ("", "numba"):
        env = {**os.environ, "GRU4REC_KERNEL_BLAS": choice, "PYTHONPATH": root}
        path = tmp_path / f"pred{choice}.npy"
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        runs[choice] = (done.stdout.strip().splitlines()[-1], np.load(path))
    assert runs["numba"][0] == "numba"
    assert runs[""][0] == kernels.SGEMM_BACKEND
    np.testing.assert_allclose(runs["numba"][1], runs[""][1], rtol=1e-3, atol=1e-4)
