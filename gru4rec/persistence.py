"""Saving and loading fitted estimators: checkpoint files and pickles.

:class:`Persistence` gives the estimators :meth:`~Persistence.save`, :meth:`~Persistence.load`
and pickling. A checkpoint holds the weights and plain metadata (parameters, architecture,
item ids, history) and loads with ``torch.load(weights_only=True)``; a pickle carries the
weights as a ``torch.save`` blob with the architecture they were trained with.
"""

from __future__ import annotations

import copy
import io
import math
import os
import pathlib
from typing import Any

import numpy as np
import torch

from . import device as devices
from .checkpoint import load_checkpoint, save_checkpoint
from .growth import TrainingState
from .matrix import Vocabulary
from .model import GRU4RecNet
from .stopping import SETTINGS, StoppingCriterion, configured, criterion_name

__all__ = ["Persistence", "savable_item_ids"]

# The kinds of raw ids a model file holds (plain data, loadable with weights_only=True).
_PLAIN_IDS = (bool, int, float, str, np.bool_, np.integer, np.floating)


def savable_item_ids(vocabulary: Vocabulary | None) -> list[Any] | None:
    """The raw item ids as a list for a model file; a TypeError naming the id type when
    they are objects a file cannot hold (such as UUID or datetime objects)."""
    if vocabulary is None:
        return None
    ids = vocabulary.ids
    bad = None
    if ids.dtype == object:
        bad = next((v for v in ids if not isinstance(v, _PLAIN_IDS)), None)
    elif ids.dtype.kind not in "biuf":
        bad = ids[0]
    if bad is not None:
        raise TypeError(
            f"item ids of type {type(bad).__name__} (e.g. {bad!r}) cannot be written to a "
            "model file, which holds numbers and strings only; fit on ids converted to str "
            "(df[item_col].astype(str)), or pickle the estimator instead"
        )
    return ids.tolist()


def _ids_array(ids: list[Any], dtype: str | None = None) -> np.ndarray:
    """Saved item ids as an array that keeps each id's type (``np.asarray`` would turn the
    ints among strings into strings, which the model would then not know, and uint64 ids
    on both sides of 2**63 into float64, which merges neighbours)."""
    if dtype is not None and np.dtype(dtype).kind in "biuf":
        return np.asarray(ids, dtype=np.dtype(dtype))
    arr = np.asarray(ids)
    if arr.dtype.kind in "US" and not all(isinstance(v, str) for v in ids):
        arr = np.empty(len(ids), dtype=object)
        arr[:] = ids
    return arr


