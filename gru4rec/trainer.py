"""The epoch loop: run epochs over built parts and notify callbacks of each one.

The estimator builds the parts (network, schedule on the device, sampler, optimiser, loss)
and hands them over; :class:`Trainer` runs up to ``max_epochs`` epochs of
:func:`gru4rec.step.train_epoch` and notifies its :class:`Callback` objects (skorch's
``on_train_begin``, ``on_epoch_begin``, ``on_epoch_end``, ``on_train_end``), in order:

1. :class:`DivergenceCheck`: the loss and the weights are finite (else:
   :class:`TrainingDivergedError`, with the best or last good weights restored),
2. :class:`Evaluation` and :class:`SelectionCallback`: the
   :class:`~gru4rec.selection.Selection` judges the epoch on validation data, and stops the
   training when its patience is used up,
3. :class:`History`: the epoch's record is appended to the history,
4. :class:`Progress`: the progress bar,
5. the callbacks handed to :meth:`Trainer.run` (the user's).

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

from .cpu import blas_threads
from .model import GRU4RecNet
from .selection import Selection, snapshot
from .step import Epoch, compiles_first, train_epoch

__all__ = [
    "Callback",
    "DivergenceCheck",
    "Evaluation",
    "History",
    "Parts",
    "Progress",
    "SelectionCallback",
    "Trainer",
    "TrainingDivergedError",
    "UserCallback",
    "caused_by_interrupt",
    "interrupted",
    "is_callback",
    "user_callbacks",
]


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


#: Everything an epoch needs, built once per fit (:class:`gru4rec.step.Epoch`).
Parts = Epoch


class Callback:
    """What the trainer notifies, in the shape of skorch's ``NeuralNet.notify``: subclass it
    and override the methods you need (each does nothing here).

    ``owner`` is whoever runs the training: the :class:`Trainer` for its own callbacks (the
    divergence check, the selection, the history, the progress bar), the estimator for the
    user's ``callbacks=``. The trainer notifies its callbacks in order; an exception raised by
    one ends the training (after the last completed epoch's weights are restored).
    """

    #: Run this callback's ``on_epoch_end`` next to its atomic neighbours as one block that a
    #: Ctrl-C does not split (the epoch's bookkeeping: selection and history).
    atomic: bool = False

    def on_train_begin(self, owner: Any) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, owner: Any, epoch: int) -> None:
        """Before epoch ``epoch`` (from 0) trains."""

    def on_epoch_end(self, owner: Any, record: dict[str, Any]) -> None:
        """After epoch ``record["epoch"]`` trained, with its record (a dict the callbacks
        before this one may have added to)."""

    def on_train_end(self, owner: Any) -> None:
        """After the last epoch, however the training ended (also when it raises)."""


_EVENTS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")


def is_callback(obj: Any) -> bool:
    """Whether ``obj`` has any of the :class:`Callback` methods (it needs not subclass it)."""
    return any(callable(getattr(obj, event, None)) for event in _EVENTS)


class UserCallback(Callback):
    """A user's callback, notified with ``owner`` (the estimator) in place of the trainer:
    an object with :class:`Callback` methods has those called (the ones it has), a plain
    callable is called as ``callback(owner, record)`` after each epoch."""

    def __init__(self, owner: Any, callback: Any) -> None:
        self.owner = owner
        self.callback = callback

    def _forward(self, event: str, *args: Any) -> None:
        method = getattr(self.callback, event, None)
        if callable(method):
            method(self.owner, *args)
        elif event == "on_epoch_end" and not is_callback(self.callback):
            self.callback(self.owner, *args)

    def on_train_begin(self, owner: Any) -> None:
        self._forward("on_train_begin")

    def on_epoch_begin(self, owner: Any, epoch: int) -> None:
        self._forward("on_epoch_begin", epoch)

    def on_epoch_end(self, owner: Any, record: dict[str, Any]) -> None:
        self._forward("on_epoch_end", record)

    def on_train_end(self, owner: Any) -> None:
        self._forward("on_train_end")


def user_callbacks(owner: Any, callbacks: Any) -> list[Callback]:
    """The user's ``callbacks`` as the trainer's, checked before any work: a callable is
    called as ``callback(owner, record)`` after each epoch; an object with the methods of
    :class:`Callback` has them called with ``owner`` (the estimator)."""
    if callbacks is None:
        return []
    if callable(callbacks) or isinstance(callbacks, str | bytes):
        raise ValueError("callbacks must be a sequence of callables, e.g. [callback]")
    callbacks = list(callbacks)
    for i, callback in enumerate(callbacks):
        if not callable(callback) and not is_callback(callback):
            raise ValueError(
                f"callbacks[{i}] is neither callable nor a Callback (with on_epoch_end, "
                f"...): {callback!r}"
            )
    return [UserCallback(owner, cb) for cb in callbacks]


class DivergenceCheck(Callback):
    """Ends the training with :class:`TrainingDivergedError` when the epoch's loss, the
    weights or a probe step's scores are not finite, after restoring the best weights (with a
    selection) or the last completed epoch's."""

    def __init__(self, selection: Selection | None, history: History) -> None:
        self.selection = selection
        self.history = history

    def on_epoch_end(self, owner: Trainer, record: dict[str, Any]) -> None:
        data = owner.parts.data
        b0 = int(data.step_offsets[1])  # the first step's rows: a bounded probe
        probe = (data.inputs[:b0], data.targets[:b0])
        if np.isfinite(record["train_loss"]) and _all_finite(owner.parts.model, *probe):
            return
        best = None if self.selection is None else self.selection.best_state
        owner.parts.model.load_state_dict(best if best is not None else self.history.last)
        kept = "best" if best is not None else "last completed epoch's"
        raise TrainingDivergedError(
            f"training loss became {record['train_loss']} in epoch {record['epoch'] + 1}; try a "
            f"lower learning_rate (now {owner.learning_rate}). The {kept} model "
            "was kept, so the estimator stays usable."
        )


