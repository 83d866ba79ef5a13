"""The command line: train, evaluate, recommend and demo.

::

    python -m gru4rec train EVENTS.csv --model model.trch [--loss-fn cross-entropy ...]
    python -m gru4rec evaluate EVENTS.csv --model model.trch
    python -m gru4rec recommend SESSIONS.csv --model model.trch -k 20 --out recs.csv
    python -m gru4rec demo

Event files are CSV/TSV with a header holding ``session_id``, ``item_id`` and ``timestamp``
(other names with ``--session-col``/``--item-col``/``--time-col``; ``--time-col none`` uses the
file order within each session). Every estimator parameter is an option of ``train``, generated
from :meth:`GRU4RecNegSampling.get_params`; unset ones take the value of ``--preset``
(:mod:`gru4rec.presets`; ``rsc15-best`` unless told otherwise), ``train`` and ``demo`` alike.
Bad input ends with a one-line message on stderr and exit status 2; Ctrl-C with 130, except
in ``train`` before its first epoch completed: 3, and nothing written (see :func:`main`); a
closed output pipe (``| head``) quietly with 141. Torch runs on ``--threads`` CPU threads
(default 1).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import defaults as package_defaults
from . import presets
from .checks import is_int

__all__ = ["build_parser", "main"]

ESTIMATORS = {"neg-sampling": "GRU4RecNegSampling", "cross-entropy": "GRU4RecCrossEntropy"}

#: Exit statuses (docs/cli.rst).
EXIT_BAD_INPUT = 2
#: ``train`` interrupted before its first epoch completed: no model written.
EXIT_NOTHING_SAVED = 3
#: Interrupted; ``train`` saved the model of its last completed (or best) epoch first.
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null"}


# -- estimator parameters as options -------------------------------------------------------------


def _param_docs(doc: str) -> dict[str, str]:
    """One line per parameter from a class's numpydoc docstring ``doc``.

    The first sentence of the description, else the type line without its default.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = lines.index("Parameters") + 2
    except ValueError:
        return {}
    types_: dict[str, str] = {}
    texts: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            if " : " not in line:  # the next section
                break
            head, kind = line.split(" : ", 1)
            names = [n.strip() for n in head.split(",")]
            for n in names:
                types_[n] = kind.split(", default")[0].strip()
                texts[n] = ""
        elif line.strip() and names:
            for n in names:
                texts[n] = (texts[n] + " " + line.strip()).strip()
    docs = {}
    for n, kind in types_.items():
        text = texts[n].split(". ")[0].rstrip(".")
        if kind.startswith("{"):  # the allowed values
            text = f"{text}: {kind}" if text else kind
        text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
        docs[n] = text.replace("``", "")
    return docs


class _Types(dict):
    """Names in a parameter's annotation: the builtin types; anything else is ``object``."""

    def __missing__(self, name: str) -> Any:
        return {"int": int, "float": float, "str": str, "bool": bool, "None": None}.get(
            name, object
        )


