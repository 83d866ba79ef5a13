"""The compiled pieces of a live event: the int8 table, its first pass, the exact top-k of the
candidates, and the one-event GRU step, each against a plain reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gru4rec import kernels
from gru4rec.inference import Int8Scorer, Scorer
from gru4rec.kernels import quantized
from gru4rec.kernels.live import LiveStep
from gru4rec.model import GRU4RecNet

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="the compiled kernels are off")

_SEEN = float(np.finfo(np.float32).min)


def _table(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((n, d)).astype(np.float32)
    weights[rng.random(n) < 0.1] = 0.0  # all-zero items: scale 0
    return weights


def _dequantised(blocks: np.ndarray, scale: np.ndarray, n: int, d: int) -> np.ndarray:
    rows = blocks.transpose(0, 2, 1).reshape(-1, blocks.shape[1])[:n, :d]
    return rows.astype(np.float32) * scale[:n, None]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 700), d=st.integers(1, 19), seed=st.integers(0, 9))
def test_the_int8_table_holds_each_item_within_half_a_step(n, d, seed):
    weights = _table(n, d, seed)
    blocks, scale = quantized.pack_int8(weights)
    assert blocks.dtype == np.int8 and blocks.shape[2] == quantized.BLOCK
    assert blocks.shape[0] * quantized.BLOCK >= n and blocks.shape[1] % 4 == 0
    assert len(scale) == blocks.shape[0] * quantized.BLOCK and not scale[n:].any()
    error = np.abs(_dequantised(blocks, scale, n, d) - weights)
    assert (error <= scale[:n, None] * 0.5 + 1e-7).all()
    # Each item's largest magnitude is the int8 extreme, the padding is zero.
    peak = np.abs(blocks.transpose(0, 2, 1).reshape(-1, blocks.shape[1])[:n]).max(axis=1)
    assert ((peak == 127) | (np.abs(weights).max(axis=1) == 0)).all()


_LAYOUTS = [
    pytest.param(False, id="portable"),
    pytest.param(
        True,
        id="paired",
        marks=pytest.mark.skipif(not quantized.PAIRED, reason="the paired pass needs AVX2"),
    ),
]


@pytest.mark.parametrize("paired", _LAYOUTS)
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 900),
    d=st.integers(1, 12),
    rows=st.integers(1, 9),
    m=st.integers(1, 120),
    blocked_share=st.sampled_from([0.0, 0.5, 0.99]),
    seed=st.integers(0, 9),
)
def test_the_first_pass_keeps_the_best_m_int8_scores(paired, n, d, rows, m, blocked_share, seed):
    rng = np.random.default_rng(seed)
    weights = _table(n, d, seed)
    table = quantized.Int8Table(weights, paired=paired)
    blocked = rng.random(n) < blocked_share
    bias = table.padded_bias(rng.standard_normal(n).astype(np.float32), blocked)
    queries = rng.standard_normal((rows, d)).astype(np.float32)
    got = table.first_pass(bias, queries, m)
    blocks, scale = quantized.pack_int8(weights)
    if paired:  # the paired pass multiplies int16 copies of the queries
        words, scales = quantized.int16_queries(queries, table.table.shape[1])
        queries = words.view(np.int16)[:, :d] * scales[:, None]
    want = queries @ _dequantised(blocks, scale, n, d).T + bias[:n]
    allowed = int((~blocked).sum())
    for r in range(rows):
        picked = got[r][got[r] >= 0]
        assert len(picked) == min(m, allowed) and len(set(picked)) == len(picked)
        assert not blocked[picked].any()
        assert (got[r][len(picked) :] == -1).all()
        # Best first, and nothing left out scores above the weakest kept (float32 sums in
        # another order: a tolerance).
        kept = want[r, picked]
        assert (np.diff(kept) <= 1e-4).all()
        rest = np.setdiff1d(np.flatnonzero(~blocked), picked)
        if len(rest) and len(picked):
            assert want[r, rest].max() <= kept.min() + 1e-4


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 4),
    d=st.integers(1, 3000),
    magnitude=st.sampled_from([0.0, 1e-20, 1.0, 1e30]),
    seed=st.integers(0, 9),
)
def test_int16_queries_round_trip_and_cannot_overflow(rows, d, magnitude, seed):
    queries = (np.random.default_rng(seed).standard_normal((rows, d)) * magnitude).astype(
        np.float32
    )
    d2 = -(-d // 2)
    words, scales = quantized.int16_queries(queries, d2)
    wide = words.view(np.int16)
    assert words.shape == (rows, d2) and not wide[:, d:].any()
    # Sums of 2 * d2 products with int8 values of magnitude 127 stay inside int32.
    assert np.abs(wide.astype(np.int64)).max(initial=0) * 127 * 2 * d2 < 2**31
    back = wide[:, :d] * scales[:, None].astype(np.float64)
    step = scales[:, None].astype(np.float64)
    assert (np.abs(back - queries) <= step * 0.5 + 1e-6 * np.abs(queries)).all()


@pytest.mark.skipif(not quantized.PAIRED, reason="the paired pass needs AVX2")
def test_the_paired_table_holds_the_int8_rows_in_pairs():
    weights = _table(70, 7, 3)
    blocks, scale = quantized.pack_int8(weights)
    pairs, pair_scale = quantized.pack_pairs(weights)
    rows = blocks.transpose(0, 2, 1).reshape(-1, blocks.shape[1])[:70]
    assert pairs.shape == (3, 4, 2 * quantized.GROUP)
    for item in (0, 31, 32, 69):
        group, slot = divmod(item, quantized.GROUP)
        got = pairs[group, :, 2 * slot : 2 * slot + 2].ravel()
        np.testing.assert_array_equal(got[:7], rows[item, :7])
        assert got[7] == 0
    np.testing.assert_array_equal(pair_scale[:70], scale[:70])
    assert not pair_scale[70:].any()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    m=st.integers(1, 30),
    k=st.integers(1, 10),
    with_seen=st.booleans(),
    seed=st.integers(0, 9),
)
def test_the_exact_top_k_of_candidates_matches_numpy(n, m, k, with_seen, seed):
    rng = np.random.default_rng(seed)
    d, rows = 7, 3
    weights = rng.standard_normal((n, d)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    queries = rng.standard_normal((rows, d)).astype(np.float32)
    candidates = np.full((rows, m), -1, dtype=np.int64)
    for r in range(rows):
        some = rng.permutation(n)[: rng.integers(0, min(n, m) + 1)]
        candidates[r, : len(some)] = some
    k = min(k, m)
    seen = None
    if with_seen:
        own = [rng.choice(n, rng.integers(0, 4)) for _ in range(rows)]
        seen = (np.concatenate(own).astype(np.int64), np.cumsum([0] + [len(o) for o in own]))
    values, items = quantized.exact_top_k(weights, bias, queries, candidates, k, seen, _SEEN)
    for r in range(rows):
        valid = candidates[r][candidates[r] >= 0]
        exact = queries[r] @ weights[valid].T + bias[valid]
        if seen is not None:
            exact[np.isin(valid, seen[0][seen[1][r] : seen[1][r + 1]])] = _SEEN
        order = np.argsort(-exact, kind="stable")[:k]
        want = np.where(exact[order] <= _SEEN, -np.inf, exact[order])
        np.testing.assert_allclose(values[r, : len(order)], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(items[r, : len(order)], valid[order])
        assert (values[r, len(order) :] == -np.inf).all()


@settings(max_examples=15, deadline=None)
@given(
    layers=st.integers(1, 3),
    constrained=st.booleans(),
    rows=st.integers(1, 5),
    seed=st.integers(0, 99),
)
def test_the_compiled_event_step_is_the_networks_step(layers, constrained, rows, seed):
    net = GRU4RecNet(
        50, hidden_size=24, num_layers=layers, embedding_size=9, constrained=constrained
    )
    net.reset_parameters(torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for cell in net.cells:  # non-zero biases, so that each bias is checked
            cell.bias_ih.normal_(generator=gen)
            cell.bias_hh.normal_(generator=gen)
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 50, rows)
    hidden = rng.standard_normal((rows, layers, 24)).astype(np.float32)
    before = hidden.copy()
    got = LiveStep(net)(items, hidden)
    with torch.no_grad():
        h = [torch.from_numpy(hidden[:, layer].copy()) for layer in range(layers)]
        _, new = net.step(net.input_vectors(torch.as_tensor(items)), h)
    np.testing.assert_allclose(got, torch.stack(new, 1).numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(hidden, before)


def test_without_the_kernels_the_int8_scorer_scores_exactly(monkeypatch):
    net = GRU4RecNet(300, hidden_size=16, constrained=True)
    net.reset_parameters(torch.Generator().manual_seed(0))
    states = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    got = Int8Scorer(net).top_k(states, 10)
    want = Scorer(net, torch.device("cpu")).top_k(states, 10)
    torch.testing.assert_close(got, want)


def test_the_int8_scorer_falls_back_to_exact_scores_where_the_first_pass_runs_short():
    net = GRU4RecNet(40, hidden_size=8, constrained=True)
    net.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.item_output[5:] = float("nan")  # only five items have finite scores
    states = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    seen = (np.array([0, 1, 2]), np.array([0, 1, 1, 3]))
    got_val, got_idx = Int8Scorer(net).top_k(states, 10, seen)
    want_val, want_idx = Scorer(net, torch.device("cpu")).top_k(states, 10, seen)
    assert (got_idx.numpy() >= 0).all()
    np.testing.assert_array_equal(got_idx.numpy(), want_idx.numpy())
    np.testing.assert_array_equal(np.isnan(got_val.numpy()), np.isnan(want_val.numpy()))
