"""The sampler and the optimiser of a fit, built for its device: the one place that picks
their compiled CPU forms (:mod:`gru4rec.kernels`) and whether a step's distinct rows and
negatives are compacted (a host read, free on the CPU only)."""

from __future__ import annotations

import numpy as np
import torch

from ..device import fused_kernels, host_reads_are_free
from ..model import GRU4RecNet
from ..optim import RowSparseOptimizer
from ..samplers import NegativeSampler

__all__ = ["build_optimizer", "build_sampler"]


def build_optimizer(
    model: GRU4RecNet, algorithm: str = "adagrad", lr: float = 0.03, momentum: float = 0.0
) -> RowSparseOptimizer:
    """The optimiser of ``model``'s dense parameters and item tables, on their device."""
    device = model.item_output.device
    return RowSparseOptimizer(
        model.dense_parameters(),
        model.item_tables(),
        algorithm=algorithm,
        lr=lr,
        momentum=momentum,
        fused=fused_kernels(device),
        compact=host_reads_are_free(device),
    )


def build_sampler(
    counts: np.ndarray,
    alpha: float,
    n_samples: int,
    generator: torch.Generator,
    device: torch.device,
    buffer_size: int = 2**22,
    dedup: bool | None = None,
) -> NegativeSampler:
    """The negative sampler on ``device``; ``dedup`` (None: where host reads are free) as in
    :class:`~gru4rec.samplers.NegativeSampler`."""
    return NegativeSampler(
        counts,
        alpha,
        n_samples,
        generator,
        device,
        buffer_size=buffer_size,
        dedup=host_reads_are_free(device) if dedup is None else dedup,
        compiled=fused_kernels(device),
    )
