"""The epoch loop: run epochs over built parts and report each one to whoever listens.

The estimator builds the parts (network, schedule on the device, sampler, optimiser, loss)
and hands them over; :class:`Trainer` runs up to ``max_epochs`` epochs of
:func:`gru4rec.training.train_epoch`, and after each one

1. checks that the loss and the weights are finite (else: :class:`TrainingDivergedError`,
   with the best or last good weights restored),
2. lets the :class:`~gru4rec.stopping.Selection` judge the epoch on validation data,
3. appends the epoch's record to the history and calls every listener with it
   (progress, user callbacks),
4. stops when the selection's patience is used up.

A ``KeyboardInterrupt`` restores the weights of the last completed epoch, marks that epoch's
record ``interrupted`` and propagates (as a ``KeyboardInterrupt`` that knows how many epochs
completed, :func:`interrupted`); so does an error raised because of one (a Ctrl-C that
lands while compiled code calls back into Python surfaces as a ``SystemError`` whose cause is
the ``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from . import kernels
from .device import blas_threads, fused_kernels
from .model import GRU4RecNet
from .stopping import Selection, snapshot
from .training import Epoch, train_epoch

__all__ = [
    "Parts",
    "Progress",
    "Trainer",
    "TrainingDivergedError",
    "caused_by_interrupt",
    "interrupted",
]

#: A listener: called with each completed epoch's record.
Listener = Callable[[dict[str, Any]], None]


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block has run, then
    hand it to the handler that was in place (Python's raises ``KeyboardInterrupt``). Only
    the main thread receives signals; elsewhere, or under a non-Python handler, the block
    runs as is."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    held: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        previous(*held[0])


def caused_by_interrupt(exc: BaseException) -> bool:
    """True when ``exc`` is a ``KeyboardInterrupt`` or was raised because of one."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class TrainingDivergedError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite; the estimator keeps its last good model."""


def interrupted(message: str, epochs_completed: int) -> KeyboardInterrupt:
    """The ``KeyboardInterrupt`` a fit stopped by Ctrl-C raises: a plain one (Python ends an
    uncaught one, and only that exact type, as killed by SIGINT, the status shells expect),
    knowing how many epochs completed (``epochs_completed``)."""
    exc = KeyboardInterrupt(message)
    exc.epochs_completed = epochs_completed  # type: ignore[attr-defined]
    return exc


#: Everything an epoch needs, built once per fit (:class:`gru4rec.training.Epoch`).
Parts = Epoch


