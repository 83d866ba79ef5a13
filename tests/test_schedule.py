"""Tests of gru4rec.schedule: the session-parallel schedule and the order in which training
visits sessions (time order, ties drawn from the seed)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gru4rec.schedule import by_length, session_order, session_parallel_schedule


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


# -- by_length -----------------------------------------------------------------------------------


def test_by_length_puts_the_longest_sessions_first():
    offsets = _offsets([2, 5, 1, 5])
    assert by_length(offsets).tolist() == [1, 3, 0, 2]


# -- session_order: time order, ties drawn from the seed -----------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=0, max_size=60),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["time", "random"]),
)
def test_session_order_is_a_permutation_and_time_mode_sorts(times, seed, mode):
    start = np.array(times, dtype=np.int64)
    order = session_order(start, np.random.default_rng(seed), mode)
    assert np.array_equal(np.sort(order), np.arange(len(start)))
    if mode == "time":
        assert np.all(np.diff(start[order]) >= 0)


def test_distinct_start_times_keep_time_order():
    start = np.array([30, 10, 20, 0])
    for seed in range(5):
        order = session_order(start, np.random.default_rng(seed))
        assert order.tolist() == [3, 1, 2, 0]


def test_tied_start_times_come_in_a_seeded_random_order():
    start = np.zeros(50, dtype=np.int64)
    a = session_order(start, np.random.default_rng(1))
    b = session_order(start, np.random.default_rng(1))
    c = session_order(start, np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(50))  # never id order


def test_tie_orders_are_uniform():
    # Every arrangement of three tied sessions is about equally likely.
    start = np.array([5, 0, 0, 0])
    rng = np.random.default_rng(0)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(3000):
        key = tuple(session_order(start, rng)[:3].tolist())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6
    assert min(counts.values()) > 400  # 500 expected each


def test_random_mode_ignores_times():
    start = np.arange(40)
    order = session_order(start, np.random.default_rng(0), "random")
    assert not np.array_equal(order, np.arange(40))


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="session order"):
        session_order(np.zeros(3), np.random.default_rng(0), "id")


# -- accuracy does not depend on how ids were numbered -------------------------------------------
