"""Tests of gru4rec.checks: the one integer check behind every function's arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gru4rec.checks import check_int, is_int


@given(st.integers(-(2**70), 2**70), st.integers(-5, 5))
def test_python_and_numpy_integers_pass_from_low_up(value, low):
    assert is_int(value, low) == (value >= low)
    if -(2**63) <= value < 2**63:
        assert is_int(np.int64(value), low) == (value >= low)


@pytest.mark.parametrize("value", [True, False, 1.0, np.float64(2), "3", None, [1], float("nan")])
def test_bools_floats_strings_and_none_are_not_integers(value):
    assert not is_int(value, low=-10)


def test_high_bounds_from_above():
    assert is_int(5, 1, 5) and not is_int(6, 1, 5)


def test_check_int_returns_a_python_int_and_names_the_parameter():
    assert check_int("k", np.int32(3)) == 3 and type(check_int("k", np.int32(3))) is int
    assert check_int("k", None, none=True) is None
    with pytest.raises(ValueError, match=r"^k must be a positive integer, got 0$"):
        check_int("k", 0)
    with pytest.raises(ValueError, match=r"^k must be a positive integer or None, got 1\.5$"):
        check_int("k", 1.5, none=True)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 2, got 1$"):
        check_int("n", 1, 2)
    with pytest.raises(ValueError, match=r"^m must be an int >= 1, got None$"):
        check_int("m", None, what="an int >= 1")
