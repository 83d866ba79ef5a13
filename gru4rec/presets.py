"""Named parameter sets: the published best configurations, and recpack's defaults.

The estimators keep recpack's defaults (code written for recpack keeps its meaning), but those
train poorly; a preset names a configuration that trains well::

    GRU4RecNegSampling.from_preset("rsc15-best", max_epochs=5)

and the command line's ``--preset`` takes the same names (``rsc15-best`` is its default).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT", "PRESETS", "describe", "for_class", "get"]

#: The preset the command line's ``train`` and ``demo`` use unless told otherwise.
DEFAULT = "rsc15-best"

# Every published configuration uses one GRU layer, a shared input/output embedding, 2048
# shared negatives, no clipping and 10 epochs (docs/configurations.rst).
_PUBLISHED = {
    "constrained_embedding": True,
    "num_negatives": 2048,
    "clipnorm": None,
    "max_epochs": 10,
}

#: Name -> constructor parameters (those not named keep the class's default).
PRESETS: dict[str, dict[str, Any]] = {
    "rsc15-best": {
        "loss_fn": "cross-entropy",
        "logq": 1.0,
        "hidden_size": 100,
        "batch_size": 32,
        "dropout": 0.0,
        "dropout_hidden": 0.4,
        "learning_rate": 0.2,
        "momentum": 0.2,
        "sample_alpha": 0.5,
        **_PUBLISHED,
    },
    "diginetica-best": {
        "loss_fn": "bpr-max",
        "elu_param": 1.0,
        "bpreg": 0.9,
        "hidden_size": 512,
        "batch_size": 128,
        "dropout": 0.5,
        "dropout_hidden": 0.3,
        "learning_rate": 0.05,
        "momentum": 0.15,
        "sample_alpha": 0.3,
        **_PUBLISHED,
    },
    "recpack": {},
}

_DESCRIPTIONS = {
    "rsc15-best": "the published best configuration on RSC15 (clicks of an e-shop): "
    "sampled cross-entropy with logq, 100 units, batch 32",
    "diginetica-best": "the published best configuration on Diginetica (product views): "
    "bpr-max, 512 units, batch 128",
    "recpack": "the estimator classes' own values, recpack's (bpr, 50 uniform negatives): "
    "they train poorly",
}


def get(name: str) -> dict[str, Any]:
    """A copy of the parameters of the preset ``name``.

    Raises
    ------
    ValueError
        When no preset has that name (the message lists them).
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    return dict(PRESETS[name])


def describe(name: str) -> str:
    """One line saying what the preset ``name`` is."""
    get(name)
    return _DESCRIPTIONS[name]


def for_class(
    name: str, allowed: set[str], overrides: dict[str, Any], owner: str
) -> dict[str, Any]:
    """The parameters of the preset ``name`` that a class taking ``allowed`` takes, then
    ``overrides``; a TypeError naming the class ``owner`` for an override it does not take."""
    params = {k: v for k, v in get(name).items() if k in allowed}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise TypeError(f"{owner} takes no parameter {', '.join(unknown)}")
    return {**params, **overrides}
