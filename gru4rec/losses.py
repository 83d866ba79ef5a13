"""Ranking losses of GRU4Rec over a mini-batch score matrix.

Every sampled loss takes ``scores`` of shape ``(B, B + S)``: row ``i`` holds the
scores of mini-batch row ``i`` against the ``B`` targets of the batch followed by
``S`` shared negatives, so the positive of row ``i`` sits on the diagonal
``scores[i, i]`` and every other column is a negative. Each loss returns the
mean over rows (the sum over rows divided by ``B``), as the reference
implementation does.

All losses are written with log-sum-exp / log-sigmoid forms so that extreme
scores give finite values and finite gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "LOSSES",
    "SAMPLED_LOSSES",
    "bpr",
    "bpr_max",
    "cross_entropy_full",
    "cross_entropy_sampled",
    "get_loss",
    "top1",
    "top1_max",
]


def _positives(scores: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(scores).unsqueeze(1)


def _negative_mask(scores: torch.Tensor) -> torch.Tensor:
    """Boolean mask of shape ``scores.shape``: False on the diagonal (the positives)."""
    b, n = scores.shape
    mask = torch.ones(b, n, dtype=torch.bool, device=scores.device)
    mask[:, :b].fill_diagonal_(False)
    return mask


def _masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row log-softmax over the negatives only; -inf on the positives."""
    masked = scores.masked_fill(~mask, float("-inf"))
    return torch.log_softmax(masked, dim=1)


def cross_entropy_sampled(
    scores: torch.Tensor, logq_bias: torch.Tensor | None = None, **_: object
) -> torch.Tensor:
    """Softmax cross-entropy over the sampled columns (targets + shared negatives).

    Parameters
    ----------
    scores : torch.Tensor of shape (B, B + S)
        Positives on the diagonal.
    logq_bias : torch.Tensor of shape (B + S,), optional
        ``logq * log(q_j)`` per column; subtracted from the scores (sampling-bias
        correction). Pass ``None`` for no correction.
    """
    if logq_bias is not None:
        scores = scores - logq_bias.unsqueeze(0)
    b = scores.shape[0]
    target = torch.arange(b, device=scores.device)
    return F.cross_entropy(scores, target)


def cross_entropy_full(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the whole catalogue (``scores`` is ``(B, n_items)``)."""
    return F.cross_entropy(scores, targets)


def bpr(scores: torch.Tensor, **_: object) -> torch.Tensor:
    """BPR (2016): mean over negatives of ``-log sigmoid(r_i - r_ij)``."""
    b, n = scores.shape
    # The diagonal term is softplus(0) = log 2 exactly, with zero gradient: subtracting
    # it beats masking the (B, B + S) matrix.
    total = F.softplus(scores - _positives(scores)).sum(dim=1) - math.log(2.0)
    return (total / max(n - 1, 1)).mean()


def top1(scores: torch.Tensor, **_: object) -> torch.Tensor:
    """TOP1 (2016): mean over negatives of ``sigmoid(r_ij - r_i) + sigmoid(r_ij^2)``."""
    b, n = scores.shape
    pos = _positives(scores)
    total = (torch.sigmoid(scores - pos) + torch.sigmoid(scores.square())).sum(dim=1)
    # Remove the diagonal's own terms, sigmoid(0) and sigmoid(r_i^2) (gradients cancel too).
    total = total - 0.5 - torch.sigmoid(pos.squeeze(1).square())
    return (total / max(n - 1, 1)).mean()


def bpr_max(scores: torch.Tensor, bpreg: float = 1.0, **_: object) -> torch.Tensor:
    """BPR-max (2018) with score regularisation.

    ``loss_i = -log(sum_j s_ij sigmoid(r_i - r_ij)) + bpreg * sum_j s_ij r_ij^2``
    where ``s_ij`` is the softmax of row ``i`` over its negatives only. The first
    term is evaluated as ``logsumexp(log s_ij + logsigmoid(r_i - r_ij))``, which
    equals the published formula and stays finite for any score.
    """
    mask = _negative_mask(scores)
    log_s = _masked_log_softmax(scores, mask)
    log_terms = log_s + F.logsigmoid(_positives(scores) - scores)
    log_terms = log_terms.masked_fill(~mask, float("-inf"))
    ranking = -torch.logsumexp(log_terms, dim=1)
    # masked_fill, not the zero weight, keeps a huge positive from giving 0 * inf
    reg = (log_s.exp() * scores.square()).masked_fill(~mask, 0.0).sum(dim=1)
    return (ranking + bpreg * reg).mean()


def top1_max(scores: torch.Tensor, **_: object) -> torch.Tensor:
    """TOP1-max (2018): ``sum_j s_ij (sigmoid(r_ij - r_i) + sigmoid(r_ij^2))``."""
    mask = _negative_mask(scores)
    weights = _masked_log_softmax(scores, mask).exp()
    per_pair = torch.sigmoid(scores - _positives(scores)) + torch.sigmoid(scores.square())
    return (weights * per_pair).sum(dim=1).mean()


SAMPLED_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "top1": top1,
    "top1-max": top1_max,
    "bpr": bpr,
    "bpr-max": bpr_max,
    "cross-entropy": cross_entropy_sampled,
}
LOSSES = tuple(SAMPLED_LOSSES)


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The sampled loss called ``name``; ``ValueError`` naming ``loss_fn`` otherwise."""
    try:
        return SAMPLED_LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss_fn must be one of {', '.join(repr(k) for k in SAMPLED_LOSSES)}; got {name!r}"
        ) from None
