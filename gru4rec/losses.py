"""Ranking losses of GRU4Rec over a mini-batch score matrix.

Every sampled loss takes ``scores`` of shape ``(B, B + S)``: row ``i`` holds the
scores of mini-batch row ``i`` against the ``B`` targets of the batch followed by
``S`` shared negatives, so the positive of row ``i`` sits on the diagonal
``scores[i, i]`` and every other column is a negative. Each loss returns the
mean over rows (the sum over rows divided by ``B``), as the reference
implementation does. The optional ``log_weights`` (one per column) let a column
stand for several identical draws: the losses then equal those over the
duplicated columns, value and gradient.

All losses are written with log-sum-exp / log-sigmoid forms so that extreme
scores give finite values and finite gradients.

The training step sees each loss as an object (:class:`Loss`, one class per loss,
registered by name with :func:`register_loss`): its value for autograd, its closed-form
gradient and its compiled CPU form where they exist. :class:`LossConfig` names one and
carries its parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import kernels
from .cpu import matmul
from .device import host_reads_are_free

__all__ = [
    "BPR",
    "LOSSES",
    "LOSS_CLASSES",
    "SAMPLED_LOSSES",
    "TOP1",
    "BPRMax",
    "ScoredItems",
    "CrossEntropy",
    "FullCrossEntropy",
    "Loss",
    "LossConfig",
    "TOP1Max",
    "bpr",
    "bpr_from_factors",
    "bpr_max",
    "cross_entropy_full",
    "cross_entropy_sampled",
    "get_loss",
    "loss_class",
    "register_loss",
    "sampled_loss_names",
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


def _masked_log_softmax(
    scores: torch.Tensor, mask: torch.Tensor, log_weights: torch.Tensor | None
) -> torch.Tensor:
    """Row log-softmax over the negatives only (each weighted); -inf on the positives."""
    logits = scores if log_weights is None else scores + log_weights
    return torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=1)


def _weighted_mean_over_negatives(
    per_pair: torch.Tensor, diagonal: torch.Tensor, log_weights: torch.Tensor | None
) -> torch.Tensor:
    """Per row, the (weighted) mean of ``per_pair`` over the negatives.

    ``diagonal`` holds each row's own term, which is subtracted rather than
    masked out (cheaper; its gradient cancels as well).
    """
    n = per_pair.shape[1]
    if log_weights is None:
        return (per_pair.sum(dim=1) - diagonal) / max(n - 1, 1)
    weights = log_weights.exp()
    # The positives (in-batch targets) have weight 1.
    total = per_pair @ weights - diagonal
    return total / (weights.sum() - 1).clamp_min(1)


def cross_entropy_sampled(
    scores: torch.Tensor,
    logq_bias: torch.Tensor | None = None,
    log_weights: torch.Tensor | None = None,
    **_: object,
) -> torch.Tensor:
    """Softmax cross-entropy over the sampled columns (targets + shared negatives).

    Parameters
    ----------
    scores : torch.Tensor of shape (B, B + S)
        Positives on the diagonal.
    logq_bias : torch.Tensor of shape (B + S,), optional
        ``logq * log(q_j)`` per column; subtracted from the scores (sampling-bias
        correction). Pass ``None`` for no correction.
    log_weights : torch.Tensor of shape (B + S,), optional
        Log multiplicity of each column: a column standing for ``m`` identical
        draws counts ``m`` times, exactly as ``m`` duplicated columns would.
    """
    if logq_bias is not None:
        scores = scores - logq_bias.unsqueeze(0)
    if log_weights is not None:
        scores = scores + log_weights.unsqueeze(0)
    b = scores.shape[0]
    target = torch.arange(b, device=scores.device)
    return F.cross_entropy(scores, target)


def cross_entropy_full(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the whole catalogue (``scores`` is ``(B, n_items)``)."""
    return F.cross_entropy(scores, targets)