class Progress:
    """A progress bar over the training steps of a fit, moved every
    :data:`~gru4rec.training.REPORT_EVERY` steps (no host read per step); the epoch
    records show as its postfix. Silent when disabled."""

    def __init__(
        self, total_steps: int, max_epochs: int, enabled: bool, desc: str, first: str = ""
    ) -> None:
        self.max_epochs = max_epochs
        self.desc = desc
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm  # only a verbose fit pays for importing tqdm

            # ``first``: said until the first epoch ends (the one-time compilation).
            self.bar = tqdm(total=total_steps, desc=f"{desc}{first}", unit="step")

    def steps(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __call__(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_description(self.desc, refresh=False)
            shown = {"epoch": f"{record['epoch'] + 1}/{self.max_epochs}"}
            shown.update((k, f"{v:.4g}") for k, v in record.items() if isinstance(v, float))
            self.bar.set_postfix(shown)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """Runs the epochs of one fit.

    Parameters
    ----------
    parts : Parts
    learning_rate : float
        Only quoted in the divergence message.
    """

    def __init__(self, parts: Parts, learning_rate: float) -> None:
        self.parts = parts
        self.learning_rate = learning_rate
        self.history: list[dict[str, Any]] = []

    def run(
        self,
        max_epochs: int,
        listeners: Sequence[Listener] = (),
        selection: Selection | None = None,
        evaluate: Callable[[], float] | None = None,
        *,
        verbose: bool = False,
        desc: str = "",
    ) -> list[dict[str, Any]]:
        """Train up to ``max_epochs`` epochs; return the history (one record per epoch).

        With ``selection`` and ``evaluate``, each epoch is scored (``evaluate()``) and judged.
        An exception from a listener propagates after the last completed epoch's weights
        are restored. ``verbose`` shows a progress bar over the steps, named ``desc``.
        """
        n_steps = max_epochs * (len(self.parts.data.step_offsets) - 1)
        first = ""
        if verbose and self._compiles():
            first = " (compiling the CPU kernels, once; later fits reuse them)"
        progress = Progress(n_steps, max_epochs, verbose, desc, first)
        try:
            with blas_threads():
                return self._run(max_epochs, [progress, *listeners], selection, evaluate, progress)
        finally:
            progress.close()

    def _compiles(self) -> bool:
        """Whether this fit starts by compiling the CPU kernels (the first in a process, on an
        empty disk cache): its first steps then take seconds, and the bar's ETA with them."""
        device = self.parts.data.inputs.device
        return fused_kernels(device) and kernels.will_compile()

    def _run(
        self,
        max_epochs: int,
        listeners: Sequence[Listener],
        selection: Selection | None,
        evaluate: Callable[[], float] | None,
        progress: Progress,
    ) -> list[dict[str, Any]]:
        model = self.parts.model
        # The weights after the last completed epoch: what an interrupted or diverged
        # fit falls back to, so no half-updated model is ever left behind.
        last = snapshot(model)
        try:
            for epoch in range(max_epochs):
                record = self._epoch(epoch, progress)
                self._check_finite(record, selection, last)
                value = None
                if selection is not None and evaluate is not None:
                    value = evaluate()
                # The epoch's bookkeeping happens whole or not at all: a Ctrl-C in the middle
                # of a weight copy would leave a mix of two epochs to fall back to.
                with _interrupts_deferred():
                    if value is not None:
                        record[selection.criterion.name] = value
                        record["improved"] = selection.update(epoch, value, model)
                    last = snapshot(model, into=last)
                    self.history.append(record)
                for listener in listeners:
                    listener(record)
                if selection is not None and selection.should_stop:
                    break
        except TrainingDivergedError:
            raise
        except BaseException as exc:
            model.load_state_dict(last)
            if not caused_by_interrupt(exc):
                raise
            done = len(self.history)
            if done:
                self.history[-1]["interrupted"] = True
            # Epochs count from 1 here, as len(history) does.
            raise interrupted(
                f"fit interrupted in epoch {done + 1}; "
                + (f"the model after epoch {done} was kept" if done else "no epoch completed"),
                done,
            ) from (None if isinstance(exc, KeyboardInterrupt) else exc)
        return self.history

    def _epoch(self, epoch: int, progress: Progress) -> dict[str, Any]:
        p = self.parts
        start = time.perf_counter()
        total = train_epoch(p, on_steps=None if progress.bar is None else progress.steps)
        train_loss = float(total) / max(1, p.data.n_rows)  # the one host read of the epoch
        seconds = time.perf_counter() - start
        return {
            "epoch": epoch,
            "train_loss": train_loss,
            "seconds": seconds,
            "events_per_second": p.data.n_rows / seconds if seconds > 0 else float("inf"),
        }

    def _check_finite(
        self, record: dict[str, Any], selection: Selection | None, last: dict[str, torch.Tensor]
    ) -> None:
        data = self.parts.data
        b0 = int(data.step_offsets[1])  # the first step's rows: a bounded probe
        probe = (data.inputs[:b0], data.targets[:b0])
        if np.isfinite(record["train_loss"]) and _all_finite(self.parts.model, *probe):
            return
        best = None if selection is None else selection.best_state
        self.parts.model.load_state_dict(best if best is not None else last)
        kept = "best" if best is not None else "last completed epoch's"
        raise TrainingDivergedError(
            f"training loss became {record['train_loss']} in epoch {record['epoch'] + 1}; try a "
            f"lower learning_rate (now {self.learning_rate}). The {kept} model "
            "was kept, so the estimator stays usable."
        )


@torch.no_grad()
def _all_finite(model: GRU4RecNet, inputs: torch.Tensor, targets: torch.Tensor) -> bool:
    """Whether the weights, and the scores of a probe step from ``inputs``, are finite.

    Weights can blow up to huge finite values that overflow in the next forward pass,
    so a short forward pass is checked too (one device read per epoch).
    """
    was_training = model.training
    model.eval()
    out, _ = model.step(model.input_vectors(inputs), model.init_hidden(len(inputs), inputs.device))
    scores = model.score_items(out, targets)
    model.train(was_training)
    tensors = [*model.parameters(), scores]
    # A NaN or inf anywhere makes the sum non-finite, and a sum reads the tables once
    # (an element-wise test writes a mask as large): most epochs end here.
    if bool(torch.isfinite(torch.stack([t.sum() for t in tensors])).all()):
        return True
    # Finite values can still sum past float32's range: then look at every element.
    return all(bool(torch.isfinite(t).all()) for t in tensors)
