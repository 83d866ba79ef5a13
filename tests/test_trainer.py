"""Tests of gru4rec.trainer: the epoch loop, divergence, interrupts, its callbacks and progress."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from interrupts import interrupt_at_marker
from tiny import (
    all_finite,
    assert_same_weights,
    dense,
    initial_weights,
    longer_events,
    neg,
    weights,
    xent,
)

import gru4rec.trainer as trainer_module
from gru4rec import InteractionMatrix, kernels, step
from gru4rec.losses import LOSS_CLASSES
from gru4rec.optim import RowSparseOptimizer
from gru4rec.step import REPORT_EVERY
from gru4rec.trainer import TrainingDivergedError


def test_diverged_error_is_exported_by_the_package():
    import gru4rec

    assert gru4rec.TrainingDivergedError is TrainingDivergedError
    assert "TrainingDivergedError" in gru4rec.__all__


def test_huge_learning_rate_raises_diverged_error_and_keeps_the_last_finite_model():
    # A learning rate near float32's largest value: the first updates overflow the weights or
    # the scores. Which epoch sees it first depends on the BLAS's summation order, so the test
    # reads the epoch from the message and checks the fallback against it.
    df = longer_events()
    est = neg(learning_rate=3e38, optimization_algorithm="sgd", clipnorm=None, max_epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+.*lower learning_rate") as info:
        est.fit(df)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FloatingPointError)
    diverged_in = int(re.search(r"epoch (\d+)", str(info.value)).group(1))  # from 1
    assert len(est.history_) == diverged_in - 1
    assert all(np.isfinite(h["train_loss"]) for h in est.history_)
    # The estimator holds the weights of the last finite epoch, no NaN or inf ones.
    assert all_finite(est)
    if diverged_in == 1:
        assert_same_weights(weights(est), initial_weights(est))
    n_sessions, n_items = df["session_id"].nunique(), df["item_id"].nunique()
    pred = est.predict(df)
    assert pred.shape == (n_sessions, n_items)
    assert np.isfinite(pred.data).all()
    ranks = est.next_item_ranks(df)
    assert ((ranks >= 1) & (ranks <= n_items)).all()


class _EpochCounter:
    """Wraps ``gru4rec.trainer.train_epoch`` and counts the epochs (0-based ``current``)."""

    def __init__(self, monkeypatch):
        self.current = -1
        real = trainer_module.train_epoch

        def wrapped(*args, **kwargs):
            self.current += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(trainer_module, "train_epoch", wrapped)


def _poison_loss_in_epoch(monkeypatch, epoch: int, step: int = 1) -> None:
    """From step ``step`` of epoch ``epoch`` on, the training loss is NaN: NaN gradients then
    corrupt the weights in the middle of that epoch."""
    counter = _EpochCounter(monkeypatch)
    calls = {"epoch": -1, "step": 0}

    def poison(real):
        def poisoned(*args, **kwargs):
            loss = real(*args, **kwargs)
            if calls["epoch"] != counter.current:
                calls["epoch"], calls["step"] = counter.current, 0
            calls["step"] += 1
            if counter.current == epoch and calls["step"] > step:
                if isinstance(loss, tuple):  # (loss, gradient of the scores)
                    return tuple(t * float("nan") for t in loss)
                loss = loss * float("nan")
            return loss

        return poisoned

    # Every loss object's step goes through one of these (autograd's, the hand-differentiated
    # step's, and its compiled-CPU variant).
    for cls in LOSS_CLASSES.values():
        for name in ("reference", "value_grad", "host_value_grad"):
            if getattr(cls, name) is not None:
                monkeypatch.setattr(cls, name, poison(getattr(cls, name)))

    # The compiled step's losses return a float and turn their first argument into the
    # gradient: both become NaN.
    def poison_compiled(real):
        counted = poison(real)

        def poisoned(scores_t, *args, **kwargs):
            loss = counted(scores_t, *args, **kwargs)
            if loss != loss:
                scores_t *= float("nan")
            return loss

        return poisoned

    for name in ("xent_step_softmax_loss", "bpr_step_loss", "bpr_max_step_loss"):
        monkeypatch.setattr(kernels, name, poison_compiled(getattr(kernels, name)))


@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_nan_loss_in_a_later_epoch_keeps_the_last_good_epoch(monkeypatch, make):
    df = longer_events()
    reference = make(max_epochs=2).fit(df)

    _poison_loss_in_epoch(monkeypatch, epoch=2)
    est = make(max_epochs=4)
    with pytest.raises(TrainingDivergedError, match=r"epoch 3\b.*learning_rate"):
        est.fit(df)
    assert len(est.history_) == 2
    assert all_finite(est)
    assert_same_weights(weights(est), weights(reference))
    np.testing.assert_array_equal(dense(est.predict(df)), dense(reference.predict(df)))
    np.testing.assert_array_equal(est.next_item_ranks(df), reference.next_item_ranks(df))


def test_nan_loss_with_validation_keeps_the_best_epoch(monkeypatch):
    df = longer_events()
    X = InteractionMatrix.from_events(df)
    val = (X, X)
    reference = neg(max_epochs=2).fit(X, validation_data=val)

    _poison_loss_in_epoch(monkeypatch, epoch=2)
    est = neg(max_epochs=4)
    with pytest.raises(TrainingDivergedError, match="epoch 3"):
        est.fit(X, validation_data=val)
    assert est.best_epoch_ == reference.best_epoch_
    assert_same_weights(weights(est), weights(reference))


@pytest.mark.parametrize("n_epochs", [1, 2])
def test_weights_overflowing_in_the_last_update_of_an_epoch_are_detected(n_epochs):
    # One session of two events: one training step per epoch, so the loss of epoch 0 is
    # computed before its only update, which overflows the weights (lr 1e30, no clipping).
    # With 2 epochs, epoch 1's loss is NaN and fit falls back to the snapshot taken after
    # epoch 0, whose weights are already non-finite.
    df = pd.DataFrame({"session_id": [0, 0], "item_id": [1, 2], "timestamp": [1, 2]})
    est = neg(learning_rate=1e30, optimization_algorithm="sgd", clipnorm=None, max_epochs=n_epochs)
    with pytest.raises(TrainingDivergedError, match="epoch 1"):
        est.fit(df)
    assert all_finite(est)
    assert np.isfinite(dense(est.predict(df))).all()


def _interrupt_in_epoch(monkeypatch, epoch: int, after_updates: int = 1, raise_=None) -> None:
    """Raise KeyboardInterrupt in epoch ``epoch`` after ``after_updates`` of its weight updates,
    so the weights are half-updated when the interrupt arrives (``raise_``: raise otherwise)."""
    counter = _EpochCounter(monkeypatch)
    calls = {"epoch": -1, "n": 0}

    def interrupting(real):
        def update(*args, **kwargs):
            if calls["epoch"] != counter.current:
                calls["epoch"], calls["n"] = counter.current, 0
            if counter.current == epoch and calls["n"] == after_updates:
                if raise_ is not None:
                    raise_()
                raise KeyboardInterrupt
            calls["n"] += 1
            return real(*args, **kwargs)

        return update

    # Autograd steps update through the first, hand-differentiated ones through the second,
    # compiled ones through the dense updater (once per step, before the rows).
    for module in (step.reference, step.direct):
        monkeypatch.setattr(module, "_update", interrupting(module._update))
    real_updater = RowSparseOptimizer.dense_updater
    monkeypatch.setattr(
        RowSparseOptimizer,
        "dense_updater",
        lambda self, params: interrupting(real_updater(self, params)),
    )


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("make", [neg, xent], ids=["negsampling", "crossentropy"])
def test_keyboard_interrupt_mid_epoch_keeps_last_completed_epoch(monkeypatch, k, make):
    df = longer_events()
    reference = make(max_epochs=k).fit(df)

    _interrupt_in_epoch(monkeypatch, epoch=k, after_updates=2)
    est = make(max_epochs=4)
    # Epochs count from 1 in the message, as len(history_) does.
    with pytest.raises(KeyboardInterrupt, match=rf"in epoch {k + 1}\b.*model of epoch {k}\b"):
        est.fit(df)
    assert len(est.history_) == k
    assert [h["epoch"] for h in est.history_] == list(range(k))
    assert est.history_[-1]["interrupted"] is True
    assert not any(h.get("interrupted") for h in est.history_[:-1])
    assert_same_weights(weights(est), weights(reference))
    np.testing.assert_array_equal(dense(est.predict(df)), dense(reference.predict(df)))


def _system_error_from_ctrl_c():
    # What a Ctrl-C that lands while compiled code calls back into Python turns into.
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        raise SystemError("<function> returned a result with an exception set") from exc


def test_ctrl_c_surfacing_as_a_system_error_counts_as_an_interrupt(monkeypatch):
    df = longer_events()
    reference = neg(max_epochs=1).fit(df)
    _interrupt_in_epoch(monkeypatch, epoch=1, after_updates=2, raise_=_system_error_from_ctrl_c)
    est = neg(max_epochs=3)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted in epoch 2\b.*model of epoch 1\b"):
        est.fit(df)
    assert len(est.history_) == 1
    assert_same_weights(weights(est), weights(reference))


def test_other_errors_during_fit_propagate_with_the_last_epoch_restored(monkeypatch):
    df = longer_events()
    reference = neg(max_epochs=1).fit(df)

    def fail():
        raise SystemError("a real bug")

    _interrupt_in_epoch(monkeypatch, epoch=1, after_updates=2, raise_=fail)
    est = neg(max_epochs=3)
    with pytest.raises(SystemError, match="a real bug"):
        est.fit(df)
    assert_same_weights(weights(est), weights(reference))


def test_caused_by_interrupt_follows_causes_and_contexts():
    from gru4rec.trainer import caused_by_interrupt

    assert caused_by_interrupt(KeyboardInterrupt())
    assert not caused_by_interrupt(ValueError("x"))
    try:
        _system_error_from_ctrl_c()
    except SystemError as exc:
        assert caused_by_interrupt(exc)
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("while handling")  # noqa: B904 - the implicit context is the point
    except RuntimeError as exc:
        assert caused_by_interrupt(exc)
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a  # a cycle ends the walk
    assert not caused_by_interrupt(a)


def test_ctrl_c_during_the_epochs_bookkeeping_waits_for_it_to_finish(monkeypatch):
    """A SIGINT that lands while the epoch's weights are being copied interrupts the fit only
    after the copy: the fit keeps that whole epoch, not a mix of two."""
    import signal

    df = longer_events()
    reference = neg(max_epochs=2).fit(df)
    real = trainer_module.snapshot
    calls = []

    def snapshot(model, into=None):
        calls.append(1)
        if len(calls) == 3:  # the copy after the second epoch (the first call is the initial)
            signal.raise_signal(signal.SIGINT)
        return real(model, into=into)

    monkeypatch.setattr(trainer_module, "snapshot", snapshot)
    est = neg(max_epochs=4)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted in epoch 3\b.*model of epoch 2\b"):
        est.fit(df)
    assert len(est.history_) == 2
    assert_same_weights(weights(est), weights(reference))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_keyboard_interrupt_in_first_epoch_leaves_an_unfitted_estimator_unfitted(monkeypatch):
    from sklearn.exceptions import NotFittedError

    df = longer_events()
    _interrupt_in_epoch(monkeypatch, epoch=0, after_updates=2)
    est = neg(max_epochs=3)
    params = est.get_params()
    with pytest.raises(KeyboardInterrupt, match=r"epoch 1\b.*no epoch completed.*unfitted"):
        est.fit(df)
    assert vars(est).keys() == params.keys()  # no fitted attribute, no half-trained model_
    assert est.get_params() == params
    with pytest.raises(NotFittedError):
        est.predict(df)


def test_keyboard_interrupt_in_first_epoch_of_a_refit_keeps_the_previous_model(monkeypatch):
    df = longer_events()
    est = neg(max_epochs=1).fit(df)
    before = weights(est)
    history, model = est.history_, est.model_
    _interrupt_in_epoch(monkeypatch, epoch=0, after_updates=2)
    with pytest.raises(KeyboardInterrupt, match="previous model") as info:
        est.set_params(max_epochs=3, seed=5).fit(df)
    assert info.value.epochs_completed == 0
    assert est.model_ is model and est.history_ is history and len(history) == 1
    assert_same_weights(weights(est), before)


def test_keyboard_interrupt_between_epochs_via_train_epoch(monkeypatch):
    """The brief's variant: train_epoch itself raises on its 3rd call."""
    df = longer_events()
    reference = neg(max_epochs=2).fit(df)
    real = trainer_module.train_epoch
    calls = []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_epoch", interrupting)
    est = neg(max_epochs=5)
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        est.fit(df)
    assert len(est.history_) == 2
    np.testing.assert_array_equal(dense(est.predict(df)), dense(reference.predict(df)))
    # The estimator is not left in a broken state: a plain refit works and matches a fresh fit.
    monkeypatch.setattr(trainer_module, "train_epoch", real)
    est.set_params(max_epochs=2).fit(df)
    assert_same_weights(weights(est), weights(reference))