def _estimator_signature(
    name: str = "GRU4RecNegSampling",
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The constructor parameters of the estimator class ``name`` with their defaults, their
    type hints and the class's docstring.

    Read from the estimator module's source, without importing it: the options of ``train``
    and ``demo`` are built for every ``--help``, which should not wait seconds for torch and
    scikit-learn. Where the source cannot be read, the class is imported.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec(f"{__package__}.estimator")
    try:
        with open(spec.origin, encoding="utf-8") as f:  # type: ignore[union-attr, arg-type]
            tree = ast.parse(f.read())
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
        init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        args = init.args.args[1:]  # without self
        # A default is a literal or a name from the torch-free ``defaults`` module.
        values = [
            getattr(package_defaults, d.id) if isinstance(d, ast.Name) else ast.literal_eval(d)
            for d in init.args.defaults
        ]
        defaults = dict(zip([a.arg for a in args][-len(values) :], values, strict=True))
        # The annotations are this package's own source: type names, no calls.
        hints = {
            a.arg: eval(ast.unparse(a.annotation), {"__builtins__": {}}, _Types()) for a in args
        }
        return defaults, hints, ast.get_docstring(cls) or ""
    except (OSError, TypeError, ValueError, StopIteration, SyntaxError, AttributeError):
        from . import estimator

        real = getattr(estimator, name)
        defaults = real().get_params(deep=False)
        order = [p for p in inspect.signature(real.__init__).parameters if p != "self"]
        hints = typing.get_type_hints(real.__init__)
        return {p: defaults[p] for p in order}, hints, real.__doc__ or ""


def _converter(name: str, hint: Any, default: Any) -> tuple[Callable[[str], Any], str]:
    """A string -> value parser for a parameter of type ``hint``, and its metavar."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = set(typing.get_args(hint))
    elif isinstance(hint, type):
        kinds = {hint}
    else:
        kinds = {type(default)} if default is not None else {str}
    allows_none = type(None) in kinds

    def convert(text: str) -> Any:
        low = text.strip().lower()
        if allows_none and low in _NONE:
            return None
        if bool in kinds:
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        if int in kinds and bool not in kinds:
            try:
                return int(text)
            except ValueError:
                pass
        if float in kinds:
            try:
                return float(text)
            except ValueError:
                pass
        if str in kinds:
            return text
        wanted = " or ".join(sorted(k.__name__ for k in kinds if k is not type(None)))
        raise argparse.ArgumentTypeError(
            f"expected {wanted}{' or none' if allows_none else ''}; got {text!r}"
        )

    convert.__name__ = name  # argparse names the converter in its messages
    if bool in kinds:
        metavar = "{true,false}"
    elif int in kinds:
        metavar = "INT"
    elif float in kinds:
        metavar = "FLOAT"
    else:
        metavar = "STR"
    if allows_none:
        metavar += "|none"
    return convert, metavar


def _add_estimator_options(
    parser: argparse.ArgumentParser, shown_defaults: dict[str, Any] | None = None
) -> list[str]:
    """One option per constructor parameter of the estimators; returns the parameter names.

    ``shown_defaults`` replaces the estimator's defaults in the help (the default preset's).
    """
    defaults, hints, doc = _estimator_signature()
    cross_entropy = _estimator_signature("GRU4RecCrossEntropy")[0]
    *others, last = [name for name in defaults if name not in cross_entropy]
    group = parser.add_argument_group(
        "estimator parameters",
        "Every constructor parameter of GRU4RecNegSampling (GRU4RecCrossEntropy takes all but "
        f"{', '.join(others)} and {last}); unset ones take the "
        "value of --preset, else the estimator's default. The defaults shown are those of "
        f"--preset {presets.DEFAULT}. 'none' sets None where allowed.",
    )
    # The column options of the input group cover the estimator's column parameters:
    # the CLI reads events into the canonical columns the estimator expects.
    params = {name: value for name, value in defaults.items() if name not in _OWN_OPTIONS}
    params.update({k: v for k, v in (shown_defaults or {}).items() if k in params})
    params["verbose"] = True  # the command line shows progress unless --quiet
    docs = _param_docs(doc)
    for name, default in params.items():
        convert, metavar = _converter(name, hints.get(name), default)
        text = docs.get(name, "")
        shown = "none" if default is None else default  # as the option spells it
        text = (f"{text} " if text else "") + f"(default: {shown})"
        kwargs: dict[str, Any] = {}
        if isinstance(default, bool):
            kwargs = {"nargs": "?", "const": True}  # a bare --flag means true
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"param_{name}",
            type=convert,
            metavar=metavar,
            default=argparse.SUPPRESS,
            help=text.replace("%", "%%"),
            **kwargs,
        )
    return list(params)


_COLUMN_PARAMS = ("session_col", "item_col", "time_col")
# Estimator parameters with options of their own: the input columns and --threads.
_OWN_OPTIONS = (*_COLUMN_PARAMS, "num_threads")


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    return {k[len("param_") :]: v for k, v in vars(args).items() if k.startswith("param_")}


# -- reading events ------------------------------------------------------------------------------


def _add_run_options(parser: argparse.ArgumentParser, quiet_help: str = "no progress bar") -> None:
    """--threads, --quiet and the input columns: shared by every command."""
    parser.add_argument("--threads", type=_threads, default=1, metavar="N|none", help=_THREADS_HELP)
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
    _add_input_options(parser)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("input columns")
    group.add_argument("--session-col", default=package_defaults.SESSION, help="session id column")
    group.add_argument("--item-col", default=package_defaults.ITEM, help="item id column")
    group.add_argument(
        "--time-col",
        default=package_defaults.TIME,
        help=(
            "timestamp column; 'none': events are in time order within each session, "
            "and training visits the sessions in a seeded random order"
        ),
    )
    group.add_argument(
        "--sep", help="field separator (default: ',' for .csv, tab for .tsv, else guessed)"
    )


def _no_time(args: argparse.Namespace) -> bool:
    return args.time_col is None or args.time_col.strip().lower() in _NONE


def _read(path: str, args: argparse.Namespace):
    """The events of ``path`` with the canonical columns session_id, item_id, timestamp."""
    from . import datasets

    no_time = _no_time(args)
    try:
        df = datasets.read_events(
            path,
            session_col=args.session_col,
            item_col=args.item_col,
            time_col=None if no_time else args.time_col,
            sep=args.sep,
        )
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except ValueError as exc:
        raise ValueError(_as_cli_message(str(exc))) from None
    if len(df) == 0:
        raise ValueError(f"{path} holds no events")
    if no_time:
        df[datasets.TIME] = np.arange(len(df), dtype=np.int64)
    return df


def _as_cli_message(text: str) -> str:
    """A message of :func:`datasets.read_events` with the options in place of the Python
    parameters it names (``path:``, ``sep=``, ``time_col=``...)."""
    text = re.sub(r"^(path|sep): ", "", text)
    separated = re.search(r"\(pass sep=('[^']*'), --sep on the command line\)", text)
    if separated:  # the separator is the fix, not the column options
        text = text[: separated.start()] + f"(pass --sep {separated.group(1)})"
        return text
    text = text.replace("; pass sep=", "; pass --sep")
    text = text.replace(
        "set time_col= to the column that holds it",
        "pass --time-col with the column that holds it (--time-col none: the rows of each "
        "session are in time order)",
    )
    for name in ("session", "item"):
        text = text.replace(f"set {name}_col= to", f"pass --{name}-col with")
    return text


def _model_items(est: Any):
    """The raw item ids of a fitted model's columns, as a Vocabulary."""
    from .matrix import Vocabulary

    if est.item_vocabulary_ is None:  # fitted on an index matrix: item ids are the indices
        return Vocabulary(np.arange(est.n_items_))
    return est.item_vocabulary_


