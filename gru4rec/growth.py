"""Continued training of a fitted model: a catalogue that grows, and the state training needs.

``partial_fit`` trains a fitted network further on new events. Items it has not seen get
new rows at the end of every item table (input and output embeddings, output bias) and of
the optimiser's state (Adagrad accumulators, momentum), initialised as ``fit`` initialises
rows; the rows of known items, and their indices, never change. :class:`TrainingState` is
what continued training needs beyond the weights: the optimiser's state, the sampler's
counts and the number of updates made (the seed of the next update's random draws). It
converts to plain tensors and numbers for a model file.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .matrix import SessionArrays, Vocabulary, id_kind
from .model import GRU4RecNet
from .optim import RowSparseOptimizer

__all__ = [
    "MissingTrainingStateError",
    "TrainingState",
    "UPDATED",
    "architecture_changes",
    "capture",
    "check_continuable",
    "extend_vocabulary",
    "grow_model",
    "merged_counts",
    "restore_optimizer",
    "update_counts",
    "update_seeds",
]

#: Version of the plain form of :class:`TrainingState` in model files.
STATE_VERSION = 1

#: The fitted attributes of an estimator that an update changes (put back when it fails).
UPDATED = (
    "model_",
    "n_items_",
    "item_vocabulary_",
    "stopping_criterion_",
    "best_value_",
    "best_epoch_",
)


class MissingTrainingStateError(ValueError):
    """The model holds no training state to continue from (e.g. a file saved without it)."""


@dataclass
class TrainingState:
    """What continued training needs beyond the weights.

    Attributes
    ----------
    algorithm : str
        The optimiser the state belongs to ('adagrad' or 'sgd').
    momentum : float
    optimizer : dict of str to dict of str to torch.Tensor
        Per parameter name of the network (``state_dict`` names): ``'acc'``, the Adagrad
        accumulator, and ``'vel'``, the momentum buffer, where the optimiser keeps them.
    sampler_counts : np.ndarray of float64
        The counts the negative sampler draws from (``P ~ count ** sample_alpha``) and the
        ``logq`` correction reads.
    updates : int
        Updates (``partial_fit`` calls that trained) since the fit: update ``k`` draws its
        random numbers from ``(seed_, k)``.
    """

    algorithm: str
    momentum: float
    optimizer: dict[str, dict[str, torch.Tensor]]
    sampler_counts: np.ndarray
    updates: int = 0

    def to_plain(self) -> dict[str, Any]:
        """The state as tensors and plain Python data (a model file's metadata)."""
        return {
            "version": STATE_VERSION,
            "algorithm": self.algorithm,
            "momentum": float(self.momentum),
            "optimizer": {
                name: {kind: t.detach().cpu() for kind, t in bufs.items()}
                for name, bufs in self.optimizer.items()
            },
            "sampler_counts": torch.from_numpy(np.asarray(self.sampler_counts, np.float64)),
            "updates": int(self.updates),
        }

    @classmethod
    def from_plain(cls, plain: dict[str, Any] | None) -> TrainingState | None:
        if plain is None:
            return None
        if plain.get("version") != STATE_VERSION:
            raise ValueError(
                f"the file's training state has version {plain.get('version')!r}; this version "
                f"of gru4rec reads version {STATE_VERSION}"
            )
        return cls(
            algorithm=str(plain["algorithm"]),
            momentum=float(plain["momentum"]),
            optimizer={k: dict(v) for k, v in plain["optimizer"].items()},
            sampler_counts=plain["sampler_counts"].numpy().astype(np.float64),
            updates=int(plain["updates"]),
        )


def capture(
    optimizer: RowSparseOptimizer, model: GRU4RecNet, sampler_counts: np.ndarray, updates: int
) -> TrainingState:
    """The training state after a fit or an update (the optimiser's buffers are taken, not
    copied: the optimiser is done with them)."""
    names = {id(p): name for name, p in model.named_parameters()}
    state = {names[key]: bufs for key, bufs in optimizer.state_by_param().items() if key in names}
    return TrainingState(
        optimizer.algorithm,
        optimizer.momentum,
        state,
        np.asarray(sampler_counts, dtype=np.float64).copy(),
        int(updates),
    )


def restore_optimizer(
    optimizer: RowSparseOptimizer, model: GRU4RecNet, state: TrainingState
) -> None:
    """Load ``state`` into a fresh ``optimizer`` over ``model``, whose item tables may have
    grown since: the saved rows are copied, new rows keep the fresh state (Adagrad's ``eps``,
    zero momentum). A buffer the state lacks (another algorithm, momentum turned on) stays
    fresh too."""
    for name, p in model.named_parameters():
        saved = state.optimizer.get(name, {})
        for kind, buf in optimizer.state_by_param().get(id(p), {}).items():
            old = saved.get(kind)
            if old is None:
                continue
            with torch.no_grad():
                buf[: old.shape[0]].copy_(old.to(buf.device, buf.dtype))


def architecture_changes(fitted: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The parameters whose values would build another network than the fitted one
    (``GRU4RecNet.config()`` dicts; the catalogue size may differ)."""
    names = {
        "hidden_size": "hidden_size",
        "num_layers": "num_layers",
        "constrained": "constrained_embedding",
        "embedding_size": "num_components",
    }
    changed = []
    for key, param in names.items():
        if key == "embedding_size" and (fitted["constrained"] or wanted["constrained"]):
            continue  # the embedding is the output table's width then
        if fitted[key] != wanted[key]:
            changed.append(f"{param} (fitted with {fitted[key]!r}, now {wanted[key]!r})")
    return changed


def merged_counts(old: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Training events per item over the fit and every update: the counts ``old`` plus the
    update's ``items``, over the grown catalogue of ``n_items``."""
    counts = np.bincount(items, minlength=n_items)
    counts[: len(old)] += old
    return counts


def check_continuable(
    fitted: dict[str, Any], wanted: dict[str, Any], state: TrainingState | None
) -> TrainingState:
    """The state to continue from; a ValueError when the parameters now build another
    network than the fitted one, or when there is no state (a file saved without it)."""
    changed = architecture_changes(fitted, wanted)
    if changed:
        raise ValueError(
            "partial_fit continues the fitted network, but parameters that shape it have "
            f"changed since the fit: {'; '.join(changed)}; set them back, or fit anew"
        )
    if state is None:
        raise MissingTrainingStateError(
            "this model holds no training state to continue from (the optimiser's Adagrad "
            "accumulators and momentum, the negative sampler's counts, the update count): it "
            "was loaded from a file saved without them, by an earlier version of gru4rec. It "
            "still predicts; to update it, fit it anew (fit() or partial_fit() on an unfitted "
            "estimator) and save it with this version"
        )
    return state


def _kind_name(ids: np.ndarray) -> str:
    kind = id_kind(ids)
    return {"numbers": "numbers (int/float)", "strings": "strings (str)"}.get(kind, kind)


def extend_vocabulary(
    vocabulary: Vocabulary | None,
    n_items: int,
    new_vocabulary: Vocabulary | None,
    sessions: SessionArrays,
    n_columns: int = 0,
) -> tuple[Vocabulary | None, int, SessionArrays]:
    """The fitted vocabulary grown by the items of ``sessions`` it does not know, in their
    order in ``new_vocabulary`` (the one ``X`` was encoded with), the new catalogue size,
    and the sessions renumbered to it. Known items keep their indices.

    Without vocabularies (a model fitted on item indices) indices are indices, and the
    catalogue grows to ``X``'s width ``n_columns`` (as ``fit`` takes it) or past the largest
    index seen.
    """
    if (vocabulary is None) != (new_vocabulary is None):
        fitted = "item indices" if vocabulary is None else "raw item ids"
        given = "item indices" if new_vocabulary is None else "raw item ids"
        raise ValueError(
            f"the model was fitted on {fitted} but X holds {given}; give X as the fit's data "
            "was given (an InteractionMatrix built the same way, or a DataFrame of raw ids)"
        )
    items = sessions.items
    if vocabulary is None:
        grown = max(n_items, n_columns, int(items.max()) + 1 if len(items) else 0)
        return None, grown, sessions
    used = np.zeros(len(new_vocabulary), dtype=bool)
    used[items] = True
    raw = new_vocabulary.ids[used]
    if len(raw) and len(vocabulary):
        ours, theirs = _kind_name(vocabulary.ids), _kind_name(raw)
        if ours != theirs:
            raise TypeError(
                f"the item ids of X are {theirs} but the model's item vocabulary holds {ours}; "
                f"convert X's item column to the vocabulary's type"
            )
    index = vocabulary.index_of(raw)
    unknown = index < 0
    if unknown.any():
        added = raw[unknown]
        ids = np.empty(len(vocabulary) + len(added), dtype=_common_dtype(vocabulary.ids, added))
        ids[: len(vocabulary)] = vocabulary.ids
        ids[len(vocabulary) :] = added
        index[unknown] = len(vocabulary) + np.arange(len(added))
        vocabulary = Vocabulary(ids)
    mapping = np.full(len(new_vocabulary), -1, dtype=np.int64)
    mapping[used] = index
    return vocabulary, len(vocabulary), replace(sessions, items=mapping[items])


def _common_dtype(old: np.ndarray, new: np.ndarray) -> np.dtype:
    if old.dtype == object or new.dtype == object:
        return np.dtype(object)
    return np.result_type(old.dtype, new.dtype)


def grow_model(model: GRU4RecNet, n_items: int, generator: torch.Generator) -> GRU4RecNet:
    """A copy of ``model`` with ``n_items`` rows in every item table: the known rows as they
    are, new output and input rows Glorot-uniform for the grown catalogue (as ``fit``
    initialises its tables) and zero output biases. The copy's tables are contiguous and of
    the model's dtype (the compiled step reads them as arrays)."""
    grown = copy.deepcopy(model)
    n_old = model.n_items
    if n_items < n_old:
        raise ValueError(f"the catalogue cannot shrink ({n_old} items, asked for {n_items})")
    if n_items == n_old:
        return grown
    extra = n_items - n_old
    for name, table in model.item_tables().items():
        rows = torch.zeros(extra, table.shape[1], dtype=table.dtype, device=table.device)
        if name != "item_bias":
            bound = math.sqrt(6.0 / (n_items + table.shape[1]))
            rows.uniform_(-bound, bound, generator=generator)
        data = torch.cat([table.detach(), rows]).contiguous()
        setattr(grown, name, nn.Parameter(data, requires_grad=False))
    grown.n_items = n_items
    return grown


def update_counts(
    counts: np.ndarray, n_items: int, new_items: np.ndarray, decay: float
) -> np.ndarray:
    """The sampler's counts after an update: the old ones times ``decay``, plus the events of
    the new slice (``decay=1``: every event so far, as a refit counts; ``0``: the slice
    alone)."""
    out = np.zeros(n_items, dtype=np.float64)
    out[: len(counts)] = np.asarray(counts, dtype=np.float64) * decay
    out += np.bincount(new_items, minlength=n_items)
    return out


def update_seeds(seed: int, update: int) -> tuple[int, np.random.Generator]:
    """The seeds of update ``update`` of a model fitted with ``seed``: the torch generator's
    seed (sampling, dropout, new rows) and the session-order stream. A function of the two
    numbers alone, so a model loaded from a file updates as the saved one would have."""
    seq = np.random.SeedSequence([int(seed), 2, int(update)])
    torch_seed, order_seed = (int(s) for s in seq.generate_state(2, dtype=np.uint64) >> 1)
    return torch_seed, np.random.default_rng(order_seed)
