"""Tests of gru4rec.samplers: the negative sampler and its log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gru4rec import kernels
from gru4rec.samplers import NegativeSampler


def _sampler(counts, alpha, n_samples=64, seed=0, buffer_size=4096):
    gen = torch.Generator().manual_seed(seed)
    return NegativeSampler(
        np.asarray(counts), alpha, n_samples, gen, torch.device("cpu"), buffer_size=buffer_size
    )


def _draw_many(sampler, n_draws):
    return torch.cat([sampler.draw() for _ in range(n_draws)]).numpy()


COUNTS = np.array([100, 50, 25, 10, 5, 5, 3, 1, 1, 400])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_draw_shape_dtype_range(alpha):
    s = _sampler(COUNTS, alpha, n_samples=37, buffer_size=100)
    for _ in range(10):  # crosses several buffer refills
        d = s.draw()
        assert d.shape == (37,)
        assert d.dtype == torch.int64
        assert int(d.min()) >= 0 and int(d.max()) < len(COUNTS)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_draw_distribution_follows_counts_to_the_alpha(alpha):
    s = _sampler(COUNTS, alpha, n_samples=200, seed=1)
    draws = _draw_many(s, 300)  # 60k draws
    observed = np.bincount(draws, minlength=len(COUNTS))
    p = COUNTS.astype(float) ** alpha
    p /= p.sum()
    expected = p * len(draws)
    _, pvalue = stats.chisquare(observed, expected)
    assert pvalue > 1e-4, (observed, expected)
    assert np.allclose(observed / len(draws), p, atol=0.01)


def test_uniform_is_not_popularity_and_vice_versa():
    uni = np.bincount(_draw_many(_sampler(COUNTS, 0.0), 300), minlength=len(COUNTS))
    pop = np.bincount(_draw_many(_sampler(COUNTS, 1.0), 300), minlength=len(COUNTS))
    # Item 9 has 400 of 600 counts: ~2/3 of the draws with alpha=1, ~1/10 with alpha=0.
    assert uni[9] / uni.sum() < 0.15
    assert pop[9] / pop.sum() > 0.6


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
def test_items_with_zero_count_are_never_drawn(alpha):
    counts = np.array([0, 3, 0, 0, 1, 7, 0, 2, 0, 0])  # zeros first, inside and last
    draws = _draw_many(_sampler(counts, alpha, n_samples=100, seed=3), 200)
    drawn = set(np.unique(draws).tolist())
    assert drawn == {1, 4, 5, 7}


def test_zero_count_items_are_drawn_with_alpha_zero():
    counts = np.array([0, 3, 0, 0, 1])
    draws = _draw_many(_sampler(counts, 0.0, n_samples=100), 20)
    assert set(np.unique(draws).tolist()) == {0, 1, 2, 3, 4}


def test_all_zero_counts_with_positive_alpha_raise():
    with pytest.raises(ValueError, match="sample_alpha"):
        _sampler(np.zeros(5), 0.5)


@pytest.mark.parametrize("alpha", [0.0, 0.75])
def test_same_seed_same_draws_different_seed_different_draws(alpha):
    a = _draw_many(_sampler(COUNTS, alpha, seed=7, buffer_size=256), 20)
    b = _draw_many(_sampler(COUNTS, alpha, seed=7, buffer_size=256), 20)
    c = _draw_many(_sampler(COUNTS, alpha, seed=8, buffer_size=256), 20)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_sampler_leaves_global_random_state_untouched(alpha):
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is what we check)
    s = _sampler(COUNTS, alpha, n_samples=16, buffer_size=64)
    for _ in range(20):
        s.draw()
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]


def test_consecutive_draws_differ():
    s = _sampler(np.ones(1000), 0.0, n_samples=50, buffer_size=200)
    draws = [s.draw().numpy() for _ in range(8)]
    for a, b in zip(draws, draws[1:], strict=False):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_draw_unique_compacts_each_steps_draws(alpha):
    counts = np.arange(1, 41)
    sampler = NegativeSampler(
        counts, alpha, 64, torch.Generator().manual_seed(5), "cpu", buffer_size=64 * 3, dedup=True
    )
    for _ in range(7):  # crosses refills
        items, log_mult = sampler.draw_unique()
        draws = sampler._buffer[sampler._next - 1]
        assert torch.all(items[1:] > items[:-1])
        if log_mult is None:  # few repeats: the raw draws
            assert torch.equal(items, draws)
            assert len(torch.unique(draws)) > 0.9 * 64
            continue
        rebuilt = torch.repeat_interleave(items, log_mult.exp().round().long())
        assert torch.equal(rebuilt, draws)
        assert int(log_mult.exp().round().sum()) == 64


@pytest.mark.parametrize("n_items", [40, 20_000])  # repeats compacted / raw draws
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_draw_unique_arrays_are_the_draw_unique_tensors(alpha, n_items):
    counts = np.arange(1, n_items + 1)

    def sampler():
        gen = torch.Generator().manual_seed(5)
        return NegativeSampler(counts, alpha, 64, gen, "cpu", buffer_size=64 * 3, dedup=True)

    tensors, arrays = sampler(), sampler()
    for step in range(10):  # crosses refills; a tensor draw between array draws is fine too
        items, log_mult = tensors.draw_unique()
        if step == 4:
            got_items, got_mult = (x if x is None else x.numpy() for x in arrays.draw_unique())
        else:
            got_items, got_mult = arrays.draw_unique_arrays()
        np.testing.assert_array_equal(got_items, items.numpy())
        assert (got_mult is None) == (log_mult is None) == (n_items > 1000)
        if log_mult is not None:
            np.testing.assert_array_equal(got_mult, log_mult.numpy())


def test_log_probabilities_follow_the_data_for_targets_and_alpha_for_negatives():
    counts = np.array([4, 1, 0, 8])
    sampler = _sampler(counts, alpha=0.5)
    targets, negatives = torch.tensor([0, 3]), torch.tensor([1, 2, 3])
    got = sampler.log_probabilities(targets, negatives).numpy()
    # Targets come from the data (P ~ count); negatives from the sampler (P ~ count ** alpha),
    # so differences of log-probabilities are the log count ratios (an item never seen counts
    # once).
    assert got[1] - got[0] == pytest.approx(np.log(2))
    assert got[4] - got[2] == pytest.approx(0.5 * np.log(8))
    assert got[3] == pytest.approx(got[2])
    assert sampler.log_probabilities(targets, None).shape == (2,)


# The compiled refill (kernels on) against the torch code (kernels off): the same draws, the
# same compacted runs, the same random stream, bit for bit.


def _state(sampler):
    """Everything a refill leaves behind that the draws are read from."""
    parts = [sampler._buffer.clone()]
    if sampler.dedup:
        parts += [
            sampler._unique.clone(),
            sampler._log_mult.clone(),
            torch.from_numpy(np.array(sampler._bounds, dtype=np.int64)),
        ]
    return parts


def _run(counts, alpha, n_samples, buffer_size, dedup, compiled, steps, seed=0):
    """Successive draws (``draw_unique`` with dedup), the state after every refill and the
    generator's final state, with the compiled refill or the torch code."""
    gen = torch.Generator().manual_seed(seed)
    sampler = NegativeSampler(
        np.asarray(counts),
        alpha,
        n_samples,
        gen,
        "cpu",
        buffer_size=buffer_size,
        dedup=dedup,
        compiled=compiled,
    )
    draws, states = [], []
    for _ in range(steps):
        fresh = sampler._buffer is None or sampler._next >= sampler._rows
        if dedup:
            items, log_mult = sampler.draw_unique()
            draws.append((items.clone(), None if log_mult is None else log_mult.clone()))
        else:
            draws.append((sampler.draw().clone(), None))
        if fresh:
            states.append(_state(sampler))
    return draws, states, gen.get_state()


