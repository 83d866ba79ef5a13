"""Tests of gru4rec.samplers: the session-parallel schedule and the negative sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gru4rec.samplers import NegativeSampler, session_parallel_schedule

# -- schedule ------------------------------------------------------------------------------------


def _offsets(lengths) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _steps(schedule):
    """List of (sessions, positions, resets, events) per step."""
    out = []
    offs = schedule.step_offsets
    for t in range(schedule.n_steps):
        s, e = offs[t], offs[t + 1]
        out.append(
            (
                schedule.sessions[s:e],
                schedule.positions[s:e],
                schedule.resets[s:e],
                schedule.events[s:e],
            )
        )
    return out


def check_schedule(lengths, order, batch_size, include_last):
    """Every invariant of a session-parallel schedule; returns the schedule."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = _offsets(lengths)
    order = np.asarray(order, dtype=np.int64)
    sch = session_parallel_schedule(offsets, order, batch_size, include_last=include_last)
    counts = lengths if include_last else lengths - 1

    # Shapes and consistency of the flat arrays.
    n = sch.n_rows
    for a in (sch.events, sch.resets, sch.sessions, sch.positions):
        assert a.shape == (n,)
    assert sch.step_offsets[0] == 0 and sch.step_offsets[-1] == n
    assert np.all(np.diff(sch.step_offsets) > 0)
    assert np.array_equal(sch.events, offsets[sch.sessions] + sch.positions)

    # Coverage: every (session, position) pair exactly once.
    expected = Counter((s, p) for s in range(len(lengths)) for p in range(counts[s]))
    got = Counter(zip(sch.sessions.tolist(), sch.positions.tolist(), strict=True))
    assert got == expected
    assert n == int(np.maximum(counts, 0).sum())
    if not include_last:
        # Each row's input event has a next event in the same session.
        assert np.all(sch.positions + 1 < lengths[sch.sessions])

    # Resets exactly at session starts.
    assert np.array_equal(sch.resets, sch.positions == 0)

    bs = sch.batch_sizes
    assert np.all(bs <= batch_size)
    # Batch sizes never grow: the active slots are a prefix 0 .. b_t - 1.
    assert np.all(np.diff(bs) <= 0)

    steps = _steps(sch)
    valid = [s for s in order.tolist() if counts[s] > 0]
    if not valid:
        assert sch.n_steps == 0
        return sch
    # First step: the first min(B, n) sessions of `order`, each at position 0.
    first_sessions, first_pos, _, _ = steps[0]
    assert sorted(first_sessions.tolist()) == sorted(valid[: min(batch_size, len(valid))])
    assert np.all(first_pos == 0)

    start_step = {}
    for t, (sessions, positions, _, _) in enumerate(steps):
        # Within a step, each slot holds a different session.
        assert len(set(sessions.tolist())) == len(sessions)
        for k, (s, p) in enumerate(zip(sessions.tolist(), positions.tolist(), strict=True)):
            if p == 0:
                start_step[s] = t
            else:
                # Slot k continues: at step t-1, slot k held the same session one event earlier.
                prev_s, prev_p, _, _ = steps[t - 1]
                assert k < len(prev_s)
                assert prev_s[k] == s and prev_p[k] == p - 1
            if p + 1 < counts[s]:
                # Not finished: the same slot continues at the next step.
                nxt_s, nxt_p, _, _ = steps[t + 1]
                assert k < len(nxt_s) and nxt_s[k] == s and nxt_p[k] == p + 1

    # Sessions start in the given order.
    starts = [start_step[s] for s in valid]
    assert all(a <= b for a, b in zip(starts, starts[1:], strict=False))
    # No idle slot while sessions wait: the batch is full before the last session starts.
    last_start = max(starts)
    full = min(batch_size, len(valid))
    assert np.all(bs[:last_start] == full)
    return sch


def test_small_known_schedule():
    # Sessions of lengths 3, 2, 4, 2 in order 0..3, two slots, training pairs (2, 1, 3, 1).
    # Slot A runs s0 (steps 0-1) then s3 (step 2); slot B runs s1 (step 0) then s2 (steps 1-3).
    sch = check_schedule([3, 2, 4, 2], [0, 1, 2, 3], 2, include_last=False)
    steps = [dict(zip(s.tolist(), p.tolist(), strict=True)) for s, p, _, _ in _steps(sch)]
    assert steps == [{0: 0, 1: 0}, {0: 1, 2: 0}, {3: 0, 2: 1}, {2: 2}]
    # Slot B (s1, s2) retires last, so it is slot 0: the prefix that survives.
    assert sch.sessions[sch.step_offsets[3]] == 2
    assert sch.batch_sizes.tolist() == [2, 2, 2, 1]


def test_include_last_gives_every_event_once():
    lengths = [1, 4, 2, 1, 3]
    sch = check_schedule(lengths, np.arange(5), 3, include_last=True)
    assert sorted(sch.events.tolist()) == list(range(sum(lengths)))


def test_length_one_sessions_give_no_training_rows():
    sch = check_schedule([1, 1, 1], [0, 1, 2], 2, include_last=False)
    assert sch.n_rows == 0 and sch.n_steps == 0
    assert sch.step_offsets.tolist() == [0]


def test_order_is_respected_not_index_order():
    lengths = [2, 5, 3, 2, 4, 2]
    order = [4, 1, 5, 0, 3, 2]
    sch = check_schedule(lengths, order, 2, include_last=False)
    first = _steps(sch)[0][0].tolist()
    assert first == [4, 1]


def test_order_may_be_a_subset():
    offsets = _offsets([3, 3, 3, 3])
    sch = session_parallel_schedule(offsets, np.array([2, 0]), 4)
    assert set(sch.sessions.tolist()) == {0, 2}
    assert sch.n_rows == 4


def test_batch_larger_than_session_count():
    sch = check_schedule([3, 2], [0, 1], 16, include_last=False)
    assert sch.batch_sizes.tolist() == [2, 1]


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 7), min_size=0, max_size=25),
    batch_size=st.integers(1, 6),
    include_last=st.booleans(),
    data=st.data(),
)
def test_schedule_invariants_hold_for_random_sessions(lengths, batch_size, include_last, data):
    order = data.draw(st.permutations(list(range(len(lengths)))))
    check_schedule(lengths, order, batch_size, include_last)


# -- negative sampler ----------------------------------------------------------------------------


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