def _bpr_terms_(
    d: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn ``d = r_i - r_ij`` into ``t = sigmoid(d)`` in place; return ``(sum -log t, t)``.

    With ``weights`` (one per column), column ``j`` counts ``weights[j]`` times in the
    sum. Everything happens in the one (B, N) buffer, which stays in cache.
    """
    # -log(sigmoid(d)) is exact while sigmoid(d) is a normal float (d > -87); the check
    # reads one value back, free on a CPU. Elsewhere, or beyond that range, softplus(-d)
    # holds for any score.
    if host_reads_are_free(d.device) and bool(d.min() >= -80.0):
        log_t = d.sigmoid_().log_()
        total = -(log_t.sum() if weights is None else log_t.sum(dim=0) @ weights)
        return total, log_t.exp_()
    terms = F.softplus(-d)
    total = terms.sum() if weights is None else terms.sum(dim=0) @ weights
    return total, d.sigmoid_()


def _bpr_grad_(
    t: torch.Tensor,
    scale: torch.Tensor,
    positives: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The gradient w.r.t. the scores, computed in place over ``t`` (consumed)."""
    w = scale if weights is None else (weights * scale).unsqueeze(0)
    g = t.mul_(-w).add_(w)  # d loss / d r_ij = w_j (1 - t_ij)
    # Each positive also appears, with minus sign, in every term of its row; its own
    # term cancels: the same w (1 - sigmoid(0)) is in g and in the row's sum.
    row_sums = g.sum(dim=1, keepdim=True)
    if positives is None:
        torch.diagonal(g).sub_(row_sums.squeeze(1))
    else:
        g.scatter_add_(1, positives.unsqueeze(1), row_sums.neg_())
    return g


def _bpr_norm(b: int, n: int) -> int:
    return b * max(n - 1, 1)


def _bpr_scores_(
    scores: torch.Tensor, positives: torch.Tensor | None, col_weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | int]:
    """BPR terms of a (B, N) score matrix, which becomes ``t = sigmoid(r_i - r_ij)`` in place.

    Each row's positive is its diagonal column, or column ``positives[row]``; with
    ``col_weights``, column ``j`` counts ``col_weights[j]`` times. Returns ``(sum -log t,
    t, norm)``, ``norm`` the number of terms of the duplicated score matrix this one
    stands for (a device scalar with weights: no host read).
    """
    b, n = scores.shape
    if positives is None:
        pos = torch.diagonal(scores).clone().unsqueeze(1)
    else:
        pos = scores.gather(1, positives.unsqueeze(1))
    total, t = _bpr_terms_(torch.sub(pos, scores, out=scores), col_weights)
    norm = _bpr_norm(b, n) if col_weights is None else b * (col_weights.sum() - 1).clamp_min(1)
    return total, t, norm


class _BPR(torch.autograd.Function):
    """Unweighted BPR with a hand-written backward (the default loss: worth fusing).

    Works on ``t = sigmoid(r_i - r_ij)``: the loss terms are ``-log t`` and the
    gradient is ``1 - t``, instead of autograd's chain of subtraction, softplus,
    sum, sigmoid and broadcast buffers.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, n = scores.shape
        total, t = _bpr_terms_(torch.diagonal(scores).unsqueeze(1) - scores)
        ctx.save_for_backward(t)
        # The diagonal terms are -log sigmoid(0) = log 2 each.
        return (total - b * math.log(2.0)) / _bpr_norm(b, n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (t,) = ctx.saved_tensors
        # A copy keeps t for another backward pass (retain_graph, gradcheck).
        return _bpr_grad_(t.clone(), grad / _bpr_norm(*t.shape))


class _BPRFactors(torch.autograd.Function):
    """BPR of the scores ``out @ weights.T + bias``, computed and differentiated in a
    single (B, N) buffer; see :func:`bpr_from_factors`."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        out: torch.Tensor,
        weights: torch.Tensor,
        bias: torch.Tensor,
        positives: torch.Tensor | None,
        col_weights: torch.Tensor | None,
    ) -> torch.Tensor:
        b = out.shape[0]
        d = torch.mm(out, weights.t()).add_(bias.t())
        total, t, norm = _bpr_scores_(d, positives, col_weights)
        ctx.save_for_backward(t, out, weights, positives, col_weights)
        ctx.norm = norm
        ctx.consumed = False
        # Each row's own term is -log sigmoid(0) = log 2.
        return (total - b * math.log(2.0)) / norm

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        _consume(ctx)
        t, out, weights, positives, col_weights = ctx.saved_tensors
        g = _bpr_grad_(t, grad / ctx.norm, positives, col_weights)
        grad_out = g @ weights if ctx.needs_input_grad[0] else None
        grad_weights = g.t() @ out if ctx.needs_input_grad[1] else None
        grad_bias = g.sum(dim=0).unsqueeze(1) if ctx.needs_input_grad[2] else None
        return grad_out, grad_weights, grad_bias, None, None