def test_keyboard_interrupt_with_validation_keeps_best_epoch(monkeypatch):
    df = longer_events()
    X = InteractionMatrix.from_events(df)
    reference = neg(max_epochs=2).fit(X, validation_data=(X, X))
    _interrupt_in_epoch(monkeypatch, epoch=2, after_updates=1)
    est = neg(max_epochs=4)
    with pytest.raises(KeyboardInterrupt, match="the best on validation"):
        est.fit(X, validation_data=(X, X))
    assert est.best_epoch_ == reference.best_epoch_
    assert_same_weights(weights(est), weights(reference))


# -- the progress bar callback (user callbacks: test_callbacks.py) -----------------------------


def test_progress_bar_moves_within_an_epoch_and_is_silent_when_not_verbose(monkeypatch, capsys):
    df = longer_events(n_sessions=300)
    moves = []
    real = trainer_module.Progress.steps

    def steps(self, n):
        moves.append((n, self.bar.n))
        real(self, n)

    monkeypatch.setattr(trainer_module.Progress, "steps", steps)
    neg(batch_size=2, max_epochs=2, verbose=True).fit(df)
    err = capsys.readouterr().err
    n_steps = sum(n for n, _ in moves) // 2
    assert n_steps > REPORT_EVERY  # several moves per epoch
    assert [n for n, _ in moves[:2]] == [REPORT_EVERY, REPORT_EVERY]
    assert f"{2 * n_steps}/{2 * n_steps}" in err and "epoch=2/2" in err
    moves.clear()
    neg(batch_size=2, max_epochs=1).fit(df)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert moves == []  # not even called: a silent fit pays nothing per step


