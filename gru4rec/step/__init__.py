"""The training step per backend, behind one dispatcher.

Each path trains a whole epoch and lives in its own module:

- :mod:`~gru4rec.step.reference`: autograd differentiates every step (any loss, any ``bptt``,
  the full-catalogue loss); every other path is checked against it;
- :mod:`~gru4rec.step.direct`: differentiated by hand, no autograd graph (``bptt == 1``, a
  sampled loss, any device and number of layers);
- :mod:`~gru4rec.step.compiled`: each step in a few compiled CPU calls (one GRU layer,
  ``bptt == 1``, a loss with a compiled form, the compiled kernels available).

:func:`path_for` picks the path from the configuration, the loss object's capabilities and the
device (:func:`paths_for` lists every path that can train a configuration);
:mod:`~gru4rec.step.epoch` holds what they share (the schedule on the device, the parts of an
epoch, the iteration over steps and their negatives); :mod:`~gru4rec.step.parts` builds the
sampler and the optimiser for a device (their compiled CPU forms are chosen there alone).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import kernels
from ..device import fused_kernels
from . import compiled, direct, reference
from .epoch import REPORT_EVERY, Epoch, EpochData
from .parts import build_optimizer, build_sampler

__all__ = [
    "REPORT_EVERY",
    "Epoch",
    "EpochData",
    "build_optimizer",
    "build_sampler",
    "compiles_first",
    "path_for",
    "paths_for",
    "train_epoch",
]

EpochPath = Callable[[Epoch, Callable[[int], None] | None], torch.Tensor]


def paths_for(run: Epoch) -> list[EpochPath]:
    """Every path that can train ``run``, the most specialised first: the compiled one where
    it applies, the hand-differentiated one where ``bptt == 1`` and the loss is sampled, and
    always autograd (the reference, last)."""
    loss = run.loss.build()
    paths = [reference.train_epoch]
    if run.bptt == 1 and loss.sampled and run.sampler is not None:
        paths.insert(0, direct.train_epoch)
        if compiled.applies(run.model, loss):
            paths.insert(0, compiled.train_epoch)
    return paths


def compiles_first(device: torch.device) -> bool:
    """Whether a fit on ``device`` starts by compiling the CPU kernels (the first in a process,
    on an empty disk cache): its first steps then take seconds."""
    return fused_kernels(device) and kernels.will_compile()


def path_for(run: Epoch) -> EpochPath:
    """The path that trains ``run``: the first of :func:`paths_for`."""
    return paths_for(run)[0]


def train_epoch(run: Epoch, on_steps: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run one epoch; return the summed training loss over rows (a device scalar).

    Each step's loss is the sum over its rows divided by the full batch size (the
    first step's row count), so every row weighs the same, also in the shrinking
    steps at the end of the epoch. Dividing the returned sum by ``data.n_rows``
    gives the loss per event. ``on_steps(n)``, when given, hears every
    ``REPORT_EVERY`` steps (and at the end) how many steps were done since its last call.
    All paths give the same model from the same generator state, up to float rounding.
    """
    return path_for(run)(run, on_steps)
