"""Live sessions, one event at a time: the hidden state kept between events.

:class:`LiveSessions` advances a session by one GRU step per pushed event and scores the
catalogue once (the same top-K path as ``recommend``, with its filters); nothing replays a
session. Many sessions' events advance in one forward pass (:meth:`LiveSessions.push_many`).
The states live in a store (:mod:`gru4rec.state_store`): in memory by default, or in Redis.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import inputs, kernels
from .checks import is_int
from .inference import Int8Scorer, Scorer
from .kernels.live import LiveStep
from .state_store import MemoryStore, SessionState

__all__ = ["LiveSessions", "Recommendation", "model_version"]

#: Rows x items scored at once in a batch of events (the score buffer's bound).
_SCORE_CELLS = 1 << 24
#: Other model versions whose item index maps a LiveSessions keeps.
_MAX_VERSIONS = 8
#: An integer spelled as text ("12", "-3"; not "¹", which str.isdigit takes for one).
_INTEGER = re.compile(r"-?[0-9]+")
#: What looking up a value that is no id of the catalogue raises (a list: InvalidIndexError).
_NOT_FOUND = (KeyError, TypeError, ValueError, OverflowError, pd.errors.InvalidIndexError)


@dataclass(frozen=True)
class Recommendation:
    """What one pushed event gives back.

    Attributes
    ----------
    items, scores : np.ndarray
        The top-k next items (raw ids) and their scores, best first.
    known : bool
        Whether the pushed item is in the model's catalogue (an unknown item leaves the
        session's state as it was).
    restarted : bool
        Whether the session's stored state belonged to a model of another shape and was
        dropped (after a reload): the session starts again from this event.
    """

    items: np.ndarray
    scores: np.ndarray
    known: bool = True
    restarted: bool = False


def model_version(model: Any) -> bytes:
    """An 8-byte fingerprint of a fitted estimator's network weights and item ids."""
    digest = hashlib.blake2b(digest_size=8)
    for name, tensor in sorted(model.model_.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    vocab = model.item_vocabulary_
    digest.update(repr(None if vocab is None else vocab.ids.tolist()).encode())
    return digest.digest()


class _Catalogue:
    """Raw item id <-> model index, one id at a time in constant time (no frame work)."""

    def __init__(self, model: Any) -> None:
        vocab = model.item_vocabulary_
        self.n_items = int(model.n_items_)
        self.vocabulary = vocab
        self.ids = None if vocab is None else vocab.ids
        self._index = None if vocab is None else pd.Index(vocab.ids)
        self._numeric = vocab is None or vocab.ids.dtype.kind in "iu"

    def index(self, item: Any) -> int:
        """The model index of ``item``; -1 when unknown."""
        if self._index is None:
            if isinstance(item, bool) or not isinstance(item, int | np.integer):
                return -1
            return int(item) if 0 <= item < self.n_items else -1
        try:
            found = self._index.get_loc(item)
        except _NOT_FOUND:
            # The same id spelled otherwise (JSON's "12" for 12, or 12 for "12").
            other = _respelled(item, self._numeric)
            if other is None:
                return -1
            try:
                found = self._index.get_loc(other)
            except _NOT_FOUND:
                return -1
        return found if isinstance(found, int) else -1


class LiveSessions:
    """Serve a fitted model to live sessions: push one event, get the top-k back.

    Each session's hidden state is kept in ``store`` between its events, so an event costs one
    GRU step and one scoring pass. Pushing a session's events one by one gives the top-k that
    ``recommend`` gives on the whole session.

    Parameters
    ----------
    model : GRU4RecNegSampling or GRU4RecCrossEntropy
        A fitted estimator.
    k : int, default=20
        Items returned per event, unless a call says otherwise.
    exclude_seen : bool, default=False
        Leave out the session's own items (as ``recommend``), unless a call says otherwise.
    ttl : float or None, default=1800
        Seconds an idle session is kept (the in-memory store's; a given ``store`` has its own).
    max_sessions : int, default=1_000_000
        Sessions held at most in memory; the least recently used go first.
    max_seen : int, default=200
        Items of each session remembered for ``exclude_seen`` (the latest ones).
    store : MemoryStore or RedisStore, optional
        Where the states live; by default a :class:`~gru4rec.state_store.MemoryStore` with
        ``ttl`` and ``max_sessions``.
    scoring : {"exact", "int8"}, default="exact"
        ``"int8"`` scores the catalogue with int8 item vectors first and the best
        ``k + 64`` items again exactly (:class:`~gru4rec.inference.Int8Scorer`): about a
        quarter of the memory traffic on a large catalogue, exact scores, and an item missed
        only when int8 rounding moves it 64 places. CPU only.
    """

    def __init__(
        self,
        model: Any,
        *,
        k: int = 20,
        exclude_seen: bool = False,
        ttl: float | None = 1800.0,
        max_sessions: int = 1_000_000,
        max_seen: int = 200,
        store: Any = None,
        scoring: str = "exact",
    ) -> None:
        if not hasattr(model, "model_"):
            raise ValueError("model must be a fitted GRU4Rec estimator; call fit() first")
        _check_k(k)
        if isinstance(max_seen, bool) or not isinstance(max_seen, int) or max_seen < 0:
            raise ValueError(f"max_seen must be an integer >= 0; got {max_seen!r}")
        self.k = k
        self.exclude_seen = bool(exclude_seen)
        self.max_seen = max_seen
        if scoring not in ("exact", "int8"):
            raise ValueError(f"scoring must be 'exact' or 'int8'; got {scoring!r}")
        self.scoring = scoring
        self.store = store if store is not None else MemoryStore(ttl, max_sessions)
        self._lock = threading.Lock()
        self._carried: dict[bytes, np.ndarray | None] = {}
        self.__dict__.update(self._prepare(model))
        self._publish_items()

    # -- the model ---------------------------------------------------------------------------

    def _prepare(self, model: Any) -> dict[str, Any]:
        """Everything serving ``model`` needs, built before it replaces anything."""
        net = model.model_
        net.eval()
        device = torch.device(getattr(model, "device_", "cpu"))
        chunk = max(1024, min(net.n_items, _SCORE_CELLS // 64))
        scorer: Scorer | Int8Scorer = Scorer(net, device, batch_size=64, chunk_size=chunk)
        if self.scoring == "int8":
            if device.type != "cpu":
                raise ValueError("scoring='int8' runs on the CPU; load the model with device='cpu'")
            scorer = Int8Scorer(net)
        # One compiled call per layer and event instead of a dozen torch operators.
        step = LiveStep(net) if device.type == "cpu" and kernels.AVAILABLE else None
        # The compiled code loads (or compiles) on its first call: here, not in the first event.
        zero = np.zeros((1, net.num_layers, net.hidden_size), dtype=np.float32)
        if step is not None and net.n_items:
            step(np.zeros(1, dtype=np.int64), zero)
        if isinstance(scorer, Int8Scorer):
            scorer.top_k_arrays(zero[:, -1], 1)
        return {
            "model": model,
            "version": model_version(model),
            "_net": net,
            "_device": device,
            "_catalogue": _Catalogue(model),
            "_scorer": scorer,
            "_step": step,
            "_shape": (net.num_layers, net.hidden_size),
        }

    def reload(self, model: Any) -> bool:
        """Serve ``model`` from now on, keeping the sessions in flight.

        States of a network of the same shape (layers and units) carry over, their seen items
        mapped to the new model's item indices; otherwise each session restarts at its next
        event (its :class:`Recommendation` says so). Returns whether the states carry over.
        """
        if not hasattr(model, "model_"):
            raise ValueError("model must be a fitted GRU4Rec estimator")
        new = self._prepare(model)  # the slow part, while the old model serves
        carries = new["_shape"] == self._shape
        carried = {}
        if carries and new["version"] != self.version:
            old = self._catalogue
            carried = {self.version: _index_map(old.ids, old.n_items, new["_catalogue"])}
        with self._lock:
            self.__dict__.update(new)
            self._carried = carried
            self._publish_items()
        return carries

    def _publish_items(self) -> None:
        """Put this model's item ids in the store, for workers serving other versions to read
        the seen items of this one's states."""
        put = getattr(self.store, "put_items", None)
        if put is not None:
            put(self.version, self._catalogue.ids, self._catalogue.n_items)

    def _index_map_of(self, version: bytes) -> np.ndarray | None | bool:
        """Item index map from model ``version`` to this model (None: the same indices);
        False when that version's item ids are not to be had."""
        if version in self._carried:
            return self._carried[version]
        get = getattr(self.store, "get_items", None)
        items = None if get is None else get(version)
        if items is None:  # not written (yet), or gone: asked again at the next state
            return False
        index_map = _index_map(*items, self._catalogue)
        if len(self._carried) >= _MAX_VERSIONS:
            self._carried.pop(next(iter(self._carried)))
        self._carried[version] = index_map
        return index_map

    # -- events ------------------------------------------------------------------------------

    def push(
        self,
        session_id: Any,
        item_id: Any,
        k: int | None = None,
        *,
        exclude_seen: bool | None = None,
        items: Sequence[Any] | None = None,
        filter_items: Sequence[Any] | None = None,
    ) -> Recommendation:
        """Advance ``session_id`` by the event ``item_id`` and return its next top-k.

        An item unknown to the model leaves the state as it was (the top-k is that of the
        state so far) and the result says so. ``items`` and ``filter_items`` are
        ``recommend``'s candidate filters.
        """
        k = self.k if k is None else _check_k(k)
        exclude = self.exclude_seen if exclude_seen is None else bool(exclude_seen)
        blocked = self._blocked(items, filter_items)
        key = _key(session_id)
        index = np.array([self._catalogue.index(item_id)], dtype=np.int64)
        with self._lock:
            return self._advance_one(key, int(index[0]), k, exclude, blocked)

    def push_many(
        self,
        session_ids: Sequence[Any],
        item_ids: Sequence[Any],
        k: int | None = None,
        *,
        exclude_seen: bool | None = None,
        items: Sequence[Any] | None = None,
        filter_items: Sequence[Any] | None = None,
    ) -> list[Recommendation]:
        """Advance many sessions by one event each in one forward pass; one result per event.

        A session given several events here advances by them in their order (one pass per
        repeat).
        """
        if len(session_ids) != len(item_ids):
            raise ValueError(
                f"session_ids and item_ids must have the same length; got {len(session_ids)} "
                f"and {len(item_ids)}"
            )
        k = self.k if k is None else _check_k(k)
        exclude = self.exclude_seen if exclude_seen is None else bool(exclude_seen)
        blocked = self._blocked(items, filter_items)
        keys = [_key(s) for s in session_ids]
        index = np.fromiter(
            (self._catalogue.index(i) for i in item_ids), dtype=np.int64, count=len(keys)
        )
        with self._lock:
            # Repeats of a session in one call advance in rounds: its n-th event in round n.
            order = pd.Series(keys, dtype=object).groupby(keys, sort=False).cumcount().to_numpy()
            results: list[Recommendation | None] = [None] * len(keys)
            for r in range(int(order.max()) + 1 if len(keys) else 0):
                pos = np.flatnonzero(order == r)
                got = self._advance([keys[p] for p in pos], index[pos], k, exclude, blocked)
                for p, rec in zip(pos, got, strict=True):
                    results[p] = rec
        return results  # type: ignore[return-value]

    def recommend(
        self,
        session_id: Any,
        k: int | None = None,
        *,
        exclude_seen: bool | None = None,
        items: Sequence[Any] | None = None,
        filter_items: Sequence[Any] | None = None,
    ) -> Recommendation:
        """The top-k of a session's current state, without an event (a new session: from the
        empty state)."""
        k = self.k if k is None else _check_k(k)
        exclude = self.exclude_seen if exclude_seen is None else bool(exclude_seen)
        blocked = self._blocked(items, filter_items)
        with self._lock:
            key = _key(session_id)
            states, restarted = self._load([key])
            hidden, seen = states[0]
            rec = self._top_k(hidden[None], [seen], k, exclude, blocked)[0]
        return Recommendation(rec[0], rec[1], True, restarted[0])

    def end(self, session_id: Any) -> bool:
        """Forget a session; returns whether it was held."""
        return self.store.delete(_key(session_id))

    def __len__(self) -> int:
        return len(self.store)

    # -- the work ----------------------------------------------------------------------------

    def _blocked(self, items: Any, filter_items: Any) -> np.ndarray | None:
        cat = self._catalogue
        return inputs.blocked_items(items, filter_items, cat.vocabulary, cat.n_items)[0]

    def _load(self, keys: list[str]) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[bool]]:
        """The ``(hidden, seen)`` of each session (zero and empty when new) and whether its
        stored state was dropped for another model's shape."""
        zero = np.zeros(self._shape, dtype=np.float32)
        empty = np.zeros(0, dtype=np.int32)
        states, restarted = [], []
        for state in self.store.get_many(keys):
            if state is None:
                states.append((zero, empty))
                restarted.append(False)
            elif state.version == self.version:
                states.append((state.hidden, state.seen))
                restarted.append(False)
            elif state.hidden.shape == self._shape:
                # Another model of this shape: the previous one, or one another worker loaded
                # before or after this one; its seen items mapped to ours through its item ids
                # (in the store), dropped only where those are gone.
                index_map = self._index_map_of(state.version)
                if index_map is False:
                    seen = empty
                elif index_map is None:
                    seen = state.seen
                else:
                    seen = state.seen[(state.seen >= 0) & (state.seen < len(index_map))]
                    seen = index_map[seen]
                    seen = seen[seen >= 0].astype(np.int32)
                states.append((state.hidden, seen))
                restarted.append(False)
            else:
                states.append((zero, empty))
                restarted.append(True)
        return states, restarted

    def _advance(
        self, keys: list[str], index: np.ndarray, k: int, exclude: bool, blocked: Any
    ) -> list[Recommendation]:
        states, restarted = self._load(keys)
        hidden = np.stack([s[0] for s in states])  # (batch, layers, units)
        seen = [s[1] for s in states]
        known = index >= 0
        if known.any():
            rows = np.flatnonzero(known)
            hidden[rows] = self._step_states(index[rows], hidden[rows])
            for r in rows:
                seen[r] = self._seen_after(seen[r], index[r])
        top = self._top_k(hidden, seen, k, exclude, blocked)
        changed = {
            keys[r]: SessionState(self.version, hidden[r].copy(), seen[r])
            for r in range(len(keys))
            if known[r] or restarted[r]
        }
        if changed:
            self.store.put_many(changed)
        return [
            Recommendation(ids, scores, bool(known[r]), restarted[r])
            for r, (ids, scores) in enumerate(top)
        ]

    def _advance_one(
        self, key: str, index: int, k: int, exclude: bool, blocked: Any
    ) -> Recommendation:
        """:meth:`_advance` for one event, without the batch's bookkeeping (the hot path)."""
        (hidden, seen), restarted = (x[0] for x in self._load([key]))
        if index >= 0:
            hidden = self._step_states(np.array([index]), hidden[None])[0]
            seen = self._seen_after(seen, index)
        if index >= 0 or restarted:
            self.store.put_many({key: SessionState(self.version, hidden, seen)})
        ids, scores = self._top_k_of(hidden[-1:], [seen], k, exclude, blocked)[0]
        return Recommendation(ids, scores, index >= 0, restarted)

    def _seen_after(self, seen: np.ndarray, index: int) -> np.ndarray:
        """A session's remembered items after the event ``index``: the latest ``max_seen``."""
        if self.max_seen == 0:
            return seen[:0]
        return np.append(seen, np.int32(index))[-self.max_seen :]

    def _step_states(self, index: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """The states ``(rows, layers, units)`` after one event each."""
        if self._step is not None:
            return self._step(index, hidden)
        net, device = self._net, self._device
        with torch.no_grad():
            h = torch.from_numpy(np.ascontiguousarray(hidden)).to(device)
            x = net.input_vectors(torch.as_tensor(index, device=device))
            _, new = net.step(x, [h[:, layer] for layer in range(h.shape[1])])
            return torch.stack(new, dim=1).cpu().numpy()

    def _top_k(
        self, hidden: np.ndarray, seen: list[np.ndarray], k: int, exclude: bool, blocked: Any
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-k raw ids and scores from the last layer's state of each row."""
        return self._top_k_of(hidden[:, -1], seen, k, exclude, blocked)

    def _top_k_of(
        self, out: np.ndarray, seen: list[np.ndarray], k: int, exclude: bool, blocked: Any
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        own = None
        if exclude:
            lengths = np.fromiter(map(len, seen), dtype=np.int64, count=len(seen))
            offsets = np.zeros(len(seen) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            flat = np.concatenate(seen) if len(seen) else np.zeros(0, dtype=np.int32)
            own = (flat.astype(np.int64), offsets) if len(flat) else None
        if isinstance(self._scorer, Int8Scorer):
            scores, idx = self._scorer.top_k_arrays(out, k, own, blocked)
        else:
            states = torch.tensor(out, device=self._device)  # a copy: stored states are read-only
            scores, idx = (t.cpu().numpy() for t in self._scorer.top_k(states, k, own, blocked))
        raw = inputs.item_ids(idx, self._catalogue.vocabulary)
        return [(raw[r], scores[r]) for r in range(len(seen))]


def _respelled(item: Any, numeric: bool) -> Any:
    if numeric and isinstance(item, str) and _INTEGER.fullmatch(item):
        return int(item)
    if not numeric and isinstance(item, int | np.integer) and not isinstance(item, bool):
        return str(item)
    return None


def _key(session_id: Any) -> str:
    if isinstance(session_id, bool) or not isinstance(session_id, str | int | np.integer):
        raise ValueError(
            f"session ids must be strings or integers; got {type(session_id).__name__}"
        )
    return str(session_id)


def _check_k(k: Any) -> int:
    if not is_int(k):
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    return int(k)


def _index_map(old_ids: np.ndarray | None, old_n_items: int, new: _Catalogue) -> np.ndarray | None:
    """Item index of a model with ``old_ids`` (None: fitted on indices) -> that of ``new``
    (-1: gone), or None when the indices are the same."""
    if old_ids is None and new.ids is None:
        return None if old_n_items <= new.n_items else _identity_upto(old_n_items, new.n_items)
    if old_ids is not None and new.ids is not None:
        if len(old_ids) <= len(new.ids) and np.array_equal(old_ids, new.ids[: len(old_ids)]):
            return None
        return new.vocabulary.index_of(old_ids)
    return np.full(old_n_items, -1, dtype=np.int64)


def _identity_upto(n_old: int, n_new: int) -> np.ndarray:
    out = np.arange(n_old, dtype=np.int64)
    out[n_new:] = -1
    return out