def _item_positions(ids, vocab) -> np.ndarray:
    """The index in ``vocab`` of each id of the column ``ids`` (-1 where unknown), matching
    the ids as the file spells them.

    :func:`datasets.read_events` types a column from its own values (int64 only when every id
    is an integer), so one id such as ``NEW-ITEM``, or a model fitted on strings that look
    like numbers, would otherwise leave the file no id in common with the model.
    """
    import pandas as pd

    codes, uniques = pd.factorize(ids)
    uniques = np.asarray(uniques, dtype=object)
    found = vocab.index_of(uniques)  # the file's type is the model's
    missing = np.flatnonzero(found < 0)
    if len(missing):  # the same text: 12 for '12', 'x1' for 'x1'
        spelled = pd.Index(vocab.ids.astype(str), dtype=object)
        first = np.flatnonzero(~spelled.duplicated())
        at = spelled[first].get_indexer([str(u) for u in uniques[missing]])
        found[missing] = np.where(at >= 0, first[at], -1)
    kind = vocab.ids.dtype.kind
    if kind in "iuf":  # the same number: 12 for '0012' or '12.0', 1.0 for '1'
        still = np.flatnonzero(found < 0)
        numbers = [_as_number(str(uniques[j]), integral=kind != "f") for j in still]
        parsed = np.array([n is not None for n in numbers], dtype=bool)
        if parsed.any():  # one lookup for all of them
            as_ids = np.empty(int(parsed.sum()), dtype=object)
            as_ids[:] = [n for n in numbers if n is not None]
            found[still[parsed]] = vocab.index_of(as_ids)
    return found[codes]


def _as_number(text: str, integral: bool) -> int | float | None:
    """``text`` as a (finite) number, an int when ``integral``; None when it is none."""
    if "_" in text:  # Python's digit separator, no file's
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not np.isfinite(value):
        return None
    if not integral:
        return value
    try:
        return int(text)  # exact beyond float's 53 bits
    except ValueError:
        return int(value) if value == int(value) else None


