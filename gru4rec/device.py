"""Where the work runs: every choice that differs between the CPU and an accelerator.

The other modules ask this one instead of testing ``device.type`` themselves, so the
CPU/GPU split is decided in one place.
"""

from __future__ import annotations

from typing import Any

import torch

from . import kernels
from .notices import warn

__all__ = [
    "fused_kernels",
    "host_reads_are_free",
    "may_be_nondeterministic",
    "resolve",
    "runtime",
]

_HELP = "device must be 'auto', 'cpu' or 'cuda[:N]'"


def resolve(device: Any) -> torch.device:
    """The :class:`torch.device` for a ``device`` parameter ('auto': CUDA when available).

    Raises
    ------
    ValueError
        For anything but 'auto', 'cpu', 'cuda[:N]' or such a torch.device, and for CUDA
        when it is not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"{_HELP}; got {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{_HELP}; got {device!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{_HELP}; got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def runtime(device: Any) -> torch.device:
    """The device to load a saved model onto: the saved one, or the CPU (with a warning)
    when its CUDA is not available here."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        warn(f"the model was trained on {device}, which is not available; loading it on the CPU")
        return torch.device("cpu")
    return resolve(device)


def may_be_nondeterministic(device: Any) -> bool:
    """Whether a ``device`` parameter may run on CUDA, whose index_add and scatter kernels
    are not bit-for-bit reproducible."""
    text = str(device)
    return text.startswith("cuda") or (text == "auto" and torch.cuda.is_available())


def host_reads_are_free(device: torch.device) -> bool:
    """Whether reading a value back to the host costs nothing (the CPU), so that work with
    a data-dependent size or path pays off: distinct negatives scored once, distinct rows
    updated once, a range check picking the cheaper formula.

    On an accelerator each such read is a synchronisation that stalls the queue, and
    repeated work is cheap there, so the fixed-size path is taken.
    """
    return torch.device(device).type == "cpu"


def fused_kernels(device: torch.device) -> bool:
    """Whether the training step uses :mod:`gru4rec.kernels` (compiled CPU loops) for its
    element-wise passes: on the CPU when numba is installed, never on an accelerator."""
    return kernels.AVAILABLE and torch.device(device).type == "cpu"
