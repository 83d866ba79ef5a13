"""Defaults that several modules share, each defined once: the event columns' names and
the stopping criterion's settings.

Plain values with no imports, so that the command line reads them without torch.
"""

from __future__ import annotations

__all__ = ["ITEM", "MAX_ITER_NO_CHANGE", "MIN_IMPROVEMENT", "SESSION", "STOP_EARLY", "TIME"]

#: The session id column.
SESSION = "session_id"
#: The item id column.
ITEM = "item_id"
#: The timestamp column.
TIME = "timestamp"

#: Whether training stops once the criterion stops improving.
STOP_EARLY = False
#: With early stopping, the consecutive epochs without improvement that end the training.
MAX_ITER_NO_CHANGE = 5
#: How much a value must beat the best so far by to count as an improvement.
MIN_IMPROVEMENT = 0.0
