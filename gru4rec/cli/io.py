"""Reading event files, matching their item ids to a model's vocabulary, model files and the
warnings and progress bars of the command line."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .options import _NONE, ESTIMATORS


def _no_time(args: argparse.Namespace) -> bool:
    return args.time_col is None or args.time_col.strip().lower() in _NONE


def _read(path: str, args: argparse.Namespace):
    """The events of ``path`` with the canonical columns session_id, item_id, timestamp."""
    from .. import datasets

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
    from ..inputs import model_vocabulary

    return model_vocabulary(est.item_vocabulary_, est.n_items_)


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
    from .. import datasets
    from ..matrix import InteractionMatrix

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
    from .. import datasets

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


def _save_model(est: Any, path: str) -> None:
    """Write ``est`` to ``path`` in the format :meth:`load` reads."""
    est.save(path)


def _load_model(path: str) -> Any:
    """The fitted estimator saved in ``path``, of the class recorded there."""
    from .. import estimator
    from ..checkpoint import load_checkpoint

    _, meta = load_checkpoint(path)
    name = meta.get("class")
    if name not in ESTIMATORS.values():
        raise ValueError(f"{path}: not a model of this package (class {name!r})")
    return getattr(estimator, name)().load(path)


def _check_model_path(path: str, option: str = "--model") -> None:
    """Fail before any work when ``option`` (a model file to write) cannot be written."""
    from ..checkpoint import check_writable

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the directory {folder} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a directory; give a file name")
    try:
        check_writable(path)
    except OSError as exc:
        raise ValueError(f"{option} {path}: {exc.strerror}") from None


def _warn(message: str) -> None:
    print(f"gru4rec: warning: {message}", file=sys.stderr)
