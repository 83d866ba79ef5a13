"""The GRU4Rec network.

Item tables (the input embedding and the output matrix) are plain tensors that
autograd never sees whole: a training step gathers the rows it needs into a
leaf tensor (:meth:`GRU4RecNet.gather_rows`), and the optimiser writes the
updated rows back. A step's arithmetic therefore does not depend on the size of
the catalogue (only its memory traffic does, through cache misses). The output
bias is a table of its own (``item_bias``), so an item read only as an input
(shared embedding) never touches its bias or the bias's optimiser state, as in
the reference implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .cpu import matmul

__all__ = [
    "GRU4RecNet",
    "dropout",
    "dropout_bits",
    "dropout_mask",
    "gru_cell_backward",
    "gru_cell_forward",
    "gru_weight_grads",
]


def dropout_mask(
    x: torch.Tensor, p: float, generator: torch.Generator | None
) -> torch.Tensor | None:
    """The scaled keep mask of inverted dropout for a tensor like ``x`` (None when ``p <= 0``),
    drawn from ``generator`` (never from the global RNG).

    Each element keeps with probability ``1 - k / 65536``, ``k = round(p * 65536)`` (``p`` to
    within 1e-5), and the kept ones are scaled by the inverse of that probability, so the
    mask's expectation is exactly 1. One 64-bit draw gives four elements' 16-bit uniforms:
    about 5x cheaper than ``bernoulli_``, which draws per element.
    """
    drawn = dropout_bits(x.numel(), p, generator, x.device)
    if drawn is None:
        return None
    bits, threshold, keep = drawn
    r = bits.view(x.shape).to(x.dtype)  # uniform on -32768 .. 32767
    # r >= threshold keeps: (r - threshold + 0.5) is >= 0.5 there and <= -0.5 elsewhere.
    return r.sub_(threshold - 0.5).clamp_(0.0, 0.5).mul_(2.0 * keep)


def dropout_bits(
    n: int,
    p: float,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int, float] | None:
    """The random draws of :func:`dropout_mask` for ``n`` elements: 16-bit uniform integers,
    the threshold at and above which an element is kept, and the value of a kept element
    (None when ``p <= 0``; nothing is drawn then). ``out``, an int64 buffer of at least
    ``(n + 3) // 4`` words, receives the draws instead of a new tensor."""
    if p <= 0.0:
        return None
    k = min(max(round(p * 65536), 1), 65535)
    if out is None:
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    else:
        words = out[: (n + 3) // 4]
    words.random_(-(2**63), 2**63 - 1, generator=generator)
    # float32(1 / (1 - k / 65536)), as a float32 multiplication computes it.
    keep = float(np.float32(2.0 * 65536 / (65536 - k)) * np.float32(0.5))
    return words.view(torch.int16)[:n], k - 32768, keep


#: A function like :func:`dropout_mask` (the training paths pass compiled ones on the CPU).
MaskFn = Callable[[torch.Tensor, float, "torch.Generator | None"], "torch.Tensor | None"]


def dropout(
    x: torch.Tensor, p: float, generator: torch.Generator | None, mask_fn: MaskFn = dropout_mask
) -> torch.Tensor:
    """Inverted dropout drawing from ``generator`` (never from the global RNG), with the
    mask of ``mask_fn``."""
    mask = mask_fn(x, p, generator)
    return x if mask is None else x * mask


GRUCache = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@torch.no_grad()
def gru_cell_forward(
    cell: nn.GRUCell, x: torch.Tensor, h: torch.Tensor
) -> tuple[torch.Tensor, GRUCache]:
    """``cell(x, h)`` without autograd, and what :func:`gru_cell_backward` needs.

    PyTorch's gate order (reset, update, new): ``r, z = sigmoid(x W_rz + b + h U_rz + c)``,
    ``n = tanh(x W_n + b_n + r (h U_n + c_n))``, ``h' = n + z (h - n)``.
    """
    k = cell.hidden_size
    gi = matmul(x, cell.weight_ih.t(), cell.bias_ih)
    gh = matmul(h, cell.weight_hh.t(), cell.bias_hh)
    rz = gi[:, : 2 * k].add_(gh[:, : 2 * k]).sigmoid_()
    gh_n = gh[:, 2 * k :]
    n = gi[:, 2 * k :].addcmul_(rz[:, :k], gh_n).tanh_()
    out = torch.sub(h, n).mul_(rz[:, k:]).add_(n)
    return out, (x, h, rz, n, gh_n)


@torch.no_grad()
def gru_cell_backward(
    cell: nn.GRUCell,
    cache: GRUCache,
    grad: torch.Tensor,
    need_input_grad: bool = True,
    mask: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Set the ``.grad`` of ``cell``'s parameters from the gradient of its output (times the
    dropout ``mask`` applied to that output, when given); return the gradient of its input
    (the state it started from gets none: it is a constant)."""
    x, h, rz, n, gh_n = cache
    k = cell.hidden_size
    b = grad.shape[0]
    d_gi = torch.empty(b, 3 * k, dtype=grad.dtype, device=grad.device)
    d_gh = torch.empty_like(d_gi)
    if mask is not None:
        grad = grad * mask
    z = rz[:, k:]
    # d n_pre = grad (1 - z) (1 - n^2)
    d_n = torch.mul(n, n, out=d_gi[:, 2 * k :]).neg_().add_(1.0)
    d_n.mul_(grad).sub_(d_n * z)
    torch.mul(d_n, gh_n, out=d_gi[:, :k])  # d r
    torch.sub(h, n, out=d_gi[:, k : 2 * k]).mul_(grad)  # d z
    d_rz = d_gi[:, : 2 * k]
    d_rz.mul_(rz).sub_(d_rz * rz)  # through the sigmoids: d s (1 - s)
    d_gh[:, : 2 * k] = d_rz
    torch.mul(d_n, rz[:, :k], out=d_gh[:, 2 * k :])
    cell.bias_ih.grad = d_gi.sum(dim=0)
    cell.bias_hh.grad = d_gh.sum(dim=0)
    return gru_weight_grads(cell, d_gi, d_gh, x, h, need_input_grad)


def gru_weight_grads(
    cell: nn.GRUCell,
    d_gi: torch.Tensor,
    d_gh: torch.Tensor,
    x: torch.Tensor,
    h: torch.Tensor,
    need_input_grad: bool = True,
) -> torch.Tensor | None:
    """Set the weight gradients of ``cell`` from those of its pre-activations ``d_gi``,
    ``d_gh`` and its inputs ``x``, ``h``; return the gradient of ``x`` when asked."""
    cell.weight_ih.grad = matmul(d_gi.t(), x)
    cell.weight_hh.grad = matmul(d_gh.t(), h)
    return matmul(d_gi, cell.weight_ih) if need_input_grad else None


def _glorot_(t: torch.Tensor, fan_in: int, fan_out: int, generator: torch.Generator) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-bound, bound, generator=generator)


class GRU4RecNet(nn.Module):
    """GRU layers between an item input table and an item output table.

    Parameters
    ----------
    n_items : int
        Catalogue size.
    hidden_size : int
        Units of every GRU layer.
    num_layers : int
        Number of stacked GRU layers.
    embedding_size : int
        Width of the separate input embedding; ignored when ``constrained``.
    constrained : bool
        Share the input embedding with the output table (an item's input
        vector is its output vector).
    """

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 100,
        num_layers: int = 1,
        embedding_size: int = 250,
        constrained: bool = False,
    ) -> None:
        super().__init__()
        self.n_items = int(n_items)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.constrained = bool(constrained)
        self.embedding_size = self.hidden_size if constrained else int(embedding_size)
        # Plain tensors (no autograd): rows are gathered and updated sparsely.
        self.item_output = nn.Parameter(
            torch.zeros(self.n_items, self.hidden_size), requires_grad=False
        )
        self.item_bias = nn.Parameter(torch.zeros(self.n_items, 1), requires_grad=False)
        if not self.constrained:
            self.item_embedding = nn.Parameter(
                torch.zeros(self.n_items, self.embedding_size), requires_grad=False
            )
        sizes = [self.embedding_size] + [self.hidden_size] * self.num_layers
        # GRUCell draws a default init from the global RNG; keep that state untouched
        # (reset_parameters() sets the real init from the caller's generator).
        with torch.random.fork_rng(devices=[]):
            self.cells = nn.ModuleList(
                nn.GRUCell(sizes[i], self.hidden_size) for i in range(self.num_layers)
            )

    def config(self) -> dict[str, int | bool]:
        """Constructor arguments that rebuild this architecture (plain data)."""
        return {
            "n_items": self.n_items,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "embedding_size": self.embedding_size,
            "constrained": self.constrained,
        }

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Glorot-uniform init per gate block, zero biases (as the reference implementation)."""
        h = self.hidden_size
        _glorot_(self.item_output, self.n_items, h, generator)
        with torch.no_grad():
            self.item_bias.zero_()
        if not self.constrained:
            _glorot_(self.item_embedding, self.n_items, self.embedding_size, generator)
        for cell in self.cells:
            for gate in range(3):
                rows = slice(gate * h, (gate + 1) * h)
                _glorot_(cell.weight_ih[rows], cell.input_size, h, generator)
                _glorot_(cell.weight_hh[rows], h, h, generator)
            with torch.no_grad():
                cell.bias_ih.zero_()
                cell.bias_hh.zero_()

    def dense_parameters(self) -> list[nn.Parameter]:
        """The parameters updated densely (the GRU layers)."""
        return [p for p in self.parameters() if p.requires_grad]

    def item_tables(self) -> dict[str, torch.Tensor]:
        """The row-sparse item tables by name."""
        tables = {"item_output": self.item_output, "item_bias": self.item_bias}
        if not self.constrained:
            tables["item_embedding"] = self.item_embedding
        return tables

    @staticmethod
    def gather_rows(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """A leaf copy of ``table[rows]`` that collects the gradient of those rows."""
        return table.index_select(0, rows).requires_grad_(True)

    def init_hidden(self, batch_size: int, device: torch.device | str) -> list[torch.Tensor]:
        return [
            torch.zeros(batch_size, self.hidden_size, device=device) for _ in range(self.num_layers)
        ]

    def step(
        self,
        inputs: torch.Tensor,
        hidden: list[torch.Tensor],
        dropout_embed: float = 0.0,
        dropout_hidden: float = 0.0,
        generator: torch.Generator | None = None,
        mask_fn: MaskFn = dropout_mask,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One GRU step for a batch of input vectors.

        The dropped-out output of each layer is both the next layer's input and
        the state carried to the next step, as in the reference implementation.
        Pass zero dropouts at evaluation. ``mask_fn`` makes the dropout masks
        (:func:`dropout_mask`, or a compiled equivalent).
        """
        x = dropout(inputs, dropout_embed, generator, mask_fn)
        new_hidden = []
        for cell, h in zip(self.cells, hidden, strict=True):
            x = dropout(cell(x, h), dropout_hidden, generator, mask_fn)
            new_hidden.append(x)
        return x, new_hidden

    def input_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Input vectors of ``items`` (no gradient; for inference)."""
        if self.constrained:
            return self.item_output.index_select(0, items)
        return self.item_embedding.index_select(0, items)

    @staticmethod
    def score(out: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Scores ``out @ weights.T + bias`` (``bias`` of shape ``(n, 1)``), one product."""
        return torch.addmm(bias.t(), out, weights.t())

    def score_items(self, out: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of ``out`` against the given items (no gradient)."""
        return self.score(
            out, self.item_output.index_select(0, items), self.item_bias.index_select(0, items)
        )

    def score_chunks(
        self, out: torch.Tensor, chunk_size: int = 65536
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Scores of ``out`` against the whole catalogue, ``chunk_size`` items at a time."""
        for start in range(0, self.n_items, chunk_size):
            stop = start + chunk_size
            yield start, self.score(out, self.item_output[start:stop], self.item_bias[start:stop])
