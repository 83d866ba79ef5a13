"""What a failed fit or update leaves behind: the estimator as it was (or the epochs that
completed), and an error that says which."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .trainer import TrainingDivergedError, interrupted

__all__ = ["all_or_nothing", "fit_interruption", "kept_after_interrupt"]


def fit_interruption(
    owner: Any, before: dict[str, Any], exc: KeyboardInterrupt
) -> KeyboardInterrupt | None:
    """A fit's Ctrl-C: None when an epoch completed (the fit keeps what it has); otherwise
    ``owner`` gets back its attributes of ``before`` the fit, and the error to raise says so."""
    if getattr(exc, "epochs_completed", 0) != 0:
        return None
    owner.__dict__.clear()
    owner.__dict__.update(before)
    was = "fitted, with its previous model" if hasattr(owner, "model_") else "unfitted"
    return interrupted(f"{exc}; the estimator is left as it was before fit ({was})", 0)


def kept_after_interrupt(
    stopped: KeyboardInterrupt, best_epoch: int | None, keep_last: bool
) -> KeyboardInterrupt:
    """The error a fit interrupted after ``stopped.epochs_completed`` epochs ends with,
    naming the epoch it kept."""
    done = stopped.epochs_completed  # type: ignore[attr-defined]
    kept = f"epoch {done}"
    if best_epoch is not None and not keep_last:
        kept = f"epoch {best_epoch + 1}, the best on validation"
    return interrupted(
        f"fit interrupted in epoch {done + 1}; the estimator keeps the model of {kept} "
        f"({done} completed epoch(s) in history_)",
        done,
    )


@contextlib.contextmanager
def all_or_nothing(owner: Any, names: Sequence[str]) -> Iterator[None]:
    """An update: when the block fails, ``owner``'s attributes ``names`` are put back as they
    were before it, and the error says so (none of the update's epochs is kept)."""
    before = {k: getattr(owner, k) for k in names if hasattr(owner, k)}
    try:
        yield
    except KeyboardInterrupt as exc:
        owner.__dict__.update(before)
        done = getattr(exc, "epochs_completed", 0)
        raise interrupted(
            f"partial_fit interrupted in epoch {done + 1}: the model is as it was before the call",
            0,
        ) from None
    except TrainingDivergedError as exc:
        owner.__dict__.update(before)
        # The trainer's message speaks of the weights it kept; the update keeps none.
        cause = str(exc).split(" The ")[0]
        raise TrainingDivergedError(
            f"partial_fit: {cause} The model is as it was before the call."
        ) from exc
    except BaseException:
        owner.__dict__.update(before)
        raise