def _consume(ctx) -> None:
    # The saved buffer becomes the gradient in place: a second backward would be wrong.
    if ctx.consumed:
        raise RuntimeError("the BPR loss supports one backward pass (no retain_graph)")
    ctx.consumed = True


def bpr(scores: torch.Tensor, log_weights: torch.Tensor | None = None, **_: object) -> torch.Tensor:
    """BPR (2016): mean over negatives of ``-log sigmoid(r_i - r_ij)``."""
    if log_weights is None:
        return _BPR.apply(scores)
    per_pair = F.softplus(scores - _positives(scores))
    # The diagonal term is softplus(0) = log 2 exactly.
    return _weighted_mean_over_negatives(per_pair, math.log(2.0), log_weights).mean()


def bpr_from_factors(
    out: torch.Tensor,
    weights: torch.Tensor,
    bias: torch.Tensor,
    positives: torch.Tensor | None = None,
    col_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`bpr` of the scores ``out @ weights.T + bias`` (``bias`` of shape ``(n, 1)``).

    Without ``positives``, row ``i``'s positive is column ``i`` (as in :func:`bpr`).
    With them, row ``i``'s positive is column ``positives[i]``, and ``col_weights``
    gives how many columns of the full score matrix each column stands for: a batch
    whose targets repeat can score each distinct target once. The value and the
    gradients are those of the duplicated matrix, with every column's gradient
    summed over its copies. No intermediate (B, N) tensors: one buffer is scored,
    transformed and turned into the gradient in place. Supports a single backward
    pass.
    """
    return _BPRFactors.apply(out, weights, bias, positives, col_weights)


def top1(
    scores: torch.Tensor, log_weights: torch.Tensor | None = None, **_: object
) -> torch.Tensor:
    """TOP1 (2016): mean over negatives of ``sigmoid(r_ij - r_i) + sigmoid(r_ij^2)``."""
    pos = _positives(scores)
    per_pair = torch.sigmoid(scores - pos) + torch.sigmoid(scores.square())
    diagonal = 0.5 + torch.sigmoid(pos.squeeze(1).square())
    return _weighted_mean_over_negatives(per_pair, diagonal, log_weights).mean()


def bpr_max(
    scores: torch.Tensor,
    bpreg: float = 1.0,
    log_weights: torch.Tensor | None = None,
    **_: object,
) -> torch.Tensor:
    """BPR-max (2018) with score regularisation.

    ``loss_i = -log(sum_j s_ij sigmoid(r_i - r_ij)) + bpreg * sum_j s_ij r_ij^2``
    where ``s_ij`` is the softmax of row ``i`` over its negatives only. The first
    term is evaluated as ``logsumexp(log s_ij + logsigmoid(r_i - r_ij))``, which
    equals the published formula and stays finite for any score.
    """
    mask = _negative_mask(scores)
    log_s = _masked_log_softmax(scores, mask, log_weights)
    log_terms = log_s + F.logsigmoid(_positives(scores) - scores)
    log_terms = log_terms.masked_fill(~mask, float("-inf"))
    ranking = -torch.logsumexp(log_terms, dim=1)
    # masked_fill, not the zero weight, keeps a huge positive from giving 0 * inf
    reg = (log_s.exp() * scores.square()).masked_fill(~mask, 0.0).sum(dim=1)
    return (ranking + bpreg * reg).mean()


def top1_max(
    scores: torch.Tensor, log_weights: torch.Tensor | None = None, **_: object
) -> torch.Tensor:
    """TOP1-max (2018): ``sum_j s_ij (sigmoid(r_ij - r_i) + sigmoid(r_ij^2))``."""
    mask = _negative_mask(scores)
    weights = _masked_log_softmax(scores, mask, log_weights).exp()
    per_pair = torch.sigmoid(scores - _positives(scores)) + torch.sigmoid(scores.square())
    return (weights * per_pair).sum(dim=1).mean()


# -- closed-form value and score gradient (no autograd graph) ------------------------------------
#
# Each returns ``(loss, grad)`` for a score matrix that needs no autograd graph: ``loss`` is the
# loss of the function named above (a mean over rows) times ``scale`` and ``grad`` its gradient
# with respect to the scores, also times ``scale``. The score buffer may be consumed.


def cross_entropy_value_grad(
    logits: torch.Tensor, scale: float = 1.0, col_sums: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cross_entropy_sampled` of ``logits`` (column biases already added), positives on
    the diagonal, and its gradient with respect to ``logits`` (which may be overwritten).
    ``col_sums``, when given (shape ``(columns,)``), receives the gradient's column sums."""
    b = logits.shape[0]
    lse = torch.logsumexp(logits, dim=1, keepdim=True)
    diag = torch.diagonal(logits)
    loss = (lse.sum() - diag.sum()) * (scale / b)
    grad = logits.sub_(lse).exp_()  # the softmax
    torch.diagonal(grad).sub_(1.0)
    grad.mul_(scale / b)
    if col_sums is not None:
        torch.sum(grad, dim=0, out=col_sums)
    return loss, grad


def bpr_max_value_grad(
    scores: torch.Tensor,
    bpreg: float,
    elu_param: float = 0.0,
    log_weights: torch.Tensor | None = None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`bpr_max` of ``elu(scores)`` (no ELU when ``elu_param`` is 0) and its gradient.

    With ``s`` the softmax over the negatives, ``q = sigmoid(r_i - r_ij)`` and
    ``Z_i = sum_j s_ij q_ij``, ``R_i = sum_j s_ij r_ij^2``, the gradient of
    ``-log Z_i + bpreg R_i`` is ``s_ij (1 - q_ij^2 / Z_i) + bpreg s_ij (r_ij^2 + 2 r_ij - R_i)``
    for a negative and ``-sum_j s_ij q_ij (1 - q_ij) / Z_i`` for the positive. Returns None
    when some ``Z_i`` is too small for that form (every sigmoid underflowing): the caller then
    uses the log-sum-exp form of :func:`bpr_max`.
    """
    b = scores.shape[0]
    e = F.elu_(scores, alpha=elu_param) if elu_param > 0 else scores
    pos = torch.diagonal(e).unsqueeze(1).clone()
    logits = e.clone() if log_weights is None else e + log_weights
    torch.diagonal(logits).fill_(float("-inf"))
    s = torch.softmax(logits, dim=1)
    work = torch.mul(e, e, out=logits).mul_(s)
    reg = work.sum(dim=1, keepdim=True)  # R_i
    q = torch.sub(pos, e, out=work).sigmoid_()
    sq = s * q
    z = sq.sum(dim=1, keepdim=True)
    if not bool(z.min() > 1e-30):
        return None
    sq.mul_(q)
    pos_grad = (sq.sum(dim=1, keepdim=True) - z).div_(z)
    grad = torch.sub(s, sq.div_(z), out=sq)
    if bpreg != 0.0:
        reg_grad = torch.add(e, 2.0, out=work).mul_(e).sub_(reg).mul_(s)
        grad.add_(reg_grad, alpha=bpreg)
    torch.diagonal(grad).copy_(pos_grad.squeeze(1))
    loss = (bpreg * reg.sum() - z.log_().sum()) * (scale / b)
    grad.mul_(scale / b)
    if elu_param > 0:
        # elu'(x) = 1 where x > 0, elu(x) + alpha elsewhere.
        grad.mul_(torch.where(e > 0, 1.0, e + elu_param))
    return loss, grad


def bpr_value_grad(
    scores: torch.Tensor,
    positives: torch.Tensor | None = None,
    col_weights: torch.Tensor | None = None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`bpr_from_factors`'s loss and score gradient for a ready score matrix (consumed)."""
    b = scores.shape[0]
    total, t, norm = _bpr_scores_(scores, positives, col_weights)
    loss = (total - b * math.log(2.0)) * scale / norm
    return loss, _bpr_grad_(t, scale / norm, positives, col_weights)


# -- losses as objects: the reference value, the closed form, the compiled form -----------------


class ScoredItems(NamedTuple):
    """The items a training step scores (the columns of its score matrix): its rows'
    ``targets``, then the ``negatives``, with how they were drawn.

    ``log_mult`` is the log multiplicity of each distinct negative (None: raw draws),
    ``sampler`` the :class:`~gru4rec.samplers.NegativeSampler` that drew them (the ``logq``
    correction asks it for log-probabilities), ``scale`` the step's share of a full batch.
    For a loss with :attr:`Loss.distinct_targets`, the columns may score each distinct
    target once: ``positives`` is then each row's positive column and ``col_weights`` how
    many columns of the duplicated score matrix each column stands for.
    """

    targets: torch.Tensor
    negatives: torch.Tensor | None = None
    log_mult: torch.Tensor | None = None
    sampler: Any = None
    scale: float = 1.0
    positives: torch.Tensor | None = None
    col_weights: torch.Tensor | None = None

    def log_weights(self) -> torch.Tensor | None:
        """Log multiplicity of every column (targets: 0), or None without multiplicities."""
        if self.log_mult is None:
            return None
        return torch.cat([self.log_mult.new_zeros(self.targets.shape[0]), self.log_mult])


class Loss:
    """A ranking loss of a training step, registered by name (:func:`register_loss`).

    A subclass gives :meth:`value`, the loss of a score matrix that autograd differentiates
    (the reference every training path is checked against). Where a closed-form gradient
    exists it defines the method :attr:`closed_form`; where a compiled CPU form exists it sets
    :attr:`compiled` and overrides :meth:`compiled_value_grad` (and may define
    :attr:`host_value_grad`). The training paths ask the loss for these and never for its
    name.

    Scores are ``out @ weights.T + bias``: row ``i`` against the step's targets (its
    positive on the diagonal) and then its negatives, as in :func:`cross_entropy_sampled`.
    """

    #: The name ``loss_fn`` takes (and :class:`LossConfig` carries).
    name: ClassVar[str] = ""
    #: Scored against sampled columns (False: against the whole catalogue).
    sampled: ClassVar[bool] = True
    #: Each distinct target of a step may be scored once (:class:`ScoredItems` ``positives``).
    distinct_targets: ClassVar[bool] = False
    #: :meth:`compiled_value_grad` exists (the compiled one-layer CPU step may run).
    compiled: ClassVar[bool] = False
    #: :meth:`compiled_value_grad` may return NaN on finite scores (see there).
    may_fail: ClassVar[bool] = False

    def __init__(self, bpreg: float = 1.0, elu_param: float = 0.0, logq: float = 0.0) -> None:
        self.bpreg = float(bpreg)
        self.elu_param = float(elu_param)
        self.logq = float(logq)

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        """The loss (a mean over rows) of ``scores``, differentiable by autograd."""
        raise NotImplementedError

    def reference(
        self, out: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, columns: ScoredItems
    ) -> torch.Tensor:
        """:meth:`value` of the scores ``out @ weights.T + bias`` (``bias``: ``(n, 1)``)."""
        return self.value(torch.addmm(bias.t(), out, weights.t()), columns)

    def column_bias(self, col_bias: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        """The row of biases added to every score column (``(1, n)``, may be updated in
        place): the output bias, plus what the loss itself adds to a column's logit."""
        return col_bias

    #: None, or a method ``closed_form(scores, columns)``: ``(loss * scale, gradient w.r.t.
    #: the scores * scale)`` without autograd (``scores`` may be consumed), or None where
    #: the closed form does not hold for these scores.
    closed_form: ClassVar[Callable[..., tuple[torch.Tensor, torch.Tensor] | None] | None] = None

    def value_grad(
        self,
        out: torch.Tensor,
        weights: torch.Tensor,
        cols: torch.Tensor,
        bias_table: torch.Tensor,
        columns: ScoredItems,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step's loss (times ``scale``) and its gradients w.r.t. the scores ``out @
        weights.T + bias[cols]`` and w.r.t. the column biases (``(columns, 1)``): the closed
        form where it holds, else autograd over the score matrix alone."""
        col_bias = self.column_bias(bias_table.index_select(0, cols).t(), columns)
        scores = matmul(out, weights.t(), col_bias)
        result = None
        if self.closed_form is not None:
            result = self.closed_form(scores, columns)
            if result is None:  # the closed form may have consumed the scores
                scores = matmul(out, weights.t(), col_bias)
        if result is None:
            with torch.enable_grad():
                scores.requires_grad_(True)
                value = self.value(scores, columns) * columns.scale
                value.backward()
            result = value.detach(), scores.grad
        value, grad = result
        return value, grad, grad.sum(dim=0).unsqueeze(1)

    #: None, or :meth:`value_grad` with compiled passes for CPU tensors (the
    #: hand-differentiated path takes it where the compiled kernels run).
    host_value_grad: ClassVar[Callable[..., tuple] | None] = None

    def logit_terms(self) -> tuple[bool, float]:
        """What the compiled step adds to the scores' column biases: whether the log
        multiplicities of the negatives, and the ``logq`` coefficient."""
        return False, 0.0

    def compiled_value_grad(
        self,
        scores_t: np.ndarray,
        log_mult: np.ndarray,
        scale: float,
        col_grad: np.ndarray,
    ) -> float:
        """The loss of the transposed scores ``scores_t`` (``(columns, rows)``; the step's
        share of a full batch ``scale``) by a compiled kernel: returns it, turns
        ``scores_t`` into its gradient and writes the gradient's sums over the rows to
        ``col_grad``. NaN where the closed form does not hold: the caller then takes
        :meth:`value_grad` (only for losses that say so in :attr:`may_fail`)."""
        raise NotImplementedError

    def _elu(self, scores: torch.Tensor) -> torch.Tensor:
        return F.elu(scores, alpha=self.elu_param) if self.elu_param > 0 else scores


#: Every loss class by name (:func:`register_loss`).
LOSS_CLASSES: dict[str, type[Loss]] = {}


def register_loss(cls: type[Loss]) -> type[Loss]:
    """Class decorator: make ``cls`` the loss called ``cls.name``."""
    LOSS_CLASSES[cls.name] = cls
    return cls


def loss_class(name: str) -> type[Loss]:
    """The loss class called ``name``; ``ValueError`` naming ``loss_fn`` otherwise."""
    try:
        return LOSS_CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss_fn must be one of {', '.join(repr(k) for k in LOSS_CLASSES)}; got {name!r}"
        ) from None


@register_loss
class TOP1(Loss):
    """TOP1 (:func:`top1`) of the ELU of the scores."""

    name = "top1"

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        return top1(self._elu(scores), log_weights=columns.log_weights())


@register_loss
class TOP1Max(Loss):
    """TOP1-max (:func:`top1_max`) of the ELU of the scores."""

    name = "top1-max"

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        return top1_max(self._elu(scores), log_weights=columns.log_weights())


@register_loss
class BPR(Loss):
    """BPR (:func:`bpr`), scored and differentiated in one buffer; each distinct target of
    a step is scored once. No ELU."""

    name = "bpr"
    distinct_targets = True
    compiled = True

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        return bpr(scores, log_weights=columns.log_weights())

    def reference(self, out, weights, bias, columns):
        return bpr_from_factors(out, weights, bias, columns.positives, columns.col_weights)

    def closed_form(self, scores, columns):
        return bpr_value_grad(scores, columns.positives, columns.col_weights, columns.scale)

    def compiled_value_grad(self, scores_t, log_mult, scale, col_grad):
        return kernels.bpr_step_loss(scores_t, log_mult, scale, col_grad)


@register_loss
class BPRMax(Loss):
    """BPR-max (:func:`bpr_max`) of the ELU of the scores, with score regularisation
    ``bpreg``; its closed form fails where every sigmoid of a row underflows."""

    name = "bpr-max"
    compiled = True
    may_fail = True

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        return bpr_max(self._elu(scores), bpreg=self.bpreg, log_weights=columns.log_weights())

    def closed_form(self, scores, columns):
        log_weights = columns.log_weights()
        return bpr_max_value_grad(scores, self.bpreg, self.elu_param, log_weights, columns.scale)

    def compiled_value_grad(self, scores_t, log_mult, scale, col_grad):
        b = scores_t.shape[1]
        return kernels.bpr_max_step_loss(
            scores_t, log_mult, self.bpreg, self.elu_param, scale / b, col_grad
        )


@register_loss
class CrossEntropy(Loss):
    """Sampled softmax cross-entropy (:func:`cross_entropy_sampled`), with the ``logq``
    correction and the negatives' multiplicities in the logits."""

    name = "cross-entropy"
    compiled = True

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        bias = None
        if self.logq > 0 and columns.sampler is not None:
            bias = columns.sampler.log_probabilities(columns.targets, columns.negatives)
            bias = bias * self.logq
        return cross_entropy_sampled(scores, logq_bias=bias, log_weights=columns.log_weights())

    def column_bias(self, col_bias: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        # Every column bias (output bias, -logq log q, log multiplicity) in the one addmm.
        if self.logq > 0:
            log_q = columns.sampler.log_probabilities(columns.targets, columns.negatives)
            col_bias = torch.add(col_bias, log_q, alpha=-self.logq)
        if columns.log_mult is not None:
            col_bias[:, columns.targets.shape[0] :] += columns.log_mult  # a fresh gather or sum
        return col_bias

    def closed_form(self, scores, columns):
        return cross_entropy_value_grad(scores, columns.scale)

    def host_value_grad(self, out, weights, cols, bias_table, columns):
        targets, negatives, log_mult, sampler = columns[:4]
        # Output bias, -logq log q and log multiplicity of every column in one pass.
        col_bias = torch.empty(1, cols.shape[0])
        kernels.xent_column_bias(
            bias_table.numpy(),
            sampler.log_counts().numpy(),
            targets.numpy(),
            negatives.numpy(),
            None if log_mult is None else log_mult.numpy(),
            sampler.alpha,
            self.logq,
            col_bias.numpy()[0],
        )
        logits = matmul(out, weights.t(), col_bias)
        # One vectorised softmax pass, then the loss and the gradient in one compiled pass.
        probs = torch.softmax(logits, dim=1)
        grad_bias = torch.empty(cols.shape[0], 1)
        scale = columns.scale / logits.shape[0]
        value = kernels.softmax_xent_finish(
            logits.numpy(), probs.numpy(), scale, grad_bias.view(-1).numpy()
        )
        return torch.tensor(value, dtype=logits.dtype), probs, grad_bias

    def logit_terms(self):
        return True, self.logq

    def compiled_value_grad(self, scores_t, log_mult, scale, col_grad):
        return kernels.xent_step_softmax_loss(scores_t, scale / scores_t.shape[1], col_grad)


@register_loss
class FullCrossEntropy(Loss):
    """Softmax cross-entropy over the whole catalogue (:func:`cross_entropy_full`): no
    sampling, every item a column."""

    name = "full-cross-entropy"
    sampled = False

    def value(self, scores: torch.Tensor, columns: ScoredItems) -> torch.Tensor:
        return cross_entropy_full(scores, columns.targets)


@dataclass(frozen=True)
class LossConfig:
    """How scores become a loss: the registered loss ``name`` (a sampled loss, or
    ``'full-cross-entropy'``) and its parameters."""

    name: str
    bpreg: float = 1.0
    elu_param: float = 0.0
    logq: float = 0.0

    @property
    def full(self) -> bool:
        return not loss_class(self.name).sampled

    def build(self) -> Loss:
        """The loss object (:data:`LOSS_CLASSES`) with these parameters."""
        return loss_class(self.name)(bpreg=self.bpreg, elu_param=self.elu_param, logq=self.logq)


SAMPLED_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "top1": top1,
    "top1-max": top1_max,
    "bpr": bpr,
    "bpr-max": bpr_max,
    "cross-entropy": cross_entropy_sampled,
}


def sampled_loss_names() -> tuple[str, ...]:
    """The names ``loss_fn`` takes now: every sampled loss registered so far (a user's
    :func:`register_loss` from their own module included), in registration order."""
    return tuple(name for name, cls in LOSS_CLASSES.items() if cls.sampled)


#: The names of the package's own sampled losses (``loss_fn``), in registration order;
#: :func:`sampled_loss_names` also lists losses registered later.
LOSSES = sampled_loss_names()


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The sampled loss called ``name``; ``ValueError`` naming ``loss_fn`` otherwise."""
    try:
        return SAMPLED_LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss_fn must be one of {', '.join(repr(k) for k in SAMPLED_LOSSES)}; got {name!r}"
        ) from None