def test_finite_check_sees_one_nan_and_is_not_fooled_by_an_overflowing_sum():
    from gru4rec.model import GRU4RecNet
    from gru4rec.trainer import _all_finite

    model = GRU4RecNet(50, hidden_size=8, num_layers=1, embedding_size=8, constrained=False)
    probe = (torch.arange(4), torch.arange(4))
    assert _all_finite(model, *probe)
    with torch.no_grad():
        model.item_output[40:42, 0] = 3e38  # finite, but their sum is not
    assert _all_finite(model, *probe)
    with torch.no_grad():
        model.item_output[45, 1] = float("nan")
    assert not _all_finite(model, *probe)


# -- a real Ctrl-C in a real process -------------------------------------------------------------

_LOOP_SCRIPT = """
import sys, time
import gru4rec.trainer as trainer
from gru4rec import GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions

real = trainer.train_epoch
calls = []

def train_epoch(*args, **kwargs):  # epoch {wait} waits for the Ctrl-C the test sends
    calls.append(1)
    if len(calls) == {wait}:
        print("WAITING", file=sys.stderr, flush=True)
        time.sleep(120)
    return real(*args, **kwargs)

trainer.train_epoch = train_epoch
df = make_synthetic_sessions(300, 50, seed=0)
for lr in (0.05, 0.1):  # a script looping over configurations
    model = GRU4RecNegSampling(hidden_size=8, batch_size=16, max_epochs=3, learning_rate=lr)
    {fit}
    print("FITTED", lr, len(model.history_), flush=True)
"""