class Evaluation(Callback):
    """Scores the epoch on validation data: ``record[criterion name] = evaluate()``."""

    def __init__(self, name: str, evaluate: Callable[[], float]) -> None:
        self.name = name
        self.evaluate = evaluate

    def on_epoch_end(self, owner: Trainer, record: dict[str, Any]) -> None:
        record[self.name] = self.evaluate()


class SelectionCallback(Callback):
    """Lets the :class:`~gru4rec.selection.Selection` judge the epoch's value (keeping a copy of
    the best weights), and stops the training when its patience is used up."""

    atomic = True

    def __init__(self, selection: Selection) -> None:
        self.selection = selection

    def on_epoch_end(self, owner: Trainer, record: dict[str, Any]) -> None:
        value = record[self.selection.criterion.name]
        record["improved"] = self.selection.update(record["epoch"], value, owner.parts.model)
        if self.selection.should_stop:
            owner.stop = True


class History(Callback):
    """The records of the completed epochs, and a copy of the last one's weights: what an
    interrupted or diverged fit falls back to, so no half-updated model is left behind."""

    atomic = True

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.last: dict[str, torch.Tensor] = {}

    def on_train_begin(self, owner: Trainer) -> None:
        self.last = snapshot(owner.parts.model)

    def on_epoch_end(self, owner: Trainer, record: dict[str, Any]) -> None:
        self.last = snapshot(owner.parts.model, into=self.last)
        self.records.append(record)


class Progress(Callback):
    """A progress bar over the training steps of a fit, moved every
    :data:`~gru4rec.step.REPORT_EVERY` steps (no host read per step); the epoch
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

    def on_epoch_end(self, owner: Any, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_description(self.desc, refresh=False)
            shown = {"epoch": f"{record['epoch'] + 1}/{self.max_epochs}"}
            shown.update((k, f"{v:.4g}") for k, v in record.items() if isinstance(v, float))
            self.bar.set_postfix(shown)

    def on_train_end(self, owner: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
        self._history = History()
        self.history: list[dict[str, Any]] = self._history.records
        #: Set by a callback to end the training after the current epoch.
        self.stop = False

    def run(
        self,
        max_epochs: int,
        callbacks: Sequence[Callback] = (),
        selection: Selection | None = None,
        evaluate: Callable[[], float] | None = None,
        *,
        verbose: bool = False,
        desc: str = "",
    ) -> list[dict[str, Any]]:
        """Train up to ``max_epochs`` epochs; return the history (one record per epoch).

        With ``selection`` and ``evaluate``, each epoch is scored (``evaluate()``) and judged.
        The trainer's callbacks (divergence check, evaluation and selection, history,
        progress bar) are notified first, then ``callbacks``, in order. An exception from a
        callback propagates after the last completed epoch's weights are restored.
        ``verbose`` shows a progress bar over the steps, named ``desc``.
        """
        n_steps = max_epochs * (len(self.parts.data.step_offsets) - 1)
        first = ""
        if verbose and compiles_first(self.parts.data.inputs.device):
            first = " (compiling the CPU kernels, once; later fits reuse them)"
        progress = Progress(n_steps, max_epochs, verbose, desc, first)
        judged = selection is not None and evaluate is not None
        own: list[Callback] = [DivergenceCheck(selection if judged else None, self._history)]
        if judged:
            own += [Evaluation(selection.criterion.name, evaluate), SelectionCallback(selection)]
        everyone = [*own, self._history, progress, *callbacks]
        self.stop = False
        try:
            with blas_threads():
                self._notify(everyone, "on_train_begin")
                return self._run(max_epochs, everyone, progress)
        finally:
            self._notify(everyone, "on_train_end")

    def _notify(self, callbacks: Sequence[Callback], method: str, *args: Any) -> None:
        for callback in callbacks:
            getattr(callback, method)(self, *args)

    def _epoch_end(self, callbacks: Sequence[Callback], record: dict[str, Any]) -> None:
        """``on_epoch_end`` in order; each run of consecutive atomic callbacks happens whole
        or not at all: a Ctrl-C in the middle of a weight copy would leave a mix of two epochs
        to fall back to."""
        i = 0
        while i < len(callbacks):
            if not callbacks[i].atomic:
                callbacks[i].on_epoch_end(self, record)
                i += 1
                continue
            j = i
            while j < len(callbacks) and callbacks[j].atomic:
                j += 1
            with _interrupts_deferred():
                for callback in callbacks[i:j]:
                    callback.on_epoch_end(self, record)
            i = j

    def _run(
        self, max_epochs: int, callbacks: Sequence[Callback], progress: Progress
    ) -> list[dict[str, Any]]:
        try:
            for epoch in range(max_epochs):
                self._notify(callbacks, "on_epoch_begin", epoch)
                record = self._epoch(epoch, progress)
                self._epoch_end(callbacks, record)
                if self.stop:
                    break
        except TrainingDivergedError:
            raise
        except BaseException as exc:
            self.parts.model.load_state_dict(self._history.last)
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
