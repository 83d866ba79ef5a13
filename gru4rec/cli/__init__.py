"""The command line: train, evaluate, recommend and demo.

::

    python -m gru4rec train EVENTS.csv --model model.trch [--loss-fn cross-entropy ...]
    python -m gru4rec evaluate EVENTS.csv --model model.trch
    python -m gru4rec recommend SESSIONS.csv --model model.trch -k 20 --out recs.csv
    python -m gru4rec demo

Event files are CSV/TSV with a header holding ``session_id``, ``item_id`` and ``timestamp``
(other names with ``--session-col``/``--item-col``/``--time-col``; ``--time-col none`` uses the
file order within each session). Every estimator parameter is an option of ``train``, generated
from the declaration :mod:`gru4rec.parameters` (the estimators' signatures); unset ones take
the value of ``--preset`` (:mod:`gru4rec.presets`; ``rsc15-best`` unless told otherwise),
``train`` and ``demo`` alike.
Bad input ends with a one-line message on stderr and exit status 2; Ctrl-C with 130, except
in ``train`` before its first epoch completed: 3, and nothing written (see :func:`main`); a
closed output pipe (``| head``) quietly with 141. Torch runs on ``--threads`` CPU threads
(default 1).

The package's modules: :mod:`~gru4rec.cli.options` (estimator parameters and presets as
options, the shared options and converters), :mod:`~gru4rec.cli.io` (event files, item ids
matched to a model's vocabulary, model files, warnings), :mod:`~gru4rec.cli.train` (``train``,
``update``, ``demo``), :mod:`~gru4rec.cli.score` (``evaluate``, ``recommend``),
:mod:`~gru4rec.cli.serve` and :mod:`~gru4rec.cli.status` (the exit statuses); this module
builds the parser and runs a command.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from .. import presets
from .io import _warn
from .options import (
    _PRESET,
    _SAVED_MODEL,
    ESTIMATORS,
    _add_estimator_options,
    _arg,
    _command,
    _Parser,
    _positive_int,
)
from .options import _estimator_signature as _estimator_signature  # read by the tests
from .score import _evaluate, _recommend
from .serve import _add_serve
from .status import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NOTHING_SAVED, EXIT_PIPE_CLOSED
from .train import DEMO_PARAMS, _demo, _train, _update

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_NOTHING_SAVED",
    "EXIT_PIPE_CLOSED",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``gru4rec`` argument parser with its sub-commands."""
    from .. import __version__

    parser = _Parser(
        prog="gru4rec",
        description="GRU4Rec session-based recommendation from the shell.",
        epilog="Run 'gru4rec COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"gru4rec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = _command(
        sub,
        "train",
        "fit a model on an event CSV and save it",
        "Fit GRU4Rec on the sessions of an event file and save the model. Unset options take "
        f"the values of --preset (default {presets.DEFAULT}). "
        "Example: gru4rec train train.csv --model model.trch --preset diginetica-best "
        "--max-epochs 5",
        _arg("events", help="training events (CSV/TSV with a header)"),
        _arg("--model", required=True, help="where to write the fitted model"),
        _PRESET,
        _arg(
            "--estimator",
            choices=sorted(ESTIMATORS),
            default="neg-sampling",
            help="GRU4RecNegSampling (sampled losses) or GRU4RecCrossEntropy (full softmax)",
        ),
        _arg(
            "--validation",
            metavar="EVENTS",
            help="validation sessions: the last item of each is held out and scored per epoch "
            "with --stopping-criterion; the best epoch is kept unless --keep-last",
        ),
        func=_train,
        quiet_help="no progress bar or summary lines",
    )
    _add_estimator_options(train, shown_defaults=presets.get(presets.DEFAULT))

    _command(
        sub,
        "update",
        "train a saved model further on new events and save it",
        "Load a model, train it further on the sessions of an event file and save it: the "
        "daily job of keeping a model fresh. Items the model has not seen get new rows; the "
        "known ones keep theirs. The model's own settings are used. Example: gru4rec update "
        "today.csv --model yesterday.trch --out today.trch",
        _arg("events", help="new training events (CSV/TSV with a header)"),
        _arg("--model", required=True, help="the model to update (written by train or update)"),
        _arg("--out", required=True, help="where to write the updated model (may be --model)"),
        _arg(
            "--epochs",
            type=_positive_int,
            default=None,
            help="passes over the new events (default: the model's max_epochs)",
        ),
        _arg(
            "--count-decay",
            type=float,
            default=1.0,
            help="weight of the earlier event counts in the negative sampler's distribution "
            "(1: all events so far; 0: the new events alone)",
        ),
        func=_update,
    )

    _command(
        sub,
        "evaluate",
        "Recall@K / MRR@K of a saved model on an event CSV",
        "Predict the next item at every position of every session (the state "
        "starting from zero per session), rank it against the whole catalogue with "
        "conservative ties and print Recall@K and MRR@K. Events with items the model "
        "does not know are dropped (the session goes on from its previous known item).",
        _arg("events", help="test events (CSV/TSV with a header)"),
        _SAVED_MODEL,
        _arg("-k", type=_positive_int, nargs="+", default=[20], help="cut-off(s) of the metrics"),
        _arg("--last-only", action="store_true", help="only each session's last item"),
        _arg("--ndcg", action="store_true", help="also print NDCG@K"),
        _arg("--json", action="store_true", help="print one JSON object"),
        func=_evaluate,
    )

    _command(
        sub,
        "recommend",
        "top-k next items for each session of a CSV",
        "For every session, the k items scoring best after its last event, in the "
        "model's own item ids. Writes CSV rows session_id,rank,item_id,score (best first). "
        "Items already in the session are kept unless --exclude-seen (people do go back to "
        "an item, and the evaluation counts it).",
        _arg("sessions", help="session events (CSV/TSV with a header)"),
        _SAVED_MODEL,
        _arg("-k", type=int, default=20, help="recommendations per session"),
        _arg("--out", help="output CSV (default: standard output)"),
        _arg(
            "--exclude-seen", action="store_true", help="leave out the items already in the session"
        ),
        _arg("--items", help="rank among these items only (a file of ids, one a line)"),
        _arg("--filter-items", help="never recommend these items (a file of ids, one a line)"),
        func=_recommend,
    )

    demo = _command(
        sub,
        "demo",
        "train and evaluate on generated sessions (or an event CSV)",
        "Train on generated sessions (or an event file split by time) and print "
        "Recall@20 / MRR@20 next to a popularity baseline. Takes train's options and "
        f"defaults (--preset {presets.DEFAULT}), with --seed 0.",
        _arg(
            "events", nargs="?", help="events (CSV/TSV with a header; default: generated sessions)"
        ),
        _PRESET,
        _arg("--sessions", type=_positive_int, default=3000, help="generated sessions"),
        _arg("--items", type=_positive_int, default=1000, help="generated items"),
        _arg(
            "--test-share",
            type=float,
            default=0.1,
            help="the test set: sessions starting in this last share of the span of session starts",
        ),
        func=_demo,
    )
    _add_estimator_options(demo, shown_defaults={**presets.get(presets.DEFAULT), **DEMO_PARAMS})
    _add_serve(sub)
    return parser


def _stdout_closed() -> int:
    """The reader of our output went away (``... | head``): stop quietly, as Unix tools do."""
    # Python would report the broken pipe again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured in tests)
        pass
    finally:
        os.close(devnull)
    return EXIT_PIPE_CLOSED  # killed by SIGPIPE (128 + 13), as the shell reports it


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0 on success, 2 on bad input, 130 when interrupted with Ctrl-C (``train`` first saves the
    model of its last completed epoch, or of the best one with ``--validation``), 3 when
    ``train`` is interrupted before its first epoch completed (nothing is written: an existing
    ``--model`` file keeps its bytes), 141 when the output pipe closes early.
    """
    given = list(sys.argv[1:] if argv is None else argv)
    command = given[0] if given else None
    try:
        parser = build_parser()
        if command and command not in ("train", "update", "evaluate", "recommend", "demo", "serve"):
            if os.path.isfile(command):
                # A data file where the command goes: say which commands take one.
                parser.error(
                    f"{command!r} is a file, not a command; e.g. 'gru4rec demo {command}' or "
                    f"'gru4rec train {command} --model model.trch'"
                )
        args = parser.parse_args(given)
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *rest, **kw: _warn(str(message))
            return _run(args)
    except KeyboardInterrupt:
        return _interrupted(command, given)


def _run(args: argparse.Namespace) -> int:
    """``args.func(args)``, with the errors a user can act on as one line and a status."""
    try:
        return args.func(args)
    except BrokenPipeError:
        return _stdout_closed()
    except (ValueError, OSError, FloatingPointError, KeyError, SystemError) as exc:
        if isinstance(exc, SystemError):
            from ..trainer import caused_by_interrupt

            if not caused_by_interrupt(exc):  # a Ctrl-C inside compiled code, else a bug
                raise
            raise KeyboardInterrupt from exc
        text = str(exc).strip().splitlines()
        first = text[0] if text else type(exc).__name__
        if isinstance(exc, KeyError):
            first = f"missing {first}"
        elif isinstance(exc, OSError) and exc.strerror and exc.filename:
            first = f"{exc.filename}: {exc.strerror}"
        print(f"gru4rec: error: {first}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _interrupted(command: str | None, given: list[str]) -> int:
    """Say what a Ctrl-C that no command handled left behind; the exit status."""
    if command != "train":
        print("gru4rec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    model = next((given[i + 1] for i, a in enumerate(given[:-1]) if a == "--model"), None)
    model = model or next((a.split("=", 1)[1] for a in given if a.startswith("--model=")), None)
    left = f"; {model} is unchanged" if model and os.path.exists(model) else ""
    print(
        f"gru4rec: interrupted before the first epoch completed: no model was saved{left}",
        file=sys.stderr,
    )
    return EXIT_NOTHING_SAVED
