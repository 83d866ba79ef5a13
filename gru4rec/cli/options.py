"""The options of the command line: every estimator parameter as an option (from the
torch-free declaration :mod:`gru4rec.parameters`, so that ``--help`` imports neither torch nor
scikit-learn), the string converters, ``--preset``, the options every command shares and the
help formatting."""

from __future__ import annotations

import argparse
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from .. import defaults as package_defaults
from .. import parameters, presets

ESTIMATORS = {"neg-sampling": "GRU4RecNegSampling", "cross-entropy": "GRU4RecCrossEntropy"}


_TRUE = {"true", "yes", "1", "on"}


_FALSE = {"false", "no", "0", "off"}


_NONE = {"none", "null"}


def _help_line(param: parameters.Parameter) -> str:
    """A parameter's help: the first sentence of its description, else its type; the
    allowed values where its type lists them."""
    text = param.doc.split(". ")[0].rstrip(".")
    if param.kind.startswith("{"):
        text = f"{text}: {param.kind}" if text else param.kind
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


class _Types(dict):
    """Names in a parameter's annotation: the builtin types; anything else is ``object``."""

    def __missing__(self, name: str) -> Any:
        return {"int": int, "float": float, "str": str, "bool": bool, "None": None}.get(
            name, object
        )


def _estimator_signature(
    name: str = "GRU4RecNegSampling",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The constructor parameters of the estimator class ``name`` with their defaults, their
    type hints and their help lines, from the torch-free :mod:`gru4rec.parameters` (the
    options are built for every ``--help``, which should not wait for torch)."""
    names = parameters.NEG_SAMPLING if name == "GRU4RecNegSampling" else parameters.CROSS_ENTROPY
    declared = {n: parameters.PARAMETERS[n] for n in names}
    defaults = {n: p.default for n, p in declared.items()}
    # The annotations are this package's own declarations: type names, no calls.
    hints = {n: eval(p.annotation, {"__builtins__": {}}, _Types()) for n, p in declared.items()}
    return defaults, hints, {n: _help_line(p) for n, p in declared.items()}


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
    defaults, hints, docs = _estimator_signature()
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
    from ..constraints import validate  # (imports torch: the estimator already did)

    est = cls(**params)
    try:
        validate(est.get_params(deep=False))  # the table of every parameter either class takes
    except ValueError as exc:  # name the option, not the parameter
        raise ValueError(_as_option_message(str(exc), params)) from None
    return est


def _as_option_message(text: str, params: dict[str, Any]) -> str:
    name = text.split(" ", 1)[0]
    if name in params:
        return f"--{name.replace('_', '-')}: {text}"
    return text


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
