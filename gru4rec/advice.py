"""Warnings about settings that do nothing, train badly or need much memory on the data at hand.

Checked once per ``fit`` / ``partial_fit``, after the input is read and before any training.
"""

from __future__ import annotations

from typing import Any

from .notices import warn

__all__ = ["LARGE_STEP", "warn_about_settings"]

#: Scores per step (batch_size x n_items) above which the full softmax warns of its memory.
LARGE_STEP = 50_000_000

#: Criteria whose value is fixed once the cut-off covers the catalogue.
_CUTOFF_BLIND = ("recall", "precision", "next_item_recall")


def warn_about_settings(
    estimator: Any, n_items: int, n_sessions: int, criterion: Any | None, full_softmax: bool
) -> None:
    """Warn of ``estimator``'s settings that do nothing, train badly or need much memory on
    ``n_items`` items and ``n_sessions`` sessions (``criterion``: the one validation will use;
    None without validation data; ``full_softmax``: every step scores the whole catalogue)."""
    if criterion is None and estimator.stop_early:
        warn("stop_early=True has no effect without validation_data: every epoch runs")
    if criterion is not None and criterion.name in _CUTOFF_BLIND and (criterion.k or 0) >= n_items:
        warn(
            f"the stopping criterion {criterion.name}@{criterion.k} has the same value for "
            f"every model on a catalogue of {n_items} items (all are in the top "
            f"{criterion.k}), so the first epoch is kept; use stopping_criterion='mrr' or "
            "StoppingCriterion.create(name, k=...) with k below the catalogue size"
        )
    batch_size = estimator.batch_size
    if batch_size > n_sessions:
        warn(
            f"batch_size={batch_size} is more than the {n_sessions} training sessions: "
            "every step then trains all sessions at once and an epoch has as many steps "
            "as the longest session, which trains poorly; use a batch_size well below the "
            "number of sessions"
        )
    cells = batch_size * n_items
    if full_softmax and cells > LARGE_STEP:
        warn(
            f"{estimator.name} scores all {n_items} items at every step: several batch_size x "
            f"n_items buffers of {cells * 4 / 2**30:.1f} GiB each, and slow steps; on a "
            "catalogue this large, GRU4RecNegSampling(loss_fn='cross-entropy', logq=1.0) "
            "samples the negatives instead (or use a smaller batch_size)"
        )