def _assert_same_runs(a, b):
    draws_a, states_a, gen_a = a
    draws_b, states_b, gen_b = b
    assert len(draws_a) == len(draws_b) and len(states_a) == len(states_b)
    for (items_a, mult_a), (items_b, mult_b) in zip(draws_a, draws_b, strict=True):
        assert items_a.dtype == items_b.dtype == torch.int64
        assert torch.equal(items_a, items_b)
        assert (mult_a is None) == (mult_b is None)
        if mult_a is not None:
            assert mult_a.dtype == mult_b.dtype == torch.float32
            assert torch.equal(mult_a, mult_b)  # bit for bit, not approximately
    for parts_a, parts_b in zip(states_a, states_b, strict=True):
        for x, y in zip(parts_a, parts_b, strict=True):
            assert x.dtype == y.dtype and torch.equal(x, y)
    assert torch.equal(gen_a, gen_b)  # the same random numbers were consumed


ZIPF = np.maximum(1, (1e4 / np.arange(1, 501) ** 1.1).astype(np.int64))
ZIPF[[3, 250, 499]] = 0  # never drawn with alpha > 0, also at the end of the table


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize(("n_samples", "buffer_size"), [(64, 64 * 5), (300, 1000), (1, 7)])
def test_compiled_refill_gives_the_torch_draws(alpha, dedup, n_samples, buffer_size):
    pytest.importorskip("numba")
    steps = 3 * max(1, buffer_size // n_samples) + 1  # crosses three refills
    args = (ZIPF, alpha, n_samples, buffer_size, dedup)
    _assert_same_runs(
        _run(*args, compiled=True, steps=steps), _run(*args, compiled=False, steps=steps)
    )


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_compiled_refill_gives_the_torch_draws_with_many_items(alpha):
    # Many more items than draws: few repeats, long stretches of the table between draws.
    pytest.importorskip("numba")
    counts = np.random.default_rng(1).integers(0, 1000, size=20000)
    args = (counts, alpha, 512, 512 * 4, True)
    _assert_same_runs(_run(*args, compiled=True, steps=9), _run(*args, compiled=False, steps=9))


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 30), min_size=1, max_size=40).filter(lambda c: sum(c) > 0),
    alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    n_samples=st.integers(1, 40),
    rows=st.integers(1, 4),
    dedup=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_compiled_refill_gives_the_torch_draws_for_any_counts(
    counts, alpha, n_samples, rows, dedup, seed
):
    pytest.importorskip("numba")
    args = (counts, alpha, n_samples, rows * n_samples, dedup)
    steps = 2 * rows + 1
    compiled = _run(*args, compiled=True, steps=steps, seed=seed)
    _assert_same_runs(compiled, _run(*args, compiled=False, steps=steps, seed=seed))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_compacted_runs_rebuild_every_steps_draws(compiled, alpha):
    if compiled:
        pytest.importorskip("numba")
    n = 96
    sampler = NegativeSampler(
        ZIPF[:60], alpha, n, torch.Generator().manual_seed(2), "cpu", n * 6, True, compiled
    )
    sampler.draw_unique()
    bounds, unique, log_mult = sampler._bounds, sampler._unique, sampler._log_mult
    assert bounds[0] == 0 and bounds[-1] == len(unique) == len(log_mult)
    assert np.all(np.diff(bounds) >= 1)
    mult = log_mult.double().exp()
    torch.testing.assert_close(mult, mult.round(), rtol=1e-6, atol=0)  # whole multiplicities
    for r in range(sampler._rows):
        a, b = int(bounds[r]), int(bounds[r + 1])
        assert int(mult[a:b].round().sum()) == n  # every draw of the step counted once
        assert torch.all(unique[a + 1 : b] > unique[a : b - 1])  # maximal runs, sorted rows
        rebuilt = torch.repeat_interleave(unique[a:b], mult[a:b].round().long())
        assert torch.equal(rebuilt, sampler._buffer[r])


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_sorted_draws_kernel_equals_searchsorted_at_exact_ties(data):
    pytest.importorskip("numba")
    m = data.draw(st.sampled_from([1, 2, 4, 8, 16]))
    # Weights summing to 64: cdf values are multiples of 1/64, like the bucket edges.
    cuts = sorted(data.draw(st.lists(st.integers(0, 64), min_size=m - 1, max_size=m - 1)))
    cdf = np.diff([0, *cuts, 64]).cumsum() / 64.0
    n = data.draw(st.integers(1, 30))
    rows = data.draw(st.integers(1, 3))
    spacings = np.empty((rows, n + 1))
    for r in range(rows):  # n + 1 spacings summing to 64: uniforms on the same grid
        row_cuts = sorted(data.draw(st.lists(st.integers(0, 64), min_size=n, max_size=n)))
        spacings[r] = np.diff([0, *row_cuts, 64])
    u = np.cumsum(spacings, axis=1)[:, :n] / 64.0
    expected = np.minimum(np.searchsorted(cdf, u, side="right"), m - 1)
    out = np.empty((rows, n), np.int64)
    k = kernels.sorted_draws(spacings.copy(), kernels.inverse_cdf_table(cdf), m, out)
    assert k == 0
    np.testing.assert_array_equal(out, expected)
    unique, mult = np.empty(rows * n, np.int64), np.empty(rows * n, np.float32)
    bounds = np.empty(rows + 1, np.int64)
    k = kernels.sorted_draws(
        spacings.copy(), kernels.inverse_cdf_table(cdf), m, out, (unique, mult, bounds)
    )
    np.testing.assert_array_equal(out, expected)
    assert bounds[-1] == k and mult[:k].sum() == rows * n
    for r in range(rows):
        a, b = bounds[r], bounds[r + 1]
        np.testing.assert_array_equal(np.repeat(unique[a:b], mult[a:b].astype(int)), out[r])


# -- the compiled draws against the torch code, through the sampler --------------------------------


@pytest.mark.parametrize("dedup", [False, True])
def test_sampler_draws_the_same_negatives_with_the_merge_search(torch_only, dedup):
    from gru4rec.step import build_sampler

    counts = np.random.default_rng(0).integers(0, 50, size=300)
    counts[[0, 7, 299]] = 0  # never drawn, also at the ends of the table
    draws = []
    for on in (False, True):
        torch_only(on)  # the factory builds the compiled refill only with the kernels on
        gen = torch.Generator().manual_seed(5)
        sampler = build_sampler(counts, 0.7, 64, gen, torch.device("cpu"), 64 * 40, dedup)
        assert sampler.compiled == on
        draws.append(torch.cat([sampler.draw() for _ in range(90)]))  # three refills
    assert torch.equal(draws[0], draws[1])
    assert not bool(torch.isin(draws[1], torch.tensor([0, 7, 299])).any())
