"""Tests of gru4rec.model: initialisation, the step, scoring and dropout."""

from __future__ import annotations

import math

import pytest
import torch

from gru4rec.model import GRU4RecNet, dropout

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