def _matrix_over(df, vocab, path: str, known_to: str = "the model"):
    """An InteractionMatrix of ``df`` over the items of ``vocab``, or None when ``df`` has no
    item of it. Events with other items are dropped with a warning giving their number."""
    from . import datasets
    from .matrix import InteractionMatrix

    found = _item_positions(df[datasets.ITEM], vocab)
    known = found >= 0
    if not known.any():
        return None
    n_unknown = len(df) - int(known.sum())
    if n_unknown:
        _warn(
            f"{path}: dropped {n_unknown} of {len(df)} events whose item is unknown to {known_to}"
        )
    df = df[known].copy()
    df[datasets.ITEM] = vocab.ids[found[known]]  # the vocabulary's own ids and type
    return InteractionMatrix.from_events(df, item_vocabulary=vocab)


def _no_known_item(df, vocab, path: str, known_to: str = "the model") -> str:
    """The message for a file none of whose items ``vocab`` holds."""
    from . import datasets

    examples = ", ".join(map(str, vocab.ids[:3].tolist()))
    return (
        f"{path}: none of its {df[datasets.ITEM].nunique()} item ids is known to {known_to}, "
        f"which has {len(vocab)} items such as {examples}"
    )


_CHUNK = 2000  # sessions per call, so that progress bars move


def _session_chunks(X, chunk: int = _CHUNK) -> Iterator[Any]:
    """``X`` split into matrices of at most ``chunk`` sessions (one when it is small)."""
    users = X.session_arrays().users
    if len(users) <= chunk:
        yield X
        return
    for start in range(0, len(users), chunk):
        yield X.users_in(users[start : start + chunk])


def _progress(total: int, enabled: bool, desc: str, unit: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr)


# -- model files ---------------------------------------------------------------------------------


def _save_model(est: Any, path: str) -> None:
    """Write ``est`` to ``path`` in the format :meth:`load` reads."""
    est.save(path)


def _load_model(path: str) -> Any:
    """The fitted estimator saved in ``path``, of the class recorded there."""
    from . import estimator
    from .checkpoint import load_checkpoint

    _, meta = load_checkpoint(path)
    name = meta.get("class")
    if name not in ESTIMATORS.values():
        raise ValueError(f"{path}: not a model of this package (class {name!r})")
    return getattr(estimator, name)().load(path)


# -- commands ------------------------------------------------------------------------------------


def _check_model_path(path: str, option: str = "--model") -> None:
    """Fail before any work when ``option`` (a model file to write) cannot be written."""
    from .checkpoint import check_writable

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the directory {folder} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a directory; give a file name")
    try:
        check_writable(path)
    except OSError as exc:
        raise ValueError(f"{option} {path}: {exc.strerror}") from None


def _make_estimator(cls: type, args: argparse.Namespace, **defaults: Any) -> Any:
    """The estimator the options ask for, its parameters checked before any data is read:
    ``--preset``'s (those ``cls`` takes), then ``defaults``, then the options given."""
    allowed = cls().get_params(deep=False)
    preset = {k: v for k, v in presets.get(args.preset).items() if k in allowed}
    params = {**preset, **defaults, **_estimator_params(args)}
    unknown = [p for p in params if p not in allowed]
    if unknown:
        opts = ", ".join("--" + p.replace("_", "-") for p in unknown)
        raise ValueError(f"--estimator {args.estimator} takes no {opts}")
    if args.quiet:  # --quiet wins over --verbose
        params["verbose"] = False
    else:
        params.setdefault("verbose", True)
    params["num_threads"] = args.threads
    est = cls(**params)
    try:
        est._validate_params()
    except ValueError as exc:  # name the option, not the parameter
        raise ValueError(_as_option_message(str(exc), params)) from None
    return est


def _as_option_message(text: str, params: dict[str, Any]) -> str:
    name = text.split(" ", 1)[0]
    if name in params:
        return f"--{name.replace('_', '-')}: {text}"
    return text


