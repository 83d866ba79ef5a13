"""The RecBole worker's data files and scoring, without RecBole (it runs in its own venv)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import recbole_worker  # noqa: E402


def test_prefix_file_has_one_row_per_position_capped_at_50(tmp_path):
    sessions = [np.array([7, 8, 9]), np.arange(100, 160)]
    n = recbole_worker.write_prefixes(tmp_path / "x.inter", sessions, "r")
    frame = pd.read_csv(tmp_path / "x.inter", sep="\t", dtype=str)
    assert n == len(frame) == 2 + 59
    assert list(frame.columns) == ["session_id:token", "item_id_list:token_seq", "item_id:token"]
    assert frame.iloc[0].tolist() == ["r0", "7", "8"]
    assert frame.iloc[1].tolist() == ["r0", "7 8", "9"]
    last = frame.iloc[-1]
    assert last["item_id:token"] == "159"
    assert last["item_id_list:token_seq"].split() == [str(i) for i in range(109, 159)]


class _LastItem(torch.nn.Module):
    """RecBole's GRU4Rec interface (item_embedding, forward(seq, lengths)); the output is the
    embedding of the prefix's last item, so every rank is known in advance."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.item_embedding = torch.nn.Embedding.from_pretrained(weight)
        self.seen_lengths: list[int] = []

    def forward(self, seq, lengths):
        self.seen_lengths.extend(lengths.tolist())
        return self.item_embedding(seq[torch.arange(len(seq)), lengths - 1])


def test_ranks_are_conservative_over_the_catalogue_without_padding():
    # Items 1..4 (0 is padding, scored highest so that it would count if not excluded); item
    # 2's and 3's embeddings are equal, so after item 2 they tie at the top.
    weight = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    model = _LastItem(weight)
    long = np.array([1] * 60 + [4])
    ranks, n_long = recbole_worker.next_item_ranks(model, [np.array([2, 3, 1]), long])
    # after 2 -> 3: scores (0, 1, 1, .5): 3 ties with 2, conservative rank 2
    # after 3 -> 1: 1 scores 0, below 2, 3 and 4: rank 4
    # after 1 -> 1 (x59): 1 scores 1, the highest: rank 1; after the 60th 1 -> 4: rank 2
    assert sorted(ranks.tolist()) == sorted([2, 4] + [1] * 59 + [2])
    assert n_long == 10  # prefixes of 51..60 items
    assert max(model.seen_lengths) == 60  # whole prefixes, not RecBole's last 50