class Persistence:
    """What an estimator needs to be saved, loaded and pickled (a mixin)."""

    @property
    def filename(self) -> str:
        """Name of the file at which :meth:`save` writes the model, in recpack's format:
        ``{name}_loss_{best value}.trch`` (the criterion's starting value, ``-inf`` or
        ``inf``, before any epoch was scored)."""
        best = getattr(self, "best_value_", None)
        if best is None:
            best = math.inf if self._criterion_minimizes() else -math.inf
        return f"{self.name}_loss_{float(best)}.trch"

    def _criterion_minimizes(self) -> bool:
        criterion = getattr(self, "stopping_criterion_", None) or self.stopping_criterion
        if not isinstance(criterion, str):  # ours, or an object of recpack's protocol
            return bool(getattr(criterion, "minimize", False))
        return bool(StoppingCriterion.FUNCTIONS.get(criterion, {}).get("minimize", False))

    def _metadata(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        if not isinstance(params.get("stopping_criterion"), str):
            params["stopping_criterion"] = criterion_name(params["stopping_criterion"])
        if isinstance(params.get("device"), torch.device):
            params["device"] = str(params["device"])
        vocab = self.item_vocabulary_
        meta = {
            "class": self.name,
            "params": params,
            "architecture": self.model_.config(),
            "n_items": int(self.n_items_),
            "seed": int(self.seed_),
            "best_value": self.best_value_,
            "best_epoch": self.best_epoch_,
            "criterion": self.stopping_criterion_.to_dict(),
            "item_ids": savable_item_ids(vocab),
            "item_ids_dtype": None if vocab is None else vocab.ids.dtype.str,
            "item_counts": self.item_counts_.tolist(),
            "history": self.history_,
        }
        state = getattr(self, "training_state_", None)
        if state is not None:
            # What partial_fit continues from (optimiser state, sampler counts, updates).
            meta["training_state"] = state.to_plain()
        return meta

    def save(self, path: str | os.PathLike[str] | None = None) -> pathlib.Path:
        """Save the current model, atomically, to ``path`` (default: :attr:`filename`;
        a directory, existing or ending in a path separator: :attr:`filename` in it).

        Returns the path written. The file holds the weights and plain
        metadata (parameters, architecture, item ids, history), and the state that
        :meth:`partial_fit` continues from (the optimiser's state, the sampler's counts,
        the number of updates); it loads with ``torch.load(weights_only=True)``.
        """
        self._check_fitted()
        target = self.filename if path is None else path
        if os.path.isdir(target) or str(target).endswith(("/", os.sep)):
            target = pathlib.Path(target) / self.filename
        try:
            return save_checkpoint(target, self.model_.state_dict(), self._metadata())
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot write the model to {os.fspath(target)}: {exc.strerror}"
            ) from exc

    @devices.with_threads
    def load(self, filename: str) -> Persistence:
        """Load a model saved with :meth:`save` into this estimator (also a fresh one)."""
        state, meta = load_checkpoint(filename, map_location="cpu")
        if meta.get("class") != self.name:
            raise ValueError(f"{filename} holds a {meta.get('class')!r} model, not a {self.name}")
        params = dict(meta["params"])
        self.set_params(**{k: v for k, v in params.items() if k in self.get_params(deep=False)})
        # Files of earlier versions hold no settings: the estimator's parameters are them.
        settings = {key: params[key] for key in SETTINGS if key in params}
        self.stopping_criterion_ = StoppingCriterion.from_dict({**settings, **meta["criterion"]})
        saved = self.stopping_criterion_.to_dict()
        named = self.stopping_criterion in StoppingCriterion.FUNCTIONS
        if not named or configured(self.stopping_criterion, **settings).to_dict() != saved:
            # A custom criterion (saved by name: a placeholder that says so when used), or
            # a named one with its own settings: the parameter is the criterion itself.
            self.stopping_criterion = copy.deepcopy(self.stopping_criterion_)
        self.device_ = devices.runtime(self.device)
        self.n_items_ = int(meta["n_items"])
        self.seed_ = int(meta["seed"])
        self.best_value_ = meta["best_value"]
        self.best_epoch_ = meta["best_epoch"]
        self.history_ = list(meta["history"])
        self.item_counts_ = np.asarray(meta["item_counts"], dtype=np.int64)
        ids = meta["item_ids"]
        self.item_vocabulary_ = (
            None if ids is None else Vocabulary(_ids_array(ids, meta.get("item_ids_dtype")))
        )
        model = GRU4RecNet(**meta["architecture"])
        model.load_state_dict(state)
        self.model_ = model.to(self.device_)
        # Files of earlier versions hold none: they predict, and partial_fit says so.
        self.training_state_ = TrainingState.from_plain(meta.get("training_state"))
        return self

    def __getstate__(self) -> dict[str, Any]:
        # The parents' state first, whatever they add to it.
        parent = getattr(super(), "__getstate__", None)
        state = dict(parent()) if parent is not None else self.__dict__.copy()
        if "model_" in state:
            buf = io.BytesIO()
            torch.save({k: v.cpu() for k, v in self.model_.state_dict().items()}, buf)
            # The architecture travels with the weights: parameters may have been
            # changed with set_params since the fit.
            state["model_"] = (self.model_.config(), buf.getvalue())
            state["device_"] = str(self.device_)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.get("model_")
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
        if isinstance(packed, tuple):
            arch, blob = packed
            # Under the model's own thread count, as load(): torch's parallel ops start a
            # thread pool that a later fork (prefork servers) would inherit broken.
            with devices.torch_threads(state.get("num_threads", 1)):
                weights = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
                device = devices.runtime(state["device_"])
                model = GRU4RecNet(**arch)
                model.load_state_dict(weights)
                self.model_ = model.to(device)
            self.device_ = device