def _train(args: argparse.Namespace) -> int:
    from . import estimator
    from .datasets import last_item_split
    from .matrix import InteractionMatrix

    cls = getattr(estimator, ESTIMATORS[args.estimator])
    # With --time-col none, row numbers stand in for the times; the sessions' order in the
    # file is no time order, so train in a seeded random order unless told otherwise.
    est = _make_estimator(cls, args, **({"session_order": "random"} if _no_time(args) else {}))
    _check_model_path(args.model)

    df = _read(args.events, args)
    X = InteractionMatrix.from_events(df)
    validation = None
    if args.validation:
        val_df = _read(args.validation, args)
        V = _matrix_over(
            val_df,
            X.item_vocabulary,
            args.validation,
            known_to=f"the training data ({args.events})",
        )
        if V is None:
            raise ValueError(
                _no_known_item(
                    val_df, X.item_vocabulary, args.validation, f"the training data ({args.events})"
                )
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sessions of one event are simply not validated
            validation = last_item_split(V)
        if validation[1].num_interactions == 0:
            raise ValueError(
                f"{args.validation}: no session has 2 or more events with items of {args.events}; "
                "validation holds out the last item of such sessions"
            )
    if not args.quiet:
        print(
            f"{args.events}: {X.num_interactions} events, {X.num_active_users} sessions, "
            f"{X.shape[1]} items",
            file=sys.stderr,
        )
    start = time.perf_counter()
    stopped = None
    try:
        est.fit(X, validation_data=validation)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "epochs_completed", 0):
            raise  # nothing to save: main says so
        stopped = exc  # the estimator holds the last completed (or best) epoch
    except ValueError as exc:  # fit names its argument X: say the file
        raise ValueError(re.sub(r"^X\b", lambda _: args.events, str(exc))) from None
    seconds = time.perf_counter() - start
    existed = os.path.exists(args.model)
    try:
        _save_model(est, args.model)  # atomic: the old file or the new one, whole
    except KeyboardInterrupt:
        left = f"; {args.model} is unchanged" if existed else ""
        print(f"gru4rec: interrupted while saving: no model was saved{left}", file=sys.stderr)
        return EXIT_NOTHING_SAVED
    epochs = len(est.history_)
    kept = ""
    if est.best_epoch_ is not None and not est.keep_last:
        kept = f", kept epoch {est.best_epoch_ + 1} ({est.stopping_criterion_.name} "
        kept += f"{est.best_value_:.4f})"
    if stopped is not None:
        print(
            f"gru4rec: interrupted in epoch {epochs + 1}: saved the model after {epochs} "
            f"completed epoch(s){kept} to {args.model}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if not args.quiet:
        print(
            f"trained {est.name} (--preset {args.preset}) for {epochs} epoch(s) in "
            f"{seconds:.1f} s{kept}; saved to {args.model}"
        )
    return 0


def _update(args: argparse.Namespace) -> int:
    from .matrix import InteractionMatrix

    _check_model_path(args.out, "--out")
    est = _load_model(args.model)
    est.set_params(num_threads=args.threads, verbose=not args.quiet)
    df = _read(args.events, args)
    X = InteractionMatrix.from_events(df)
    n_before, start = est.n_items_, time.perf_counter()
    try:
        est.partial_fit(X, epochs=args.epochs, count_decay=args.count_decay)
    except (ValueError, TypeError) as exc:  # partial_fit names its argument X: say the file
        raise ValueError(re.sub(r"\bX\b", lambda _: args.events, str(exc))) from None
    except KeyboardInterrupt:  # an update is all or nothing
        print(f"interrupted: {args.model} was not updated and nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - start
    _save_model(est, args.out)
    if not args.quiet:
        print(
            f"updated {est.name} on {X.num_interactions} events in {seconds:.1f} s: "
            f"{est.n_items_ - n_before} new items ({est.n_items_} in all); saved to {args.out}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .datasets import SESSION
    from .metrics import mrr_at_k, ndcg_at_k, recall_at_k

    est = _load_model(args.model)
    est.set_params(num_threads=args.threads)
    df = _read(args.events, args)
    items = _model_items(est)
    X = _matrix_over(df, items, args.events)
    if X is None:
        raise ValueError(_no_known_item(df, items, args.events))
    sessions = X.session_arrays()
    chunks = list(_session_chunks(X))
    parts = []
    with _progress(sessions.n_sessions, not args.quiet, "evaluate", "session") as bar:
        for part in chunks:
            parts.append(np.asarray(est.next_item_ranks(part, last_only=args.last_only)))
            bar.update(part.session_arrays().n_sessions)
    ranks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    n_sessions = df[SESSION].nunique()
    if len(ranks) == 0:
        raise ValueError(
            f"{args.events}: none of its {n_sessions} sessions has 2 or more events with items "
            "known to the model, so there is nothing to predict"
        )
    # Only sessions of 2 or more known events give predictions; the others are counted apart.
    n_scored = int(np.count_nonzero(np.diff(sessions.offsets) >= 2))
    result: dict[str, Any] = {
        "predictions": int(len(ranks)),
        "sessions": n_scored,
        "sessions_too_short": n_sessions - n_scored,
    }
    for k in args.k:
        result[f"Recall@{k}"] = recall_at_k(ranks, k)
        result[f"MRR@{k}"] = mrr_at_k(ranks, k)
        if args.ndcg:
            result[f"NDCG@{k}"] = ndcg_at_k(ranks, k)
    if args.json:
        print(json.dumps(result))
        return 0
    where = "last item of each session" if args.last_only else "every position"
    short = result["sessions_too_short"]
    print(
        f"{result['predictions']} predictions ({where}) in {n_scored} sessions"
        + (f" ({short} more with fewer than 2 known events not scored)" if short else "")
    )
    for key, value in result.items():
        if "@" in key:
            print(f"{key:<10} {value:.4f}")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import datasets

    if not is_int(args.k):
        raise ValueError(f"-k must be >= 1; got {args.k}")
    est = _load_model(args.model)
    est.set_params(num_threads=args.threads)
    df = _read(args.sessions, args)
    items = _model_items(est)
    n_file_sessions = df[datasets.SESSION].nunique()
    X = _matrix_over(df, items, args.sessions)
    blocked = _blocked(args, items)
    parts, known = [], np.zeros(0, dtype=object)
    if X is not None:
        parts.append(_top_k(est, X, items, args, blocked))
        known = X.user_vocabulary.to_raw(X.session_arrays().users)
    sessions = np.asarray(pd.unique(df[datasets.SESSION]))  # in the file's order
    cold = sessions[~pd.Index(sessions).isin(known)]
    if len(cold):
        # As recommend() in Python: a session with no known item starts from the empty state.
        _warn(
            f"{args.sessions}: {len(cold)} of {n_file_sessions} session(s) have no item known to "
            "the model: their recommendations come from the empty state (the same for each)"
        )
        top, value = est._recommend_indices(
            np.zeros(0, dtype=np.int64),
            np.zeros(2, dtype=np.int64),
            args.k,
            args.exclude_seen,
            blocked,
        )
        per = top.shape[1]
        parts.append(
            pd.DataFrame(
                {
                    "session": np.repeat(cold, per),
                    "rank": np.tile(np.arange(1, per + 1), len(cold)),
                    "item": np.tile(items.to_raw(top[0]), len(cold)),
                    "score": np.tile(value[0], len(cold)),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    # Sessions in the file's order, each one's ranks in order.
    out = out.iloc[np.argsort(pd.Index(sessions).get_indexer(out["session"]), kind="stable")]
    out.columns = [args.session_col, "rank", args.item_col, "score"]
    n_sessions = len(sessions)
    if args.out in (None, "-"):
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.out, index=False)
        if not args.quiet:
            print(
                f"wrote {len(out)} recommendations for {n_sessions} sessions to {args.out}",
                file=sys.stderr,
            )
    return 0


def _blocked(args: argparse.Namespace, vocab: Any) -> np.ndarray | None:
    """The items --items / --filter-items keep out, one boolean per item (None: no filter)."""
    if args.items is None and args.filter_items is None:
        return None
    import pandas as pd

    blocked = np.zeros(len(vocab), dtype=bool)
    for flag, path in (("--items", args.items), ("--filter-items", args.filter_items)):
        if path is None:
            continue
        with open(path) as f:
            ids = [line.strip() for line in f if line.strip()]
        found = _item_positions(pd.Series(ids, dtype=object), vocab) if ids else np.zeros(0, int)
        if (found < 0).any():
            _warn(f"{flag} {path}: ignored {int((found < 0).sum())} of {len(ids)} unknown ids")
        if flag == "--items":
            blocked |= ~np.isin(np.arange(len(vocab)), found[found >= 0])
        else:
            blocked[found[found >= 0]] = True
    return blocked


def _top_k(
    est: Any, X: Any, items: Any, args: argparse.Namespace, blocked: np.ndarray | None = None
):
    """The rows session, rank, item, score of the ``args.k`` best items of each session of X."""
    import pandas as pd

    sessions = X.session_arrays()
    n_sessions = sessions.n_sessions
    # The sessions' known items stay model indices: the estimator's recommendation path on
    # indices, a chunk of sessions at a time so that the progress bar moves.
    offsets = sessions.offsets
    ids, scores = [], []
    with _progress(n_sessions, not args.quiet, "recommend", "session") as bar:
        for start in range(0, n_sessions, _CHUNK):
            stop = min(start + _CHUNK, n_sessions)
            a, b = offsets[start], offsets[stop]
            top, value = est._recommend_indices(
                sessions.items[a:b],
                offsets[start : stop + 1] - a,
                args.k,
                args.exclude_seen,
                blocked,
            )
            ids.append(items.to_raw(top.ravel()).reshape(top.shape))
            scores.append(value)
            bar.update(stop - start)
    ids_all = np.concatenate(ids)
    scores_all = np.concatenate(scores)
    per_session = ids_all.shape[1]  # min(k, number of items)
    return pd.DataFrame(
        {
            "session": np.repeat(X.user_vocabulary.to_raw(sessions.users), per_session),
            "rank": np.tile(np.arange(1, per_session + 1), n_sessions),
            "item": ids_all.ravel(),
            "score": scores_all.ravel(),
        }
    )


def _popularity_ranks(train_items: np.ndarray, n_items: int, targets: np.ndarray) -> np.ndarray:
    counts = np.bincount(train_items, minlength=n_items)
    # Conservative: every item at least as popular as the target ranks ahead of it.
    sorted_counts = np.sort(counts)
    return n_items - np.searchsorted(sorted_counts, counts[targets], side="left")


# What the demo sets beyond --preset: a fixed seed, so that it prints the same numbers each run.
DEMO_PARAMS: dict[str, Any] = {"seed": 0}


def _demo_split(df, test_share: float, source: str, generated: bool = False):
    """Train and test events: the test sessions start in the last ``test_share`` of the span
    of session start times.

    The span of start times, not of all events: a long last session can outlast every later
    start by more than the share, which would leave no session starting in the test window.
    On ``generated`` data too small for the share to hold a session that can be tested, the
    test set is the fewest last sessions that hold one (with a warning).
    """
    from . import datasets

    more = "use more --sessions" if generated else "give more data or a larger --test-share"
    starts = df.groupby(datasets.SESSION, sort=False)[datasets.TIME].min()
    first, last = starts.min(), starts.max()
    if len(starts) < 2:
        fewer = "use more --sessions" if generated else "give more sessions"
        raise ValueError(f"{source}: one session; a split into train and test needs two; {fewer}")
    if last <= first:
        if df[datasets.TIME].max() == df[datasets.TIME].min():
            raise ValueError(f"{source}: every event has the same time, so no split by time exists")
        # No share helps: every session falls on the same side of any cutoff.
        raise ValueError(
            f"{source}: all {len(starts)} sessions start at the same time (are the times "
            "positions within each session?); use --time-col none (the file order) or real "
            "timestamps"
        )
    cutoff = last - float(last - first) * test_share
    train_df, test_df = _split_at(df, cutoff, last)
    if len(test_df) == 0 and generated:
        later = np.sort(starts.to_numpy())[::-1][1:-1]  # the first session stays in train
        for at in later[later < cutoff][:_MORE_TEST_SESSIONS]:
            train_df, test_df = _split_at(df, at, last)
            if len(test_df):
                _warn(
                    f"{source}: no session starting in the last {test_share:g} of the span of "
                    f"session starts can be tested; the test set is the last "
                    f"{int((starts >= at).sum())} sessions"
                )
                cutoff = at
                break
    if len(test_df) == 0:
        n_test = int((starts >= cutoff).sum())
        raise ValueError(
            f"{source}: no test session: none of the {n_test} sessions starting in the last "
            f"{test_share:g} of the span of session starts has 2 or more events with items "
            f"seen in the earlier ones; {more}"
        )
    return train_df, test_df


_MORE_TEST_SESSIONS = 100  # the most sessions the demo adds to an untestable test window


def _split_at(df, cutoff: float, last: Any):
    """:func:`datasets.time_split` with the sessions starting at or after ``cutoff`` in test."""
    from . import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty test set is the caller's error
        return datasets.time_split(df, test_days=float(last - cutoff) / 86400.0, tmax=last)


#: Test predictions under which the demo's metrics are noise.
_FEW_PREDICTIONS = 100


def _demo(args: argparse.Namespace) -> int:
    from . import datasets
    from .estimator import GRU4RecNegSampling
    from .matrix import InteractionMatrix
    from .metrics import mrr_at_k, recall_at_k

    args.estimator = "neg-sampling"
    if not 0 < args.test_share < 1:
        raise ValueError(f"--test-share must lie between 0 and 1; got {args.test_share:g}")
    no_time = {"session_order": "random"} if args.events and _no_time(args) else {}
    est = _make_estimator(GRU4RecNegSampling, args, **DEMO_PARAMS, **no_time)
    if args.events:
        df = _read(args.events, args)
        source = args.events
    else:
        seed = est.seed if est.seed is not None else 0
        df = datasets.make_synthetic_sessions(
            n_sessions=args.sessions, n_items=args.items, seed=seed
        )
        source = f"synthetic ({args.sessions} sessions, {args.items} items)"
    train_df, test_df = _demo_split(df, args.test_share, source, not args.events)
    train = InteractionMatrix.from_events(train_df)
    test = InteractionMatrix.from_events(test_df, item_vocabulary=train.item_vocabulary)
    print(
        f"data: {source}\n"
        f"train: {train.num_interactions} events, {train.num_active_users} sessions, "
        f"{train.shape[1]} items; test: {test.num_interactions} events, "
        f"{test.num_active_users} sessions"
    )
    start = time.perf_counter()
    est.fit(train)
    fit_s = time.perf_counter() - start
    ranks = est.next_item_ranks(test)
    if len(ranks) < _FEW_PREDICTIONS:
        _warn(
            f"{source}: the test set gives only {len(ranks)} predictions, too few for the "
            "metrics below to mean much; pass a larger --test-share (the test set holds the "
            "sessions that start in the last share of the time span)"
        )
    sessions = test.session_arrays()
    has_next = np.ones(sessions.n_events, dtype=bool)
    has_next[sessions.offsets[1:] - 1] = False
    targets = sessions.items[np.flatnonzero(has_next) + 1]
    pop = _popularity_ranks(train.session_arrays().items, train.shape[1], targets)
    rows = [
        ("GRU4Rec", recall_at_k(ranks, 20), mrr_at_k(ranks, 20)),
        ("popularity", recall_at_k(pop, 20), mrr_at_k(pop, 20)),
    ]
    epochs = len(est.history_)
    print(f"\ntrained {epochs} epochs in {fit_s:.1f} s; {len(ranks)} test predictions")
    print(f"{'model':<12} {'Recall@20':>10} {'MRR@20':>10}")
    for name, rec, mrr in rows:
        print(f"{name:<12} {rec:>10.4f} {mrr:>10.4f}")
    return 0


# -- parser and entry point ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _threads(text: str) -> int | None:
    if text.strip().lower() in _NONE:
        return None
    return _positive_int(text)


_THREADS_HELP = (
    "torch CPU threads; 'none': torch's choice (all cores). 1, the default, is fastest for "
    "GRU4Rec's small matrix products on most machines and always on a busy one"
)


class _HelpFormatter(argparse.HelpFormatter):
    """Adds '(default: X)' to an option's help unless it is required, unset or already said."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or action.required
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        return f"{text} (default: {shown})"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (plus where to find help)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _arg(*flags: str, **kwargs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One ``add_argument`` call, as data."""
    return flags, kwargs


def _command(
    sub: Any,
    name: str,
    summary: str,
    description: str,
    *arguments: tuple[tuple[str, ...], dict[str, Any]],
    func: Callable[[argparse.Namespace], int],
    quiet_help: str = "no progress bar",
) -> argparse.ArgumentParser:
    """A sub-command: its own ``arguments``, then the run options every command shares."""
    command = sub.add_parser(
        name, help=summary, description=description, formatter_class=_HelpFormatter
    )
    for flags, kwargs in arguments:
        command.add_argument(*flags, **kwargs)
    _add_run_options(command, quiet_help=quiet_help)
    command.set_defaults(func=func)
    return command


_SAVED_MODEL = _arg("--model", required=True, help="a model written by 'train'")
_PRESET = _arg(
    "--preset",
    choices=list(presets.PRESETS),
    default=presets.DEFAULT,
    help="the parameters that unset options take: "
    + "; ".join(f"{name}: {presets.describe(name)}" for name in presets.PRESETS)
    + f" (default: {presets.DEFAULT})",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``gru4rec`` argument parser with its sub-commands."""
    from . import __version__

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
    from . import service

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


def _warn(message: str) -> None:
    print(f"gru4rec: warning: {message}", file=sys.stderr)


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
            from .trainer import caused_by_interrupt

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
