"""Model files and pickles of fitted estimators, as functions over plain data.

The estimators' ``save``, ``load`` and pickling call these with their parameters and fitted
attributes; nothing here calls an estimator. A model file holds the weights and plain
metadata (:func:`metadata`: parameters, architecture, item ids, history, the state that
``partial_fit`` continues from), is written atomically (:func:`write`) and loads with
``torch.load(weights_only=True)`` (:func:`read`); a pickle carries the weights as a
``torch.save`` blob with the architecture they were trained with (:func:`pack`).
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

from . import cpu
from . import device as devices
from .checkpoint import load_checkpoint, save_checkpoint
from .growth import TrainingState
from .matrix import Vocabulary
from .model import GRU4RecNet
from .stopping import SETTINGS, StoppingCriterion, configured, criterion_name

__all__ = [
    "SAVED",
    "filename",
    "metadata",
    "network",
    "pack",
    "read",
    "restored",
    "savable_item_ids",
    "unpack",
    "write",
]

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


#: The fitted attributes a model file holds (besides the weights); ``training_state_``
#: may be absent (None).
SAVED = (
    "n_items_",
    "seed_",
    "best_value_",
    "best_epoch_",
    "stopping_criterion_",
    "item_vocabulary_",
    "item_counts_",
    "history_",
    "training_state_",
)


def filename(name: str, best_value: float | None, criterion: Any) -> str:
    """``{name}_loss_{best value}.trch``, recpack's model file name; before any epoch was
    scored (``best_value`` None), the starting value of ``criterion`` (a criterion name or
    object): ``inf`` where it minimises, else ``-inf``."""
    if best_value is None:
        best_value = math.inf if _minimizes(criterion) else -math.inf
    return f"{name}_loss_{float(best_value)}.trch"


def _minimizes(criterion: Any) -> bool:
    if not isinstance(criterion, str):  # ours, or an object of recpack's protocol
        return bool(getattr(criterion, "minimize", False))
    return bool(StoppingCriterion.FUNCTIONS.get(criterion, {}).get("minimize", False))


def metadata(
    name: str, params: dict[str, Any], architecture: dict[str, Any], fitted: dict[str, Any]
) -> dict[str, Any]:
    """The plain metadata of a model file: the class ``name``, its ``params``
    (``get_params``), the network's ``architecture`` and the fitted attributes of
    :data:`SAVED` (``fitted``)."""
    params = dict(params)
    if not isinstance(params.get("stopping_criterion"), str):
        params["stopping_criterion"] = criterion_name(params["stopping_criterion"])
    if isinstance(params.get("device"), torch.device):
        params["device"] = str(params["device"])
    vocab = fitted["item_vocabulary_"]
    meta = {
        "class": name,
        "params": params,
        "architecture": architecture,
        "n_items": int(fitted["n_items_"]),
        "seed": int(fitted["seed_"]),
        "best_value": fitted["best_value_"],
        "best_epoch": fitted["best_epoch_"],
        "criterion": fitted["stopping_criterion_"].to_dict(),
        "item_ids": savable_item_ids(vocab),
        "item_ids_dtype": None if vocab is None else vocab.ids.dtype.str,
        "item_counts": fitted["item_counts_"].tolist(),
        "history": fitted["history_"],
    }
    state = fitted.get("training_state_")
    if state is not None:
        # What partial_fit continues from (optimiser state, sampler counts, updates).
        meta["training_state"] = state.to_plain()
    return meta


def write(
    path: str | os.PathLike[str] | None,
    default_name: str,
    weights: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> pathlib.Path:
    """Write ``weights`` and ``meta`` atomically to ``path`` (None: ``default_name``; a
    directory, existing or ending in a path separator: ``default_name`` in it); the path
    written. An OSError names the path."""
    target = default_name if path is None else path
    if os.path.isdir(target) or str(target).endswith(("/", os.sep)):
        target = pathlib.Path(target) / default_name
    try:
        return save_checkpoint(target, weights, meta)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot write the model to {os.fspath(target)}: {exc.strerror}"
        ) from exc


def read(path: str | os.PathLike[str], name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and metadata of the model file at ``path`` (``weights_only=True``); a
    ValueError unless it holds a model of the class ``name``."""
    weights, meta = load_checkpoint(path, map_location="cpu")
    if meta.get("class") != name:
        raise ValueError(f"{path} holds a {meta.get('class')!r} model, not a {name}")
    return weights, meta


def restored(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What :func:`metadata` saved, as the estimator's parameters and its fitted attributes
    (those of :data:`SAVED`; ``training_state_`` None for files of earlier versions, which
    predict, and ``partial_fit`` says so)."""
    params = dict(meta["params"])
    # Files of earlier versions hold no settings: the estimator's parameters are them.
    settings = {key: params[key] for key in SETTINGS if key in params}
    criterion = StoppingCriterion.from_dict({**settings, **meta["criterion"]})
    named = params.get("stopping_criterion") in StoppingCriterion.FUNCTIONS
    if not named or configured(params["stopping_criterion"], **settings).to_dict() != (
        criterion.to_dict()
    ):
        # A custom criterion (saved by name: a placeholder that says so when used), or
        # a named one with its own settings: the parameter is the criterion itself.
        params["stopping_criterion"] = copy.deepcopy(criterion)
    ids = meta["item_ids"]
    fitted = {
        "n_items_": int(meta["n_items"]),
        "seed_": int(meta["seed"]),
        "best_value_": meta["best_value"],
        "best_epoch_": meta["best_epoch"],
        "stopping_criterion_": criterion,
        "item_vocabulary_": (
            None if ids is None else Vocabulary(_ids_array(ids, meta.get("item_ids_dtype")))
        ),
        "item_counts_": np.asarray(meta["item_counts"], dtype=np.int64),
        "history_": list(meta["history"]),
        "training_state_": TrainingState.from_plain(meta.get("training_state")),
    }
    return params, fitted


def network(architecture: dict[str, Any], weights: dict[str, torch.Tensor]) -> GRU4RecNet:
    """The network of ``architecture`` holding ``weights`` (on the CPU)."""
    model = GRU4RecNet(**architecture)
    model.load_state_dict(weights)
    return model


def pack(state: dict[str, Any]) -> dict[str, Any]:
    """An estimator's pickled state with the network (``model_``) as its architecture and a
    ``torch.save`` blob of its weights: parameters may have changed with ``set_params``
    since the fit, so the architecture travels with the weights."""
    state = dict(state)
    model = state.get("model_")
    if model is not None:
        buf = io.BytesIO()
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buf)
        state["model_"] = (model.config(), buf.getvalue())
        state["device_"] = str(state["device_"])
    return state


def unpack(state: dict[str, Any]) -> dict[str, Any]:
    """The state :func:`pack` gave, with the network rebuilt on ``device_`` (the weights
    load with ``weights_only=True``)."""
    state = dict(state)
    packed = state.get("model_")
    if isinstance(packed, tuple):
        arch, blob = packed
        # Under the model's own thread count, as load(): torch's parallel ops start a
        # thread pool that a later fork (prefork servers) would inherit broken.
        with cpu.torch_threads(state.get("num_threads", 1)):
            weights = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            device = devices.runtime(state["device_"])
            state["model_"] = network(arch, weights).to(device)
        state["device_"] = device
    return state
