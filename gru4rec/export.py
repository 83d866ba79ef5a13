"""The one-step network for serving stacks of one's own: ``(item, state) -> (top-k items,
scores, next state)``, with the top-k inside the graph.

:func:`one_step` gives it as a plain ``torch.nn.Module`` (for ``torch.export`` or
TorchScript); :func:`export_onnx` writes it as an ONNX file (for onnxruntime and the like).
Items are the model's indices (``model.item_vocabulary_.ids[i]`` is the raw id of ``i``); the
state of a new session is zeros of shape ``(layers, batch, units)``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

from .model import GRU4RecNet

__all__ = ["OneStep", "export_onnx", "one_step"]


class OneStep(nn.Module):
    """One GRU step of a batch of sessions and the top-``k`` items of the new state.

    Parameters
    ----------
    net : GRU4RecNet
    k : int
        Items returned (at most the catalogue's size).
    """

    def __init__(self, net: GRU4RecNet, k: int) -> None:
        super().__init__()
        self.k = min(int(k), net.n_items)
        table = net.item_output if net.constrained else net.item_embedding
        self.register_buffer("inputs", table.detach().clone())
        self.register_buffer("output", net.item_output.detach().clone())
        self.register_buffer("bias", net.item_bias.detach().reshape(-1).clone())
        self.cells = nn.ModuleList(nn.GRUCell(c.input_size, c.hidden_size) for c in net.cells)
        self.cells.load_state_dict(net.cells.state_dict())
        self.eval()

    def forward(
        self, item: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``item``: int64 ``(batch,)``; ``state``: float32 ``(layers, batch, units)``.
        Returns the top-k items ``(batch, k)`` (int64), their scores and the next state."""
        x = self.inputs[item]
        new = []
        for layer, cell in enumerate(self.cells):
            x = cell(x, state[layer])
            new.append(x)
        scores = x @ self.output.t() + self.bias
        top, items = torch.topk(scores, self.k, dim=1)
        return items, top, torch.stack(new)


def one_step(model: Any, k: int = 20) -> OneStep:
    """The one-step module of a fitted estimator (on the CPU, in evaluation mode)."""
    if not hasattr(model, "model_"):
        raise ValueError("model must be a fitted GRU4Rec estimator; call fit() first")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    net = model.model_
    return OneStep(net, k).to("cpu") if net.item_output.device.type != "cpu" else OneStep(net, k)


def export_onnx(model: Any, path: str | os.PathLike[str], k: int = 20) -> None:
    """Write the one-step network of a fitted estimator as ONNX to ``path``.

    Inputs ``item`` (int64, ``(batch,)``) and ``state`` (float32, ``(layers, batch, units)``);
    outputs ``items``, ``scores`` (``(batch, k)``) and ``next_state``; the batch is dynamic.
    """
    module = one_step(model, k)
    net = model.model_
    item = torch.zeros(2, dtype=torch.int64)
    state = torch.zeros(net.num_layers, 2, net.hidden_size)
    with warnings.catch_warnings():
        # The TorchScript exporter: the torch.export-based one needs onnxscript as well.
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(module, item, state, path)


def _export(module: OneStep, item: torch.Tensor, state: torch.Tensor, path: Any) -> None:
    torch.onnx.export(
        module,
        (item, state),
        str(path),
        input_names=["item", "state"],
        output_names=["items", "scores", "next_state"],
        dynamic_axes={
            "item": {0: "batch"},
            "state": {1: "batch"},
            "items": {0: "batch"},
            "scores": {0: "batch"},
            "next_state": {1: "batch"},
        },
        dynamo=False,
    )
