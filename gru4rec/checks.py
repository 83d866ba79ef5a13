"""The integer checks every public function makes on its arguments, in one place."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_int", "is_int"]


def is_int(value: Any, low: int = 1, high: int | None = None) -> bool:
    """Whether ``value`` is an integer (Python or numpy, never a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return False
    return low <= value and (high is None or value <= high)


def check_int(
    name: str, value: Any, low: int = 1, *, none: bool = False, what: str | None = None
) -> int | None:
    """``value`` as an ``int`` when :func:`is_int` (None too when ``none``).

    Raises
    ------
    ValueError
        ``"<name> must be <what>, got <value>"``; ``what`` defaults to "a positive
        integer" (``low`` 1) or "an integer >= <low>", with " or None" when ``none``.
    """
    if value is None and none:
        return None
    if not is_int(value, low):
        if what is None:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            what += " or None" if none else ""
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)
