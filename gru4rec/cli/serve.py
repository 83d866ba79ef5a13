"""``gru4rec serve``: the HTTP service over a saved model (:mod:`gru4rec.service`)."""

from __future__ import annotations

import argparse
from typing import Any

from .options import _HelpFormatter, _positive_int


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="an HTTP service of live sessions over a saved model",
        description="Serve a saved model over HTTP: push a session's events one at a time and "
        "get the top-k back (the session's state is kept), recommend for whole sessions, "
        "reload the model file when it changes. Needs the 'serve' extra.",
        formatter_class=_HelpFormatter,
    )
    serve.add_argument("model", help="a model written by 'train'")
    serve.add_argument("--redis", help="keep session states in this Redis URL (several workers)")
    serve.add_argument("--workers", type=_positive_int, default=1, help="worker processes")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("-k", type=_positive_int, default=20, help="default recommendations")
    serve.add_argument("--ttl", type=float, default=1800.0, help="seconds an idle session is kept")
    serve.add_argument(
        "--max-sessions", type=_positive_int, default=1_000_000, help="sessions held in memory"
    )
    serve.add_argument("--threads", type=_positive_int, default=1, help="torch threads per worker")
    serve.add_argument(
        "--scoring",
        choices=["exact", "int8"],
        default="exact",
        help="int8: an int8 first pass over the catalogue, the best k + 64 scored exactly",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"serve needs the 'serve' extra (pip install gru4rec[serve]): {error}"
        ) from None
    from .. import service

    config = service.ServiceConfig(
        args.model,
        redis_url=args.redis,
        k=args.k,
        ttl=args.ttl,
        max_sessions=args.max_sessions,
        num_threads=args.threads,
        scoring=args.scoring,
    )
    service.serve(config, args.host, args.port, args.workers)
    return 0
