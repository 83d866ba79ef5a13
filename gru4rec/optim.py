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

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from . import kernels

__all__ = ["OPTIMIZERS", "RowSparseOptimizer", "clip_grad_norm"]

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
    fused : bool, default=False
        Update in one compiled pass per call (:mod:`gru4rec.kernels`, CPU tensors only).
    compact : bool, default=True
        :meth:`step_rows` compacts the distinct rows of a step (a host read, free on the
        CPU), or, when False, updates every occurrence (no host sync: for accelerators).

    :func:`gru4rec.step.build_optimizer` picks ``fused`` and ``compact`` for the device.
    """

    def __init__(
        self,
        dense_params: Iterable[torch.nn.Parameter],
        tables: dict[str, torch.Tensor],
        algorithm: str = "adagrad",
        lr: float = 0.03,
        momentum: float = 0.0,
        eps: float = 1e-6,
        fused: bool = False,
        compact: bool = True,
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
        self._owners: dict[str, torch.Tensor] = {}
        self._owners_np: dict[str, np.ndarray] = {}
        self._scratch: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.fused = bool(fused)
        self.compact = bool(compact)
        for p in [*self.dense_params, *self.tables.values()]:
            if algorithm == "adagrad":
                # eps lives in the accumulator from the start: sqrt(acc) is then
                # sqrt(sum g^2 + eps), eps inside the root, with one pass fewer per step.
                self._acc[id(p)] = torch.full_like(
                    p, self.eps, memory_format=torch.contiguous_format
                )
            if self.momentum > 0:
                self._vel[id(p)] = torch.zeros_like(p, memory_format=torch.contiguous_format)

    def state_by_param(self) -> dict[int, dict[str, torch.Tensor]]:
        """The optimiser's buffers by ``id`` of their parameter: ``'acc'`` (Adagrad's
        accumulator, ``eps`` included) and ``'vel'`` (momentum), where kept."""
        out: dict[int, dict[str, torch.Tensor]] = {}
        for kind, buffers in (("acc", self._acc), ("vel", self._vel)):
            for key, buf in buffers.items():
                out.setdefault(key, {})[kind] = buf
        return out

    @torch.no_grad()
    def step_dense(self) -> None:
        """Update every dense parameter from its ``.grad`` and clear the gradient."""
        params = [p for p in self.dense_params if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        if self.fused:
            self.dense_updater(params)([g.contiguous().view(-1).numpy() for g in grads])
            for p in params:
                p.grad = None
            return
        # Multi-tensor ops: one call per operation for all the (small) GRU tensors.
        if self.algorithm == "adagrad":
            accs = [self._acc[id(p)] for p in params]
            torch._foreach_addcmul_(accs, grads, grads)
            # sqrt then divide: torch's CPU rsqrt is not vectorised (about 3x slower).
            denom = torch._foreach_sqrt(accs)
            if self.momentum > 0:
                # v = m v + lr g / sqrt(acc) in two passes (no g / sqrt(acc) buffer).
                vels = [self._vel[id(p)] for p in params]
                torch._foreach_mul_(vels, self.momentum)
                torch._foreach_addcdiv_(vels, grads, denom, value=self.lr)
                torch._foreach_sub_(params, vels)
            else:
                torch._foreach_addcdiv_(params, grads, denom, value=-self.lr)
        elif self.momentum > 0:
            vels = [self._vel[id(p)] for p in params]
            torch._foreach_mul_(vels, self.momentum)
            torch._foreach_add_(vels, grads, alpha=self.lr)
            torch._foreach_sub_(params, vels)
        else:
            torch._foreach_add_(params, grads, alpha=-self.lr)
        for p in params:
            p.grad = None

    @torch.no_grad()
    def step_table(self, name: str, grad: torch.Tensor) -> None:
        """Update every row of table ``name`` (full-softmax training touches them all)."""
        self._step_full(self.tables[name], grad)

    def _step_full(self, p: torch.Tensor, g: torch.Tensor) -> None:
        acc = self._acc.get(id(p))
        d = g
        if acc is not None:
            d = torch.div(g, acc.addcmul_(g, g).sqrt())
        vel = self._vel.get(id(p))
        if vel is not None:
            d = vel.mul_(self.momentum).add_(d, alpha=self.lr)
            p.sub_(d)
        else:
            p.sub_(d, alpha=self.lr)

    @torch.no_grad()
    def step_rows(
        self,
        name: str,
        rows: torch.Tensor,
        grad: torch.Tensor | Sequence[torch.Tensor],
        leading: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Update rows ``rows`` of table ``name`` with ``grad`` (one gradient row per index).

        ``grad`` may also be a list of gradient blocks that, stacked, align with
        ``rows`` (saves concatenating them). Gradients of repeated rows are
        summed first, then every distinct row is updated once.

        ``leading`` maps other tables (e.g. the output bias) to gradients of the
        first ``len(gradient)`` entries of ``rows`` only; those tables are updated
        at those rows, sharing the work of finding the distinct rows.
        """
        table = self.tables[name]
        blocks = [grad] if isinstance(grad, torch.Tensor) else list(grad)
        # compact=False takes the accelerator branch (as tests do on the CPU).
        fusable = self.compact and len(blocks) <= 2 and len(leading or {}) <= 1
        if fusable and self.fused:
            self._step_rows_fused(name, table, rows, blocks, leading)
            return
        n = rows.shape[0]
        owner = self._owner_map(name, table)
        pos = torch.arange(n, device=rows.device)
        owner.index_put_((rows,), pos)
        rep = owner.index_select(0, rows)  # one representative position per distinct row
        if self.compact:
            # Compact the distinct rows (no sort: torch's CPU sort costs more than the update).
            is_rep = rep == pos
            uniq = rows[is_rep]
            inverse = (torch.cumsum(is_rep, 0) - 1).index_select(0, rep)
            g = _sum_blocks(blocks, inverse, uniq.shape[0])
            self._update_distinct(table, uniq, g)
            for other, other_grad in (leading or {}).items():
                k = other_grad.shape[0]
                touched = torch.zeros(uniq.shape[0], dtype=torch.bool, device=rows.device)
                touched[inverse[:k]] = True
                sel = touched.nonzero().squeeze(1)
                g_other = other_grad.new_zeros(uniq.shape[0], other_grad.shape[1])
                g_other.index_add_(0, inverse[:k], other_grad)
                self._update_distinct(
                    self.tables[other], uniq.index_select(0, sel), g_other.index_select(0, sel)
                )
        else:
            # On an accelerator the size of the distinct set would cost a host sync:
            # every occurrence computes the same update from the same summed
            # gradient and old state instead, so the repeated writes agree.
            g = _sum_blocks(blocks, rep, n).index_select(0, rep)
            self._update_repeated(table, rows, g)
            for other, other_grad in (leading or {}).items():
                k = other_grad.shape[0]
                g_other = torch.zeros(n, other_grad.shape[1], device=rows.device)
                g_other.index_add_(0, rep[:k], other_grad)
                self._update_repeated(
                    self.tables[other], rows[:k], g_other.index_select(0, rep[:k])
                )

    def dense_updater(
        self, params: Sequence[torch.Tensor]
    ) -> Callable[[Sequence[np.ndarray]], None]:
        """:meth:`step_dense` for CPU parameters, from gradients given as NumPy arrays in
        ``params``' order (the compiled step): the views of the parameters and of their
        Adagrad / momentum state are taken once, here."""
        views = [
            (
                p.detach().view(-1).numpy(),
                self._flat(self._acc.get(id(p))),
                self._flat(self._vel.get(id(p))),
            )
            for p in params
        ]
        return kernels.dense_updater(views, self.lr, self.momentum)

    def rows_updater(
        self, name: str, max_rows: int, leading: str | None = None
    ) -> Callable[..., int]:
        """:meth:`step_rows` from NumPy rows and gradient blocks (the compiled step), bound
        once: ``update(rows, g0, g1=None, g_leading=None)`` for at most ``max_rows`` rows
        (:func:`gru4rec.kernels.rows_updater`)."""
        table = self.tables[name]
        owner, scratch = self._row_scratch(name, table, max_rows)
        bias = None
        if leading is not None:
            b = self.tables[leading]
            bias = (b.detach().numpy(), _np(self._acc.get(id(b))), _np(self._vel.get(id(b))))
        return kernels.rows_updater(
            table.detach().numpy(),
            _np(self._acc.get(id(table))),
            _np(self._vel.get(id(table))),
            owner,
            scratch,
            self.lr,
            self.momentum,
            bias,
        )

    def _row_scratch(
        self, name: str, table: torch.Tensor, n: int
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        owner = self._owners_np.get(name)
        if owner is None or owner.shape[0] != table.shape[0]:
            owner = self._owners_np[name] = np.full(table.shape[0], -1, dtype=np.int64)
        scratch = self._scratch.get(name)
        if scratch is None or scratch[0].shape[0] < n:
            size = max(n, 2 * (0 if scratch is None else scratch[0].shape[0]))
            dtype = table.detach().numpy().dtype
            scratch = (
                np.empty(size, np.int64),
                np.empty((size, table.shape[1]), dtype),
                np.empty(size, dtype),
            )
            self._scratch[name] = scratch
        return owner, scratch

    @staticmethod
    def _flat(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.view(-1).numpy()

    def _step_rows_fused(
        self,
        name: str,
        table: torch.Tensor,
        rows: torch.Tensor,
        blocks: list[torch.Tensor],
        leading: dict[str, torch.Tensor] | None,
    ) -> None:
        other = grad = None
        if leading:
            ((other, grad),) = leading.items()
            grad = grad.detach().contiguous().numpy()
        g = [b.detach().contiguous().numpy() for b in blocks]
        update = self.rows_updater(name, rows.shape[0], other)
        update(rows.contiguous().numpy(), g[0], g[1] if len(g) > 1 else None, grad)

    def _update_distinct(self, table: torch.Tensor, rows: torch.Tensor, g: torch.Tensor) -> None:
        acc = self._acc.get(id(table))
        d = g
        if acc is not None:
            acc.index_add_(0, rows, g * g)
            a = acc.index_select(0, rows).sqrt_()
            d = torch.div(g, a, out=a)
        vel = self._vel.get(id(table))
        if vel is not None:
            d = vel.index_select(0, rows).mul_(self.momentum).add_(d, alpha=self.lr)
            vel.index_copy_(0, rows, d)
            table.index_add_(0, rows, d, alpha=-1.0)
        else:
            table.index_add_(0, rows, d, alpha=-self.lr)

    def _update_repeated(self, table: torch.Tensor, rows: torch.Tensor, g: torch.Tensor) -> None:
        acc = self._acc.get(id(table))
        d = g
        if acc is not None:
            a = acc.index_select(0, rows).addcmul_(g, g)
            acc.index_copy_(0, rows, a)
            d = torch.div(g, a.sqrt_(), out=a)
        vel = self._vel.get(id(table))
        if vel is not None:
            d = vel.index_select(0, rows).mul_(self.momentum).add_(d, alpha=self.lr)
            vel.index_copy_(0, rows, d)
        else:
            d = d.mul_(self.lr)
        table.index_copy_(0, rows, table.index_select(0, rows).sub_(d))

    def _owner_map(self, name: str, table: torch.Tensor) -> torch.Tensor:
        owner = self._owners.get(name)
        if owner is None or owner.device != table.device:
            owner = torch.zeros(table.shape[0], dtype=torch.int64, device=table.device)
            self._owners[name] = owner
        return owner


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.numpy()


def _sum_blocks(blocks: list[torch.Tensor], target: torch.Tensor, n_out: int) -> torch.Tensor:
    """Sum the stacked gradient blocks into ``n_out`` rows (stacked row ``i`` to ``target[i]``)."""
    out = blocks[0].new_zeros(n_out, blocks[0].shape[1])
    start = 0
    for block in blocks:
        stop = start + block.shape[0]
        out.index_add_(0, target[start:stop], block)
        start = stop
    return out


@torch.no_grad()
def clip_grad_norm(grads: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale ``grads`` in place so that their joint l2 norm is at most ``max_norm``.

    Computed on the device without reading the norm back, so it costs no sync.
    """
    if not grads:
        return
    grads = list(grads)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    coef = (max_norm / (total + 1e-6)).clamp_(max=1.0)
    torch._foreach_mul_(grads, coef)


def clip_grad_norm_arrays(
    grads: Sequence[np.ndarray],
    max_norm: float,
    norm_of: Sequence[np.ndarray] | None = None,
) -> None:
    """:func:`clip_grad_norm` for contiguous host arrays (the compiled step's gradients):
    the squares summed by BLAS dot products, the scaling in place, skipped where the norm
    is within the bound (a factor of 1 changes nothing). ``norm_of``, when given, are the
    arrays whose joint norm decides (the same gradients grouped otherwise)."""
    flats = [g.reshape(-1) for g in grads]
    measured = flats if norm_of is None else [np.ascontiguousarray(g).reshape(-1) for g in norm_of]
    total = math.sqrt(sum(float(np.dot(f, f)) for f in measured))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for f in flats:
            f *= np.float32(coef) if f.dtype == np.float32 else coef
