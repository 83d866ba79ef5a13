"""Optimisers of GRU4Rec: SGD and Adagrad, both with optional heavy-ball momentum.

Dense parameters (the GRU layers) are updated from their ``.grad``. Item tables
are updated row-sparsely: only the rows a step touched, with the gradients of
repeated rows summed first, so a step never costs O(catalogue).

Updates (``g`` the gradient, ``v`` the momentum buffer):

- ``sgd``: ``v = momentum * v + lr * g``; ``p -= v``
- ``adagrad``: ``a += g**2``; ``v = momentum * v + lr * g / sqrt(a + eps)``; ``p -= v``

With ``momentum = 0`` these are plain SGD and Adagrad. For item tables, the
momentum of a row decays only when the row is touched, as in the reference
implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = ["OPTIMIZERS", "RowSparseOptimizer", "clip_grad_norm", "make_optimizer"]

OPTIMIZERS = ("sgd", "adagrad")


class RowSparseOptimizer:
    """SGD / Adagrad with momentum over dense parameters and row-sparse item tables.

    Parameters
    ----------
    dense_params : iterable of torch.nn.Parameter
        Parameters with ``requires_grad=True``, updated from ``.grad``.
    tables : dict of str to torch.Tensor
        Item tables updated with :meth:`step_rows`.
    algorithm : {'sgd', 'adagrad'}
    lr : float
    momentum : float
    eps : float
        Added inside the square root of Adagrad's denominator.
    """

    def __init__(
        self,
        dense_params: Iterable[torch.nn.Parameter],
        tables: dict[str, torch.Tensor],
        algorithm: str = "adagrad",
        lr: float = 0.03,
        momentum: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        if algorithm not in OPTIMIZERS:
            raise ValueError(
                f"optimization_algorithm must be one of {OPTIMIZERS}; got {algorithm!r}"
            )
        self.algorithm = algorithm
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.dense_params = list(dense_params)
        self.tables = dict(tables)
        self._acc: dict[int, torch.Tensor] = {}
        self._vel: dict[int, torch.Tensor] = {}
        for p in [*self.dense_params, *self.tables.values()]:
            if algorithm == "adagrad":
                self._acc[id(p)] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            if self.momentum > 0:
                self._vel[id(p)] = torch.zeros_like(p, memory_format=torch.contiguous_format)

    def _delta(self, grad: torch.Tensor, acc: torch.Tensor | None) -> torch.Tensor:
        if acc is None:
            return grad * self.lr
        return grad * self.lr / (acc + self.eps).sqrt()

    @torch.no_grad()
    def step_dense(self) -> None:
        """Update every dense parameter from its ``.grad`` and clear the gradient."""
        for p in self.dense_params:
            if p.grad is not None:
                self._step_full(p, p.grad)
                p.grad = None

    @torch.no_grad()
    def step_table(self, name: str, grad: torch.Tensor) -> None:
        """Update every row of table ``name`` (full-softmax training touches them all)."""
        self._step_full(self.tables[name], grad)

    def _step_full(self, p: torch.Tensor, g: torch.Tensor) -> None:
        acc = self._acc.get(id(p))
        if acc is not None:
            acc.addcmul_(g, g)
        delta = self._delta(g, acc)
        vel = self._vel.get(id(p))
        if vel is not None:
            delta = vel.mul_(self.momentum).add_(delta)
        p.sub_(delta)

    @torch.no_grad()
    def step_rows(self, name: str, rows: torch.Tensor, grad: torch.Tensor) -> None:
        """Update rows ``rows`` of table ``name`` with ``grad`` (one gradient row per index)."""
        table = self.tables[name]
        uniq, inverse = torch.unique(rows, return_inverse=True)
        g = torch.zeros(len(uniq), grad.shape[1], dtype=grad.dtype, device=grad.device)
        g.index_add_(0, inverse, grad)
        acc = self._acc.get(id(table))
        acc_rows = None
        if acc is not None:
            acc_rows = acc.index_select(0, uniq).addcmul_(g, g)
            acc.index_copy_(0, uniq, acc_rows)
        delta = self._delta(g, acc_rows)
        vel = self._vel.get(id(table))
        if vel is not None:
            delta = vel.index_select(0, uniq).mul_(self.momentum).add_(delta)
            vel.index_copy_(0, uniq, delta)
        table.index_copy_(0, uniq, table.index_select(0, uniq).sub_(delta))

    def state_tensors(self) -> list[torch.Tensor]:
        """Every state tensor (for moving the optimiser along with the model)."""
        return [*self._acc.values(), *self._vel.values()]


def make_optimizer(
    name: str,
    dense_params: Iterable[torch.nn.Parameter],
    tables: dict[str, torch.Tensor],
    lr: float,
    momentum: float = 0.0,
) -> RowSparseOptimizer:
    """Build the optimiser called ``name`` ('sgd' or 'adagrad')."""
    return RowSparseOptimizer(dense_params, tables, algorithm=name, lr=lr, momentum=momentum)


@torch.no_grad()
def clip_grad_norm(grads: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale ``grads`` in place so that their joint l2 norm is at most ``max_norm``.

    Computed on the device without reading the norm back, so it costs no sync.
    """
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
    total = torch.linalg.vector_norm(norms)
    coef = (max_norm / (total + 1e-6)).clamp_(max=1.0)
    for g in grads:
        g.mul_(coef)
