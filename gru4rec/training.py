"""One training epoch over a session-parallel schedule: the names the trainer and the
estimators use, from :mod:`gru4rec.step` (the paths and their dispatcher) and
:mod:`gru4rec.losses` (the loss configuration).

Everything a step needs is sliced from tensors moved to the device once per
fit (:class:`EpochData`); the loop runs over mini-batches only, never reads a
value back from the device, and accumulates the loss on the device.
"""

from __future__ import annotations

from .losses import LossConfig
from .step import (
    REPORT_EVERY,
    Epoch,
    EpochData,
    build_optimizer,
    build_sampler,
    train_epoch,
)

__all__ = [
    "REPORT_EVERY",
    "Epoch",
    "EpochData",
    "LossConfig",
    "build_optimizer",
    "build_sampler",
    "train_epoch",
]
