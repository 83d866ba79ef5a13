"""The best epoch: the criterion's verdict on every validated epoch and a copy of the best
epoch's weights, so that training can end on them."""

from __future__ import annotations

import torch

from .stopping import StoppingCriterion

__all__ = ["Selection", "snapshot"]


def snapshot(
    model: torch.nn.Module, into: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """A copy of the model's weights, written into ``into`` when given (no second copy)."""
    if into is None:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k, v in model.state_dict().items():
        into[k].copy_(v)
    return into


class Selection:
    """The owner of "which epoch is best": the criterion's verdict on every validated epoch
    (value, patience, ``min_improvement``) and a copy of the best epoch's weights.

    Parameters
    ----------
    criterion : StoppingCriterion
        A fresh criterion (see :func:`configured`); this object updates it.
    """

    def __init__(self, criterion: StoppingCriterion) -> None:
        self.criterion = criterion
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def best_value(self) -> float | None:
        return self.criterion.best_value

    @property
    def should_stop(self) -> bool:
        return self.criterion.should_stop

    def update(self, epoch: int, value: float, model: torch.nn.Module) -> bool:
        """Record ``epoch``'s value; keep the model's weights when it is the new best."""
        improved = self.criterion.update(value)
        if improved:
            self.best_epoch = epoch
            self.best_state = snapshot(model, into=self.best_state)
        return improved