def _run_and_interrupt(tmp_path, wait: int, fit: str) -> tuple[int, str, str]:
    import sys
    from pathlib import Path

    script = tmp_path / "loop.py"
    script.write_text(_LOOP_SCRIPT.replace("{wait}", str(wait)).replace("{fit}", fit))
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return interrupt_at_marker([sys.executable, str(script)], env)


@pytest.mark.parametrize("wait", [1, 2], ids=["first-epoch", "second-epoch"])
def test_ctrl_c_stops_a_script_that_loops_over_fits(tmp_path, wait):
    """A real SIGINT inside fit stops the script, whether or not an epoch had completed: no
    later configuration runs and the exit status says it was interrupted."""
    import signal

    code, out, err = _run_and_interrupt(tmp_path, wait, "model.fit(df)")
    assert code in (-signal.SIGINT, 130), (code, out, err)
    assert "FITTED" not in out
    assert "KeyboardInterrupt" in err and f"interrupted in epoch {wait}" in err


@pytest.mark.parametrize("wait", [1, 2], ids=["first-epoch", "second-epoch"])
def test_ctrl_c_caught_in_a_notebook_keeps_the_completed_epochs(tmp_path, wait):
    fit = (
        "try:\n        model.fit(df)\n    except KeyboardInterrupt as stop:\n"
        "        print('STOPPED', stop.epochs_completed, hasattr(model, 'model_'), flush=True)\n"
        "        break"
    )
    code, out, err = _run_and_interrupt(tmp_path, wait, fit)
    assert code == 0, err
    # Epoch 1 interrupted: nothing kept, still unfitted; epoch 2: the first epoch kept.
    assert out.split() == ["STOPPED", str(wait - 1), str(wait > 1)], out


@pytest.mark.slow
@pytest.mark.skipif(not kernels.AVAILABLE, reason="the compiled kernels are off or numba absent")
def test_a_verbose_fit_says_once_that_it_compiles_the_kernels(tmp_path):
    """On an empty disk cache the first compiled fit of a process spends seconds compiling,
    which the progress bar says (and its ETA would not); the next fit, and a new process on the
    filled cache, say nothing of it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from gru4rec import GRU4RecNegSampling\n"
        "from gru4rec.datasets import make_synthetic_sessions\n"
        "df = make_synthetic_sessions(100, 30, seed=0)\n"
        "for i in range(int(sys.argv[1])):\n"
        "    print(f'FIT {i}', file=sys.stderr, flush=True)\n"
        "    GRU4RecNegSampling(hidden_size=8, batch_size=16, max_epochs=1, verbose=True,\n"
        "                       device='cpu').fit(df)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def stderr_of(fits: int) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(fits)], env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr.split("FIT ")[1:]

    first, second = stderr_of(2)
    assert "compiling the CPU kernels, once" in first
    assert "compiling" not in second
    (again,) = stderr_of(1)
    assert "compiling" not in again
