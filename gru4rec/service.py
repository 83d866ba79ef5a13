"""An HTTP service over :class:`~gru4rec.sessions.LiveSessions` (Starlette under uvicorn).

Endpoints (JSON in and out):

- ``POST /sessions/{session}/events`` ``{"item": ..., "k": 20, "exclude_seen": false,
  "items": [...], "filter_items": [...]}``: push one event, get the top-k with scores;
- ``GET /sessions/{session}``: the top-k of the session's state, without an event;
- ``DELETE /sessions/{session}``: end a session;
- ``POST /recommend`` ``{"session": [...], "k": 20, ...}``: the top-k of a whole session,
  statelessly;
- ``POST /reload`` ``{"path": "..."}`` (optional): load a model file again (or another one);
- ``GET /health``, ``GET /ready``, ``GET /metrics`` (Prometheus text format; with several
  workers the totals of all of them, shared through ``PROMETHEUS_MULTIPROC_DIR``, or a warning
  that they are one worker's counts where that directory is missing).

The model file is also watched: a new file (after a nightly update) is loaded without a
restart, in every worker process, and the sessions in flight keep their states when the
network has the same shape. A file that fails to load leaves the old model serving.
Needs the ``serve`` extra (``pip install gru4rec[serve]``).
"""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import estimator as estimators
from .checkpoint import load_checkpoint
from .sessions import LiveSessions
from .state_store import MemoryStore, RedisStore, StoreUnavailable

__all__ = ["ServiceConfig", "create_app", "load_model"]

logger = logging.getLogger(__name__)

_CLASSES = ("GRU4RecNegSampling", "GRU4RecCrossEntropy")
_ENV = "GRU4REC_SERVE_CONFIG"
_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
_IDS = (str, int, float)  # what JSON gives an item id as
_NONE = object()
_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)


@dataclass
class ServiceConfig:
    """What ``gru4rec serve`` starts a service with.

    Parameters
    ----------
    model_path : str
        The saved model (``save`` / ``gru4rec train``).
    redis_url : str, optional
        Keep the session states in this Redis (needed when several workers serve one model);
        default: in this process's memory.
    k, max_k : int
        The default and the largest ``k`` a request may ask for.
    ttl : float
        Seconds an idle session is kept.
    max_sessions : int
        Sessions held in memory at most (the in-memory store's bound).
    watch_seconds : float
        How often the model file is checked for a new version (0: never).
    num_threads : int
        Torch threads per worker.
    scoring : str
        ``"exact"`` or ``"int8"`` (see :class:`~gru4rec.sessions.LiveSessions`).
    """

    model_path: str
    redis_url: str | None = None
    k: int = 20
    max_k: int = 1000
    ttl: float = 1800.0
    max_sessions: int = 1_000_000
    watch_seconds: float = 2.0
    num_threads: int = 1
    scoring: str = "exact"

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls) -> ServiceConfig:
        return cls(**json.loads(os.environ[_ENV]))


def load_model(path: str) -> Any:
    """The fitted estimator saved in ``path``, of the class recorded there."""
    _, meta = load_checkpoint(path)
    name = meta.get("class")
    if name not in _CLASSES:
        raise ValueError(f"{path}: not a model of this package (class {name!r})")
    return getattr(estimators, name)().load(path)


