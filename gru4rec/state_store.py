"""Where live sessions keep their state between events: in memory, or in Redis.

A session's state is the network's hidden state after its last known event and the items it
has seen (for ``exclude_seen``), tagged with the model it belongs to. It travels as one small
binary value (:func:`encode` / :func:`decode`): a header, the hidden state as float32 and the
seen item indices as int32. The stores only keep values under keys, with a time-to-live:
:class:`MemoryStore` (one process; least recently used sessions evicted past a bound) and
:class:`RedisStore` (several worker processes or machines serving one model).

Beside the states, a store keeps the item ids of each model version that writes states into it
(:func:`encode_items` / :func:`decode_items`), so that a worker serving another version (one
that reloaded before or after it) can map a state's seen item indices to its own.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MemoryStore",
    "RedisStore",
    "SessionState",
    "StoreUnavailable",
    "decode",
    "decode_items",
    "encode",
    "encode_items",
]

_MAGIC = b"G4S1"
# magic, model version (8 bytes), layers, hidden units, number of seen items
_HEADER = struct.Struct("<4s8sHHI")


_ITEMS_MAGIC = b"G4I1"
#: Item catalogues of model versions a MemoryStore keeps (the latest ones).
_MEMORY_VERSIONS = 8


class StoreUnavailable(RuntimeError):
    """The state store cannot be reached (e.g. the Redis server is down)."""


@dataclass
class SessionState:
    """A live session: the model ``version`` it was computed with, the hidden state of every
    layer (``(layers, hidden)`` float32) and the item indices seen so far (int32, oldest first).
    """

    version: bytes
    hidden: np.ndarray
    seen: np.ndarray


def encode(state: SessionState) -> bytes:
    """The state as one binary value."""
    layers, units = state.hidden.shape
    header = _HEADER.pack(_MAGIC, state.version, layers, units, len(state.seen))
    hidden = np.ascontiguousarray(state.hidden, dtype="<f4").tobytes()
    return header + hidden + np.ascontiguousarray(state.seen, dtype="<i4").tobytes()


def decode(blob: bytes) -> SessionState | None:
    """The state of a value written by :func:`encode`; None for anything else (a value of
    another format or a truncated one reads as no state, so the session restarts)."""
    if len(blob) < _HEADER.size:
        return None
    magic, version, layers, units, n_seen = _HEADER.unpack_from(blob)
    n_hidden = layers * units
    if magic != _MAGIC or len(blob) != _HEADER.size + 4 * (n_hidden + n_seen):
        return None
    hidden = np.frombuffer(blob, dtype="<f4", count=n_hidden, offset=_HEADER.size)
    seen = np.frombuffer(blob, dtype="<i4", count=n_seen, offset=_HEADER.size + 4 * n_hidden)
    return SessionState(version, hidden.reshape(layers, units), seen)


def encode_items(ids: np.ndarray | None, n_items: int) -> bytes:
    """A model version's item ids (index order; None for a model fitted on indices) as one
    binary value: JSON, compressed. The ids keep their types (numbers or strings)."""
    body = {
        "n_items": int(n_items),
        "dtype": None if ids is None else str(ids.dtype),
        "ids": None if ids is None else ids.tolist(),
    }
    return _ITEMS_MAGIC + zlib.compress(json.dumps(body).encode(), 1)


def decode_items(blob: bytes) -> tuple[np.ndarray | None, int] | None:
    """``(ids, n_items)`` of a value written by :func:`encode_items`; None for anything else."""
    if not blob.startswith(_ITEMS_MAGIC):
        return None
    try:
        body = json.loads(zlib.decompress(blob[len(_ITEMS_MAGIC) :]))
        ids = body["ids"]
        if ids is not None:
            if body["dtype"] == "object":  # np.asarray would make strings of mixed ints
                array = np.empty(len(ids), dtype=object)
                array[:] = ids
                ids = array
            else:
                ids = np.asarray(ids, dtype=np.dtype(body["dtype"]))
        return ids, int(body["n_items"])
    except (ValueError, TypeError, KeyError, zlib.error):
        return None


class MemoryStore:
    """States in this process's memory: at most ``max_sessions``, the least recently used
    evicted first, each dropped ``ttl`` seconds after its last use (None: never).

    Parameters
    ----------
    ttl : float or None, default=1800
        Seconds a session is kept after its last event.
    max_sessions : int, default=1_000_000
        Sessions held at most.
    """

    def __init__(self, ttl: float | None = 1800.0, max_sessions: int = 1_000_000) -> None:
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds or None; got {ttl!r}")
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ValueError(f"max_sessions must be an integer >= 1; got {max_sessions!r}")
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._states: OrderedDict[str, tuple[float, SessionState]] = OrderedDict()
        self._lock = threading.Lock()
        self._items: OrderedDict[bytes, tuple[np.ndarray | None, int]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._states)

    def get_many(self, keys: Sequence[str]) -> list[SessionState | None]:
        now = time.monotonic()
        out = []
        with self._lock:
            for key in keys:
                entry = self._states.get(key)
                if entry is not None and self.ttl is not None and now - entry[0] > self.ttl:
                    del self._states[key]
                    entry = None
                elif entry is not None:  # a use: the most recent now, its time-to-live anew
                    self._states[key] = (now, entry[1])
                    self._states.move_to_end(key)
                out.append(None if entry is None else entry[1])
        return out

    def put_many(self, states: dict[str, SessionState]) -> None:
        now = time.monotonic()
        with self._lock:
            for key, state in states.items():
                self._states[key] = (now, state)
                self._states.move_to_end(key)
            self._evict(now)

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._states.pop(key, None) is not None

    def _evict(self, now: float) -> None:
        """Oldest first: the expired ones, then any beyond the bound (the order is of use)."""
        states = self._states
        while states:
            key, (used, _) = next(iter(states.items()))
            expired = self.ttl is not None and now - used > self.ttl
            if not expired and len(states) <= self.max_sessions:
                break
            del states[key]
            self.evicted += not expired

    def put_items(self, version: bytes, ids: np.ndarray | None, n_items: int) -> None:
        """Keep the item ids of model ``version`` (in index order; None for a model fitted on
        indices) and its number of items."""
        with self._lock:
            self._items[version] = (ids, int(n_items))
            self._items.move_to_end(version)
            while len(self._items) > _MEMORY_VERSIONS:
                self._items.popitem(last=False)

    def get_items(self, version: bytes) -> tuple[np.ndarray | None, int] | None:
        """``(ids, n_items)`` of model ``version`` as a store user put them; None when
        unknown."""
        with self._lock:
            return self._items.get(version)

    def ping(self) -> bool:
        return True


class RedisStore:
    """States in Redis, one binary value per session under ``prefix + session id``, expiring
    ``ttl`` seconds after the session's last event. Several processes or machines serving one
    model share it. The bound on sessions is Redis's own (``maxmemory`` with an LRU policy).

    The item ids of the model version this store's user serves (:meth:`put_items`) are written
    with its first states and kept ``2 * ttl``, longer than any state of that version: every
    ``ttl / 2`` seconds a write renews their time-to-live, and writes them again where Redis
    lost them.

    Parameters
    ----------
    url : str
        A Redis URL, e.g. ``redis://127.0.0.1:6379/0``.
    ttl : float, default=1800
    prefix : str, default="gru4rec:"
    timeout : float, default=0.5
        Seconds to wait on the server before a call fails with :class:`StoreUnavailable`.
    """

    def __init__(
        self,
        url: str,
        ttl: float = 1800.0,
        prefix: str = "gru4rec:",
        timeout: float = 0.5,
        client: Any = None,
    ) -> None:
        import redis

        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds; got {ttl!r}")
        self.url = url
        self.ttl = ttl
        self.prefix = prefix
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._client = client or redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._items: tuple[bytes, bytes] | None = None  # (key, value) to keep written
        self._items_written, self._items_due = False, 0.0

    def _items_key(self, version: bytes) -> bytes:
        # A byte 0xff never occurs in UTF-8, so no session's key (prefix + id) is this one.
        return self.prefix.encode() + b"\xffitems:" + version.hex().encode()

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except self._errors as error:
            self._items_due = 0.0  # a server back from a restart may have lost them: look
            raise StoreUnavailable(
                f"the Redis server at {self.url} is unavailable: {error}"
            ) from None

    def get_many(self, keys: Sequence[str]) -> list[SessionState | None]:
        blobs = self._call(self._client.mget, [self.prefix + k for k in keys])
        return [None if b is None else decode(b) for b in blobs]

    def put_many(self, states: dict[str, SessionState]) -> None:
        ms = max(1, int(self.ttl * 1000))
        items = self._items if time.monotonic() >= self._items_due else None

        if len(states) == 1 and items is None:  # one event: one SET, no pipeline to build
            ((key, state),) = states.items()
            blob = encode(state)
            self._call(lambda: self._client.set(self.prefix + key, blob, px=ms))
            return

        def write():
            pipe = self._client.pipeline(transaction=False)
            for key, state in states.items():
                pipe.set(self.prefix + key, encode(state), px=ms)
            if items is not None:  # the item ids once, then only their time-to-live renewed
                if self._items_written:
                    pipe.pexpire(items[0], 2 * ms)
                else:
                    pipe.set(items[0], items[1], px=2 * ms)
            return pipe.execute()

        done = self._call(write)
        if items is not None:
            if not done[-1]:  # gone from Redis (evicted, or a server restarted empty)
                self._call(lambda: self._client.set(items[0], items[1], px=2 * ms))
            self._items_written = True
            self._items_due = time.monotonic() + self.ttl / 2

    def put_items(self, version: bytes, ids: np.ndarray | None, n_items: int) -> None:
        """Keep the item ids of model ``version`` (in index order; None for a model fitted on
        indices) written beside the states from the next write on (no call to the server
        here)."""
        self._items = (self._items_key(version), encode_items(ids, n_items))
        self._items_written, self._items_due = False, 0.0

    def get_items(self, version: bytes) -> tuple[np.ndarray | None, int] | None:
        """``(ids, n_items)`` of model ``version`` as a worker serving it wrote them; None
        when none did (yet) or they are gone."""
        blob = self._call(self._client.get, self._items_key(version))
        return None if blob is None else decode_items(blob)

    def delete(self, key: str) -> bool:
        return bool(self._call(self._client.delete, self.prefix + key))

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except self._errors:
            return False

    def __len__(self) -> int:
        keys = self._call(lambda: list(self._client.scan_iter(self.prefix + "*")))
        items = self.prefix.encode() + b"\xff"
        return sum(1 for key in keys if not key.startswith(items))
