"""Tests of gru4rec.samplers: the negative sampler and its log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

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