class _BadRequest(Exception):
    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class _Service:
    """The state of one worker (the live sessions, the model file's stamp, the metrics) and
    the request handlers over it."""

    def __init__(self, config: ServiceConfig) -> None:
        import prometheus_client as prom
        import torch

        torch.set_num_threads(config.num_threads)
        self.config = config
        model = load_model(config.model_path)
        store = (
            RedisStore(config.redis_url, ttl=config.ttl)
            if config.redis_url
            else MemoryStore(config.ttl, config.max_sessions)
        )
        self.live = LiveSessions(model, k=config.k, store=store, scoring=config.scoring)
        self.stamp = _stamp(config.model_path)
        self.reloads = 0
        self.metrics_dir = _metrics_dir()
        live = self.metrics_dir is not None
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "gru4rec_requests",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "gru4rec_request_seconds",
            "Request latency in the service, by endpoint",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.unknown = prom.Counter(
            "gru4rec_unknown_items",
            "Events whose item the model does not know",
            registry=self.registry,
        )
        # Gauges of several workers add up over the live ones (a dead worker's value goes).
        gauge = dict(registry=self.registry, multiprocess_mode="livesum")
        prom.Gauge("gru4rec_workers", "Live worker processes counted here", **gauge).set(1)
        self.partial = prom.Gauge(
            "gru4rec_metrics_partial",
            f"1: other workers serve this socket and these counts are this worker's alone "
            f"(set {_MULTIPROC} to a directory shared by the workers)",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self._next_check, self._workers = 0.0, 1
        self.sessions = None
        if isinstance(store, MemoryStore):  # Redis holds the sessions of all workers
            self.sessions = prom.Gauge("gru4rec_sessions", "Sessions held in memory", **gauge)
            if live:  # written to the shared files after each request
                self.sessions.set(0)
            else:
                self.sessions.set_function(lambda: len(store))

    def reload(self, path: str | None = None) -> dict[str, Any]:
        """Load the model file (again); the old model keeps serving when it fails."""
        path = path or self.config.model_path
        stamp = _stamp(path)
        model = load_model(path)  # raises before anything changes
        carried = self.live.reload(model)
        self.config.model_path, self.stamp = path, stamp
        self.reloads += 1
        self.publish_items()
        return {"reloaded": True, "states_carried": carried, "version": self.live.version.hex()}

    def publish_items(self) -> None:
        """Write the model's item ids to the state store now (a large catalogue's are
        megabytes), not with the first event's state."""
        try:
            self.live.store.put_many({})
        except StoreUnavailable:  # written with the first state once the store is back
            pass

    def watch(self) -> None:
        """Reload when the model file has changed; keep serving the old model on failure."""
        stamp = _stamp(self.config.model_path)
        if stamp is not None and stamp != self.stamp:
            try:
                self.reload()
            except Exception as error:  # a half-written or bad file: keep the old model
                self.stamp = stamp
                warnings.warn(
                    f"{self.config.model_path}: reload failed, the old model keeps serving: "
                    f"{error}",
                    stacklevel=1,
                )

    def timed(self, endpoint: str, handler):
        """``handler`` counted and timed under ``endpoint``, its errors answered as JSON."""
        from starlette.responses import JSONResponse

        observe = self.latency.labels(endpoint).observe
        counters: dict[int, Any] = {}

        async def run(request: Any) -> Any:
            start = time.perf_counter()
            try:
                response = await handler(request)
            except _BadRequest as error:
                body = {"error": str(error)}
                if error.field:
                    body["field"] = error.field
                response = JSONResponse(body, status_code=error.status)
            except StoreUnavailable as error:
                response = JSONResponse({"error": str(error)}, status_code=503)
            except Exception as error:  # a bug, not the request's fault: say so, keep serving
                message = f"internal error: {type(error).__name__}: {error}"
                response = JSONResponse({"error": message}, status_code=500)
            status = response.status_code
            if status not in counters:
                counters[status] = self.requests.labels(endpoint, str(status))
            counters[status].inc()
            observe(time.perf_counter() - start)
            if self.sessions is not None and self.metrics_dir is not None:
                self.sessions.set(len(self.live.store))
            return response

        return run

    async def push(self, request: Any) -> Any:
        body = await _body(request)
        if "item" not in body:
            raise _BadRequest("missing field 'item': the item of the event", "item")
        if isinstance(body["item"], bool) or not isinstance(body["item"], _IDS):
            raise _BadRequest(
                f"field 'item' must be an item id (a string or a number); got "
                f"{_json_type(body['item'])}",
                "item",
            )
        session = request.path_params["session"]
        options = _options(body, self.config)
        filtered = options["items"] is not None or options["filter_items"] is not None
        # Only the filters warn (of unknown ids); the plain event skips the warnings machinery.
        with warnings.catch_warnings(record=True) if filtered else _NoWarnings() as caught:
            if filtered:
                warnings.simplefilter("always")
            try:
                rec = self.live.push(session, body["item"], **options)
            except ValueError as error:  # e.g. ids of a model fitted on indices
                raise _BadRequest(str(error)) from None
        if not rec.known:
            self.unknown.inc()
        return _json(_result(session, rec, caught))

    async def state(self, request: Any) -> Any:
        session = request.path_params["session"]
        options = _options(dict(request.query_params), self.config, query=True)
        rec = self.live.recommend(session, **options)
        return _json(_result(session, rec, []))

    async def end(self, request: Any) -> Any:
        return _json({"ended": self.live.end(request.path_params["session"])})

    async def recommend(self, request: Any) -> Any:
        body = await _body(request)
        if "session" not in body:
            raise _BadRequest(
                "missing field 'session': the session's items, oldest first", "session"
            )
        items = body["session"]
        _check_ids(items, "session")
        options = _options(body, self.config)
        model = self.live.model
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ids, scores = model.recommend(
                    items,
                    k=options["k"],
                    exclude_seen=options["exclude_seen"],
                    items=options["items"],
                    filter_items=options["filter_items"],
                )
            except ValueError as error:
                raise _BadRequest(str(error), "session") from None
        return _json(
            {
                **_ranked(ids, scores),
                "warnings": [str(w.message) for w in caught],
            }
        )

    async def reload_request(self, request: Any) -> Any:
        body = await _body(request, optional=True)
        path = body.get("path")
        if path is not None and not isinstance(path, str):
            raise _BadRequest("field 'path' must be a file path", "path")
        try:  # loaded in a thread: the old model answers meanwhile
            return _json(await asyncio.to_thread(self.reload, path))
        except Exception as error:  # the old model keeps serving
            return _json({"reloaded": False, "error": f"{type(error).__name__}: {error}"}, 500)

    async def health(self, request: Any) -> Any:
        return _json({"status": "ok"})

    async def ready(self, request: Any) -> Any:
        if not self.live.store.ping():
            return _json({"ready": False, "error": "the session store is unavailable"}, 503)
        return _json(
            {
                "ready": True,
                "version": self.live.version.hex(),
                "reloads": self.reloads,
                "worker": os.getpid(),
            }
        )

    async def metrics(self, request: Any) -> Any:
        import prometheus_client as prom
        from starlette.responses import Response

        if self.metrics_dir is not None:  # several workers: the totals of all of them
            from prometheus_client import multiprocess

            _forget_dead_workers(self.metrics_dir)
            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.metrics_dir)
            return Response(prom.generate_latest(registry), media_type=prom.CONTENT_TYPE_LATEST)
        partial = await asyncio.to_thread(self._check_alone)
        text = prom.generate_latest(self.registry)
        if partial:
            text = f"# WARNING: {_partial_message(self._workers)}\n".encode() + text
        return Response(text, media_type=prom.CONTENT_TYPE_LATEST)

    def _check_alone(self) -> bool:
        """Whether other worker processes serve this one's socket (the counts here are then
        this worker's alone); checked at most once a minute, warned of once."""
        now = time.monotonic()
        if now >= self._next_check:
            workers = _workers_sharing_socket()
            if workers is None:  # no listening socket (yet), or no /proc: ask again soon
                self._next_check = now + 5.0
                return self._workers > 1
            self._next_check = now + 60.0
            before, self._workers = self._workers, workers
            self.partial.set(self._workers > 1)
            if self._workers > 1 and before == 1:
                logger.warning("%s", _partial_message(self._workers))
        return self._workers > 1

    @asynccontextmanager
    async def lifespan(self, app: Any):
        """Watch the model file while the application runs; say at once when the metrics
        will be one worker's of several."""
        await asyncio.to_thread(self.publish_items)
        tasks = []
        if self.config.watch_seconds > 0:

            async def watch():
                while True:
                    await asyncio.sleep(self.config.watch_seconds)
                    await asyncio.to_thread(self.watch)

            tasks.append(asyncio.create_task(watch()))
        if self.metrics_dir is None:

            async def check():  # once the server listens (its workers get the socket late)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(self._check_alone)

            tasks.append(asyncio.create_task(check()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if self.metrics_dir is not None:
                _mark_dead(self.metrics_dir)


class _NoWarnings:
    def __enter__(self) -> list:
        return []

    def __exit__(self, *exc: Any) -> None:
        return None


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _metrics_dir() -> str | None:
    """The directory the workers' metrics are shared through (prometheus_client's
    multiprocess mode), or None: this process reports its own counts."""
    from prometheus_client import values

    directory = os.environ.get(_MULTIPROC) or os.environ.get(_MULTIPROC.lower())
    if not directory:
        return None
    if values.ValueClass is values.MutexValue:
        logger.warning(
            "%s is set, but prometheus_client was imported before it was: this worker's "
            "metrics stay in the process and /metrics gives its counts alone; set %s before "
            "the server starts",
            _MULTIPROC,
            _MULTIPROC,
        )
        return None
    os.makedirs(directory, exist_ok=True)
    import atexit

    atexit.register(_mark_dead, directory)  # where the lifespan's end does not run
    return directory


def _mark_dead(directory: str, pid: int | None = None) -> None:
    """Drop a worker's live gauges from the shared directory (its counts stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid() if pid is None else pid, directory)


def _forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of workers that died without saying so (killed, crashed)."""
    pids = set()
    for name in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(name)[: -len(".db")].rsplit("_", 1)[-1]
        if pid.isdigit():
            pids.add(int(pid))
    for pid in pids:
        if not _alive(pid):
            _mark_dead(directory, pid)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, another user's
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _partial_message(workers: int) -> str:
    return (
        f"this worker is one of {workers} processes serving one socket, and {_MULTIPROC} is "
        f"not set: /metrics gives the counts of whichever worker answers the scrape, not the "
        f"totals; set {_MULTIPROC} to an empty directory shared by the workers before the "
        f"server starts"
    )


def _socket_inodes(pid: int | str) -> set[str]:
    inodes = set()
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listening_inodes() -> set[str]:
    inodes = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{name}") as f:
                rows = [line.split() for line in f.readlines()[1:]]
        except OSError:
            continue
        inodes.update(row[9] for row in rows if len(row) > 9 and row[3] == "0A")
    try:
        with open("/proc/net/unix") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        inodes.update(row[6] for row in rows if len(row) > 6 and row[3] == "00010000")
    except OSError:
        pass
    return inodes


def _workers_sharing_socket() -> int | None:
    """The processes that accept on one of this process's listening sockets (this one
    included, the supervisor that opened it for them not): the workers of one server, as
    uvicorn's ``--workers`` and gunicorn run them. None where ``/proc`` cannot tell."""
    try:
        own = _socket_inodes("self") & _listening_inodes()
    except OSError:
        return None
    if not own:
        return None
    parent, count = os.getppid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == parent:
            continue
        try:
            count += bool(_socket_inodes(entry) & own)
        except OSError:  # gone, or another user's
            continue
    return max(count, 1)


def _json(body: dict[str, Any], status: int = 200) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status)


def create_app(config: ServiceConfig | None = None):
    """The Starlette application of the service (``config`` None: from the environment that
    ``gru4rec serve`` sets for its workers)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    service = _Service(config or ServiceConfig.from_env())
    timed = service.timed
    routes = [
        Route("/sessions/{session}/events", timed("event", service.push), methods=["POST"]),
        Route("/sessions/{session}", timed("state", service.state), methods=["GET"]),
        Route("/sessions/{session}", timed("end", service.end), methods=["DELETE"]),
        Route("/recommend", timed("recommend", service.recommend), methods=["POST"]),
        Route("/reload", timed("reload", service.reload_request), methods=["POST"]),
        Route("/health", service.health, methods=["GET"]),
        Route("/ready", service.ready, methods=["GET"]),
        Route("/metrics", service.metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=service.lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.service = service
    return app


async def _not_found(request: Any, error: Any) -> Any:
    """Unknown paths and methods answered in JSON too, the way to spell a session's path said."""
    message = f"no endpoint {request.method} {request.url.path}"
    if request.url.path.startswith("/sessions/"):
        message += (
            "; session paths are /sessions/{id} and /sessions/{id}/events, the id one path "
            "segment (percent-encoded, without '/')"
        )
    from starlette.responses import JSONResponse

    headers = getattr(error, "headers", None)  # a 405's Allow
    return JSONResponse({"error": message}, status_code=error.status_code, headers=headers)


def _json_type(value: Any) -> str:
    names = {bool: "true/false", type(None): "null", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


async def _body(request: Any, optional: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw and optional:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise _BadRequest(f"the request body is not valid JSON: {error}", status=400) from None
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object", status=400)
    return body


def _options(body: dict[str, Any], config: ServiceConfig, query: bool = False) -> dict[str, Any]:
    """``k``, ``exclude_seen`` and the filters of a request, checked, naming the field."""
    k = body.get("k", config.k)
    if query and isinstance(k, str):
        k = int(k) if re.fullmatch(r"[+-]?[0-9]{1,18}", k) else k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= config.max_k:
        raise _BadRequest(f"field 'k' must be an integer from 1 to {config.max_k}; got {k!r}", "k")
    exclude = body.get("exclude_seen", False)
    if query and isinstance(exclude, str):
        exclude = {"true": True, "1": True, "false": False, "0": False}.get(
            exclude.lower(), exclude
        )
    if not isinstance(exclude, bool):
        raise _BadRequest(
            f"field 'exclude_seen' must be true or false; got {exclude!r}", "exclude_seen"
        )
    filters = {}
    for name in ("items", "filter_items"):
        value = None if query else body.get(name)
        if value is not None:
            _check_ids(value, name)
        filters[name] = value
    return {"k": k, "exclude_seen": exclude, **filters}


def _check_ids(value: Any, name: str) -> None:
    """A 422 naming field ``name`` unless it is a list of item ids (strings or numbers)."""
    if not isinstance(value, list):
        raise _BadRequest(
            f"field {name!r} must be a list of item ids; got {_json_type(value)}", name
        )
    bad = next((v for v in value if isinstance(v, bool) or not isinstance(v, _IDS)), _NONE)
    if bad is not _NONE:
        raise _BadRequest(
            f"field {name!r} must be a list of item ids (strings or numbers); it holds "
            f"{_json_type(bad)}",
            name,
        )


def _ranked(ids: Any, scores: Any) -> dict[str, list]:
    """The top-k as JSON lists, without the places no candidate filled (score -inf: fewer
    candidates than k were left), which JSON could not carry."""
    keep = np.isfinite(scores)
    if not keep.all():
        ids, scores = ids[keep], scores[keep]
    return {"items": ids.tolist(), "scores": scores.tolist()}


def _result(session: str, rec: Any, caught: list) -> dict[str, Any]:
    return {
        "session": session,
        **_ranked(rec.items, rec.scores),
        "known": rec.known,
        "restarted": rec.restarted,
        "warnings": [str(w.message) for w in caught],
    }


def serve(
    config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> None:
    """Run the service under uvicorn (``workers`` processes; more than one needs Redis so that
    a session's events may reach any of them)."""
    import uvicorn

    if workers > 1 and not config.redis_url:
        raise ValueError(
            "--workers above 1 needs --redis: each worker would hold its own sessions otherwise"
        )
    load_model(config.model_path)  # fail here, with the file's name, not in every worker
    os.environ[_ENV] = config.to_env()
    own_dir = None
    if workers > 1:  # the workers' metrics add up through files in one directory
        given = os.environ.get(_MULTIPROC) or os.environ.get(_MULTIPROC.lower())
        if given and glob.glob(os.path.join(given, "*.db")):
            logger.warning(
                "%s=%s holds the metrics of an earlier run: their counts add to this run's; "
                "empty it between runs",
                _MULTIPROC,
                given,
            )
        if not given:
            own_dir = tempfile.mkdtemp(prefix="gru4rec-metrics-")
            os.environ[_MULTIPROC] = own_dir
    try:
        uvicorn.run(
            "gru4rec.service:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if own_dir is not None:
            del os.environ[_MULTIPROC]
            shutil.rmtree(own_dir, ignore_errors=True)
