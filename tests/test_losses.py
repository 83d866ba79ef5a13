"""Tests of gru4rec.losses against hand computations written with explicit loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gru4rec import kernels, losses
from gru4rec.losses import (
    LOSSES,
    bpr,
    bpr_max,
    cross_entropy_full,
    cross_entropy_sampled,
    cross_entropy_value_grad,
    get_loss,
    top1,
    top1_max,
)

# -- hand computations (float64, explicit loops over rows and columns) -------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _negatives(r: np.ndarray, i: int) -> list[int]:
    """Columns of row i that are negatives: every column except the diagonal one."""
    return [j for j in range(r.shape[1]) if j != i]


def _softmax_over(values: list[float]) -> list[float]:
    m = max(values)
    e = [math.exp(v - m) for v in values]
    s = sum(e)
    return [x / s for x in e]


def ref_top1(r: np.ndarray) -> float:
    rows = []
    for i in range(r.shape[0]):
        neg = _negatives(r, i)
        terms = [_sigmoid(r[i, j] - r[i, i]) + _sigmoid(r[i, j] ** 2) for j in neg]
        rows.append(sum(terms) / len(terms))
    return sum(rows) / len(rows)


def ref_bpr(r: np.ndarray) -> float:
    rows = []
    for i in range(r.shape[0]):
        neg = _negatives(r, i)
        terms = [-math.log(_sigmoid(r[i, i] - r[i, j])) for j in neg]
        rows.append(sum(terms) / len(terms))
    return sum(rows) / len(rows)


def ref_top1_max(r: np.ndarray) -> float:
    rows = []
    for i in range(r.shape[0]):
        neg = _negatives(r, i)
        s = _softmax_over([r[i, j] for j in neg])
        rows.append(
            sum(
                sj * (_sigmoid(r[i, j] - r[i, i]) + _sigmoid(r[i, j] ** 2))
                for sj, j in zip(s, neg, strict=True)
            )
        )
    return sum(rows) / len(rows)


def ref_bpr_max(r: np.ndarray, bpreg: float) -> float:
    rows = []
    for i in range(r.shape[0]):
        neg = _negatives(r, i)
        s = _softmax_over([r[i, j] for j in neg])
        inner = sum(sj * _sigmoid(r[i, i] - r[i, j]) for sj, j in zip(s, neg, strict=True))
        reg = sum(sj * r[i, j] ** 2 for sj, j in zip(s, neg, strict=True))
        rows.append(-math.log(inner + 1e-24) + bpreg * reg)
    return sum(rows) / len(rows)


def ref_cross_entropy(r: np.ndarray, bias: np.ndarray | None = None) -> float:
    rows = []
    for i in range(r.shape[0]):
        row = [r[i, j] - (0.0 if bias is None else bias[j]) for j in range(r.shape[1])]
        p = _softmax_over(row)
        rows.append(-math.log(p[i]))
    return sum(rows) / len(rows)


def ref_cross_entropy_full(r: np.ndarray, targets: np.ndarray) -> float:
    rows = []
    for i in range(r.shape[0]):
        p = _softmax_over(list(r[i]))
        rows.append(-math.log(p[targets[i]]))
    return sum(rows) / len(rows)


# A fixed (B=3, B+S=5) score matrix with distinct values and some negatives above the positive.
R = np.array(
    [
        [1.5, -0.3, 0.8, 2.0, -1.2],
        [0.1, 0.4, -0.7, 0.9, 0.3],
        [-0.5, 1.1, -0.2, 0.0, 1.7],
    ]
)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


@pytest.mark.parametrize(
    ("fn", "ref"),
    [(top1, ref_top1), (bpr, ref_bpr), (top1_max, ref_top1_max)],
    ids=["top1", "bpr", "top1-max"],
)
def test_pairwise_losses_match_hand_computation(fn, ref):
    got = fn(_t(R)).item()
    assert got == pytest.approx(ref(R), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("bpreg", [0.0, 0.5, 1.95])
def test_bpr_max_matches_hand_computation(bpreg):
    got = bpr_max(_t(R), bpreg=bpreg).item()
    assert got == pytest.approx(ref_bpr_max(R, bpreg), rel=1e-5, abs=1e-6)


def test_bpr_max_softmax_excludes_the_positive():
    # A huge positive must not take the softmax weight away from the negatives: with the
    # positive excluded, the regulariser stays the weighted mean of the negatives' squares.
    r = np.array([[30.0, 1.0, 2.0], [0.5, 30.0, -1.0]])
    got = bpr_max(_t(r), bpreg=1.0).item()
    assert got == pytest.approx(ref_bpr_max(r, 1.0), rel=1e-5, abs=1e-6)


def test_cross_entropy_sampled_matches_hand_computation():
    got = cross_entropy_sampled(_t(R)).item()
    assert got == pytest.approx(ref_cross_entropy(R), rel=1e-5, abs=1e-6)


def test_cross_entropy_sampled_with_logq_bias_subtracts_per_column():
    bias = np.array([0.3, -1.0, 2.0, 0.0, 0.7])
    got = cross_entropy_sampled(_t(R), logq_bias=_t(bias)).item()
    assert got == pytest.approx(ref_cross_entropy(R, bias), rel=1e-5, abs=1e-6)
    # And it is not the uncorrected value.
    assert abs(got - ref_cross_entropy(R)) > 1e-2


def test_cross_entropy_sampled_constant_bias_changes_nothing():
    got = cross_entropy_sampled(_t(R), logq_bias=torch.full((5,), 3.0)).item()
    assert got == pytest.approx(ref_cross_entropy(R), rel=1e-5, abs=1e-6)


def test_cross_entropy_full_matches_hand_computation():
    scores = np.array([[0.2, 1.0, -0.5, 0.3], [2.0, -1.0, 0.0, 0.5]])
    targets = np.array([3, 0])
    got = cross_entropy_full(_t(scores), torch.tensor(targets)).item()
    assert got == pytest.approx(ref_cross_entropy_full(scores, targets), rel=1e-5, abs=1e-6)


def test_square_batch_without_extra_negatives():
    # S = 0: only in-batch negatives.
    r = R[:, :3]
    assert top1(_t(r)).item() == pytest.approx(ref_top1(r), rel=1e-5)
    assert bpr(_t(r)).item() == pytest.approx(ref_bpr(r), rel=1e-5)
    assert top1_max(_t(r)).item() == pytest.approx(ref_top1_max(r), rel=1e-5)
    assert bpr_max(_t(r), bpreg=0.7).item() == pytest.approx(ref_bpr_max(r, 0.7), rel=1e-5)
    assert cross_entropy_sampled(_t(r)).item() == pytest.approx(ref_cross_entropy(r), rel=1e-5)


def test_single_row_with_shared_negatives():
    r = R[:1]
    assert bpr_max(_t(r), bpreg=1.0).item() == pytest.approx(ref_bpr_max(r, 1.0), rel=1e-5)
    assert top1(_t(r)).item() == pytest.approx(ref_top1(r), rel=1e-5)


def test_losses_are_means_over_rows():
    # Duplicating the score matrix's rows (as a block-structured batch) keeps the mean.
    r = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    for name in LOSSES:
        fn = get_loss(name)
        # Row i of r has its positive at column i; moved to column 0 for a B=1 batch.
        cols = [[i] + [j for j in range(3) if j != i] for i in (0, 1)]
        single = [fn(_t(r[i : i + 1, cols[i]])).item() for i in (0, 1)]
        both = fn(_t(r)).item()
        assert both == pytest.approx(sum(single) / 2, rel=1e-5), name


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_pushes_positive_up(name):
    fn = get_loss(name)
    scores = _t(R).requires_grad_(True)
    fn(scores).backward()
    diag = torch.diagonal(scores.grad)
    assert torch.all(diag < 0), (name, diag)


def test_perfect_ranking_gives_low_loss():
    good = np.full((3, 6), -5.0)
    np.fill_diagonal(good, 5.0)
    bad = -good
    for name in LOSSES:
        fn = get_loss(name)
        assert fn(_t(good)).item() < fn(_t(bad)).item(), name


def test_get_loss_returns_the_named_functions():
    assert get_loss("top1") is top1
    assert get_loss("top1-max") is top1_max
    assert get_loss("bpr") is bpr
    assert get_loss("bpr-max") is bpr_max
    assert get_loss("cross-entropy") is cross_entropy_sampled
    assert set(LOSSES) == {"top1", "top1-max", "bpr", "bpr-max", "cross-entropy"}
    assert losses.SAMPLED_LOSSES["bpr-max"] is bpr_max


@pytest.mark.parametrize("bad", ["nope", "BPR", "", None, ["bpr"], 3])
def test_get_loss_unknown_name_raises_value_error_naming_loss_fn(bad):
    with pytest.raises(ValueError, match="loss_fn"):
        get_loss(bad)


# -- numerical safety ----------------------------------------------------------------------------


@st.composite
def score_matrices(draw):
    b = draw(st.integers(1, 4))
    s = draw(st.integers(0 if b >= 2 else 1, 4))
    scale = draw(st.sampled_from([1.0, 50.0, 1e3, 1e4]))
    values = draw(
        st.lists(
            st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False),
            min_size=b * (b + s),
            max_size=b * (b + s),
        )
    )
    return np.array(values, dtype=np.float64).reshape(b, b + s) * scale


def _all_losses(scores: torch.Tensor) -> dict[str, torch.Tensor]:
    n = scores.shape[1]
    bias = torch.linspace(-3.0, 3.0, n)
    out = {name: get_loss(name)(scores) for name in LOSSES}
    out["bpr-max-reg2"] = bpr_max(scores, bpreg=2.0)
    out["cross-entropy-logq"] = cross_entropy_sampled(scores, logq_bias=bias)
    targets = torch.arange(scores.shape[0]) % n
    out["cross-entropy-full"] = cross_entropy_full(scores, targets)
    return out


def _check_finite(r: np.ndarray) -> None:
    for name in [*LOSSES, "bpr-max-reg2", "cross-entropy-logq", "cross-entropy-full"]:
        scores = _t(r).requires_grad_(True)
        value = _all_losses(scores)[name]
        assert torch.isfinite(value), (name, r)
        (grad,) = torch.autograd.grad(value, scores)
        assert torch.all(torch.isfinite(grad)), (name, r, grad)


@settings(max_examples=40, deadline=None)
@given(score_matrices())
def test_losses_and_gradients_are_finite_for_extreme_scores(r):
    _check_finite(r)


@settings(max_examples=15, deadline=None)
@given(
    b=st.integers(1, 4),
    s=st.integers(1, 4),
    value=st.sampled_from([0.0, 1.0, -1.0, 1e4, -1e4, 3e3]),
)
def test_losses_finite_for_all_equal_scores(b, s, value):
    _check_finite(np.full((b, b + s), value))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_extreme_diagonal_and_off_diagonal(sign):
    r = np.full((3, 6), -sign * 1e4)
    np.fill_diagonal(r, sign * 1e4)
    _check_finite(r)


def test_extreme_values_match_stable_reference():
    # Large scores where a naive exp/log would overflow in float32 (exp(100)).
    r = np.array([[100.0, 90.0, -80.0, 95.0], [-100.0, 99.0, 98.0, -97.0]])
    assert bpr(_t(r)).item() == pytest.approx(ref_bpr(r), rel=1e-4)
    assert top1(_t(r)).item() == pytest.approx(ref_top1(r), rel=1e-4)
    assert top1_max(_t(r)).item() == pytest.approx(ref_top1_max(r), rel=1e-4)
    assert bpr_max(_t(r), bpreg=0.5).item() == pytest.approx(ref_bpr_max(r, 0.5), rel=1e-4)
    assert cross_entropy_sampled(_t(r)).item() == pytest.approx(ref_cross_entropy(r), rel=1e-4)


def test_bpr_max_with_every_sigmoid_underflowing_is_large_and_finite():
    # Every negative beats the positive by 200: sigmoid(-200) underflows in float32, yet the
    # loss must stay finite and at least the 1e-24-capped published value, -log(1e-24) ~ 55.
    r = np.array([[-100.0, 100.0, 100.0], [100.0, -100.0, 100.0]])
    value = bpr_max(_t(r), bpreg=0.0).item()
    assert math.isfinite(value)
    assert value >= 55.0


@pytest.mark.parametrize("name", sorted(losses.SAMPLED_LOSSES))
def test_log_weights_equal_duplicated_columns(name):
    # A column standing for m identical draws (log_weights = log m) must give the
    # loss and the gradient of m duplicated columns: the CPU training path relies on it.
    torch.manual_seed(0)
    b, counts = 4, torch.tensor([2, 1, 3, 5])
    base = torch.randn(b, b + len(counts), dtype=torch.float64, requires_grad=True)
    dup = torch.cat(
        [torch.arange(b), b + torch.repeat_interleave(torch.arange(len(counts)), counts)]
    )
    loss_dup = losses.SAMPLED_LOSSES[name](base[:, dup], bpreg=0.7)
    (grad_dup,) = torch.autograd.grad(loss_dup, base)
    log_w = torch.cat([torch.zeros(b, dtype=torch.float64), counts.double().log()])
    loss_w = losses.SAMPLED_LOSSES[name](base, bpreg=0.7, log_weights=log_w)
    (grad_w,) = torch.autograd.grad(loss_w, base)
    assert loss_w.item() == pytest.approx(loss_dup.item(), rel=1e-12)
    assert torch.allclose(grad_w, grad_dup, atol=1e-12)


def test_bpr_hand_written_backward_passes_gradcheck():
    scores = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(losses.bpr, (scores,))


def test_bpr_backward_beyond_the_fast_range_passes_gradcheck():
    # A negative scoring 90 above its positive: the softplus branch of the forward pass.
    scores = torch.randn(3, 7, dtype=torch.float64)
    scores[0, 4] = scores[0, 0] + 90.0
    scores.requires_grad_(True)
    assert torch.autograd.gradcheck(losses.bpr, (scores,))
    r = scores.detach().numpy()
    assert losses.bpr(scores).item() == pytest.approx(ref_bpr(r), rel=1e-9)


@pytest.mark.parametrize("spread", [1.0, 100.0])  # the fast branch and the softplus one
def test_bpr_from_factors_equals_bpr_of_the_scores(spread):
    g = torch.Generator().manual_seed(3)
    b, s, h = 5, 4, 3
    factors = [
        torch.randn(b, h, generator=g, dtype=torch.float64) * spread,
        torch.randn(b + s, h, generator=g, dtype=torch.float64),
        torch.randn(b + s, 1, generator=g, dtype=torch.float64),
    ]
    a = [f.clone().requires_grad_(True) for f in factors]
    ref = bpr(a[0] @ a[1].t() + a[2].t())
    ref.backward()
    f = [x.clone().requires_grad_(True) for x in factors]
    got = losses.bpr_from_factors(*f)
    got.backward()
    torch.testing.assert_close(got, ref)
    for x, y in zip(f, a, strict=True):
        torch.testing.assert_close(x.grad, y.grad)
    with pytest.raises(RuntimeError, match="one backward pass"):
        loss = losses.bpr_from_factors(*f)
        loss.backward(retain_graph=True)
        loss.backward()


@pytest.mark.parametrize("spread", [1.0, 100.0])
def test_bpr_from_factors_with_repeated_targets_equals_the_duplicated_columns(spread):
    # Targets [7, 3, 7, 7, 5] and negatives [3, 9, 9]: scored as distinct columns
    # [7, 3, 5, 3, 9] with weights [3, 1, 1, 1, 2] (the negative 3 stays its own column).
    g = torch.Generator().manual_seed(5)
    h, n_items = 4, 10
    table = torch.randn(n_items, h, generator=g, dtype=torch.float64)
    bias = torch.randn(n_items, 1, generator=g, dtype=torch.float64)
    out = torch.randn(5, h, generator=g, dtype=torch.float64) * spread
    dup_cols = torch.tensor([7, 3, 7, 7, 5, 3, 9, 9])
    cols = torch.tensor([7, 3, 5, 3, 9])
    positives = torch.tensor([0, 1, 0, 0, 2])
    weights = torch.tensor([3.0, 1.0, 1.0, 1.0, 2.0], dtype=torch.float64)

    ref_in = [out.clone().requires_grad_(True), table[dup_cols].requires_grad_(True)]
    ref_bias = bias[dup_cols].requires_grad_(True)
    ref = bpr(ref_in[0] @ ref_in[1].t() + ref_bias.t())
    ref.backward()
    got_in = [out.clone().requires_grad_(True), table[cols].requires_grad_(True)]
    got_bias = bias[cols].requires_grad_(True)
    got = losses.bpr_from_factors(got_in[0], got_in[1], got_bias, positives, weights)
    got.backward()

    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(got_in[0].grad, ref_in[0].grad)
    # A distinct column's gradient is the sum over its copies.
    owner = torch.tensor([0, 1, 0, 0, 2, 3, 4, 4])
    for leaf, ref_leaf in [(got_in[1], ref_in[1]), (got_bias, ref_bias)]:
        summed = torch.zeros_like(leaf).index_add_(0, owner, ref_leaf.grad)
        torch.testing.assert_close(leaf.grad, summed)


# -- closed-form values and score gradients (the hand-differentiated training step) -------------


def _autograd_value_grad(fn, scores, scale):
    s = scores.clone().requires_grad_(True)
    value = fn(s) * scale
    value.backward()
    return value.detach(), s.grad


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 5),
    n_neg=st.integers(0, 6),
    spread=st.sampled_from([0.1, 1.0, 5.0]),
    weighted=st.booleans(),
    elu=st.sampled_from([0.0, 0.5, 1.0]),
    bpreg=st.sampled_from([0.0, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_bpr_max_value_grad_equals_autograd(b, n_neg, spread, weighted, elu, bpreg, seed):
    from gru4rec.losses import bpr_max_value_grad

    if b + n_neg < 2:
        return
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, b + n_neg, generator=gen, dtype=torch.float64) * spread
    log_w = None
    if weighted:
        log_w = torch.cat([torch.zeros(b), torch.rand(n_neg, generator=gen) * 2]).double()

    def ref(s):
        return bpr_max(F.elu(s, alpha=elu) if elu > 0 else s, bpreg=bpreg, log_weights=log_w)

    value, grad = bpr_max_value_grad(scores.clone(), bpreg, elu, log_w, scale=0.5)
    ref_value, ref_grad = _autograd_value_grad(ref, scores, 0.5)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)


def test_bpr_max_value_grad_declines_when_every_sigmoid_underflows():
    from gru4rec.losses import bpr_max_value_grad

    scores = torch.tensor([[-200.0, 0.0, 300.0], [0.0, -200.0, 300.0]])
    assert bpr_max_value_grad(scores, 0.5) is None


@pytest.mark.parametrize("spread", [0.1, 3.0, 40.0])
def test_cross_entropy_value_grad_equals_autograd(spread):
    from gru4rec.losses import cross_entropy_value_grad

    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 9, generator=gen, dtype=torch.float64) * spread
    value, grad = cross_entropy_value_grad(logits.clone(), scale=0.25)
    ref_value, ref_grad = _autograd_value_grad(cross_entropy_sampled, logits, 0.25)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)


# -- the losses' compiled forms (gru4rec.kernels.losses) against their torch code ------------------


def test_cross_entropy_kernel_equals_the_torch_loss_and_gradient():
    pytest.importorskip("numba")
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


def test_cross_entropy_column_bias_kernel_equals_the_torch_sum():
    pytest.importorskip("numba")
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


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    negatives=st.integers(0, 40),
    weighted=st.booleans(),
    spread=st.sampled_from([0.5, 5.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_transposed_bpr_kernel_equals_the_torch_loss(rows, negatives, weighted, spread, seed):
    pytest.importorskip("numba")
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
    pytest.importorskip("numba")
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
    pytest.importorskip("numba")
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
    pytest.importorskip("numba")
    scores_t = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    scores_t[where] = np.nan
    col_grad = np.empty((6, 1), np.float32)
    assert np.isnan(kernels.xent_step_softmax_loss(scores_t.copy(), 0.5, col_grad))
    assert np.isnan(kernels.bpr_max_step_loss(scores_t.copy(), None, 0.9, 1.0, 0.5, col_grad))


def test_bpr_max_kernel_reports_where_its_closed_form_fails():
    pytest.importorskip("numba")
    scores = np.zeros((3, 2), np.float32)  # columns x rows: two rows, one negative
    scores[2, 0] = 200.0  # row 0's negative far above its positive: every sigmoid underflows
    loss = kernels.bpr_max_step_loss(scores, None, 0.5, 0.0, 0.5, np.empty((3, 1), np.float32))
    assert np.isnan(loss)
