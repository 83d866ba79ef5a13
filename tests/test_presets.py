"""Named configurations: gru4rec.presets, from_preset and the command line's --preset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, presets

REPO_ROOT = Path(__file__).resolve().parent.parent

# docs/configurations.rst's table, as the authors published it.
RSC15 = dict(
    loss_fn="cross-entropy", logq=1.0, hidden_size=100, batch_size=32, dropout=0.0,
    dropout_hidden=0.4, learning_rate=0.2, momentum=0.2, sample_alpha=0.5,
    constrained_embedding=True, num_negatives=2048, clipnorm=None, max_epochs=10,
)  # fmt: skip
DIGINETICA = dict(
    loss_fn="bpr-max", elu_param=1.0, hidden_size=512, batch_size=128, dropout=0.5,
    dropout_hidden=0.3, learning_rate=0.05, momentum=0.15, sample_alpha=0.3, bpreg=0.9,
    constrained_embedding=True, num_negatives=2048, clipnorm=None, max_epochs=10,
)  # fmt: skip


@pytest.mark.parametrize("name, expected", [("rsc15-best", RSC15), ("diginetica-best", DIGINETICA)])
def test_from_preset_gives_the_published_configuration(name, expected):
    params = GRU4RecNegSampling.from_preset(name).get_params()
    assert {k: params[k] for k in expected} == expected
    # The rest keeps the class's values.
    defaults = GRU4RecNegSampling().get_params()
    assert {k: v for k, v in params.items() if k not in expected} == {
        k: v for k, v in defaults.items() if k not in expected
    }


def test_the_recpack_preset_is_the_classes_own_values_which_stay_recpacks():
    assert (
        GRU4RecNegSampling.from_preset("recpack").get_params() == GRU4RecNegSampling().get_params()
    )
    assert GRU4RecNegSampling().loss_fn == "bpr" and GRU4RecNegSampling().num_negatives == 50


def test_overrides_win_and_the_preset_table_is_not_changed():
    est = GRU4RecNegSampling.from_preset("rsc15-best", max_epochs=3, seed=1)
    assert est.max_epochs == 3 and est.seed == 1 and est.batch_size == 32
    assert presets.get("rsc15-best")["max_epochs"] == 10
    presets.get("rsc15-best")["max_epochs"] = 1  # a copy
    assert presets.PRESETS["rsc15-best"]["max_epochs"] == 10


def test_cross_entropy_class_takes_the_presets_parameters_it_has():
    est = GRU4RecCrossEntropy.from_preset("rsc15-best")
    assert est.hidden_size == 100 and est.batch_size == 32 and est.dropout_hidden == 0.4
    assert not hasattr(est, "num_negatives") and not hasattr(est, "loss_fn")


def test_unknown_preset_or_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="rsc15-best, diginetica-best, recpack; got 'rsc15'"):
        GRU4RecNegSampling.from_preset("rsc15")
    with pytest.raises(TypeError, match="GRU4RecCrossEntropy takes no parameter num_negatives"):
        GRU4RecCrossEntropy.from_preset("rsc15-best", num_negatives=10)


def test_a_preset_fits():
    from gru4rec.datasets import make_synthetic_sessions

    df = make_synthetic_sessions(200, 40, seed=0)
    est = GRU4RecNegSampling.from_preset("rsc15-best", hidden_size=8, max_epochs=1, device="cpu")
    assert len(est.fit(df).history_) == 1


# -- the command line ----------------------------------------------------------------------------


def _subparsers():
    import argparse

    from gru4rec.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_train_and_demo_share_one_default_preset_and_help_points_at_the_presets():
    parsers = _subparsers()
    for command in ("train", "demo"):
        preset = next(a for a in parsers[command]._actions if a.dest == "preset")
        assert preset.default == presets.DEFAULT == "rsc15-best"
        assert set(preset.choices) == set(presets.PRESETS)
        assert "published" in preset.help and "recpack" in preset.help
        # The defaults shown for the estimator options are the preset's.
        loss = next(a for a in parsers[command]._actions if a.dest == "param_loss_fn")
        assert "(default: cross-entropy)" in loss.help
    assert "--preset" in parsers["train"].description


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    from gru4rec.datasets import make_synthetic_sessions

    path = tmp_path_factory.mktemp("presets") / "events.csv"
    make_synthetic_sessions(300, 50, seed=2).to_csv(path, index=False)
    return path


def _train(events: Path, tmp_path: Path, *options: str):
    from gru4rec.cli import main

    model = tmp_path / "m.trch"
    argv = ["train", str(events), "--model", str(model), "--max-epochs", "1", *options]
    assert main(argv) == 0
    return GRU4RecNegSampling().load(model)


def test_a_bare_train_uses_the_published_rsc15_configuration(events, tmp_path, capsys):
    est = _train(events, tmp_path, "--hidden-size", "8")
    expected = {**RSC15, "hidden_size": 8, "max_epochs": 1}
    assert {k: getattr(est, k) for k in expected} == expected
    assert "--preset rsc15-best" in capsys.readouterr().out


def test_preset_option_with_explicit_options_over_it(events, tmp_path):
    est = _train(events, tmp_path, "--preset", "recpack", "--hidden-size", "8", "--quiet")
    assert est.loss_fn == "bpr" and est.num_negatives == 50 and est.hidden_size == 8
    est = _train(events, tmp_path, "--preset", "diginetica-best", "--hidden-size", "8", "--quiet")
    assert est.loss_fn == "bpr-max" and est.bpreg == 0.9 and est.hidden_size == 8


def test_the_cross_entropy_estimator_takes_the_default_preset(events, tmp_path):
    from gru4rec.cli import main

    model = tmp_path / "x.trch"
    argv = ["train", str(events), "--model", str(model), "--estimator", "cross-entropy"]
    assert main([*argv, "--max-epochs", "1", "--hidden-size", "8", "--quiet"]) == 0
    est = GRU4RecCrossEntropy().load(model)
    assert est.batch_size == 32 and est.dropout_hidden == 0.4


# -- a fast --help -------------------------------------------------------------------------------


def test_building_the_command_line_parser_imports_neither_torch_nor_scikit_learn():
    code = (
        "import sys, gru4rec.cli as cli\n"
        "cli.build_parser()\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'gru4rec.estimator') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("cls", [GRU4RecNegSampling, GRU4RecCrossEntropy])
def test_the_declared_parameters_are_the_estimators_signature(cls):
    """gru4rec.parameters (what the command line and the docstrings read) holds each
    estimator's real signature: names in order, defaults and annotations."""
    import inspect
    import typing

    from gru4rec import parameters
    from gru4rec.cli import _estimator_signature

    names = parameters.NEG_SAMPLING if cls is GRU4RecNegSampling else parameters.CROSS_ENTROPY
    signature = inspect.signature(cls.__init__).parameters
    assert list(names) == [p for p in signature if p != "self"]
    for name in names:
        declared = parameters.PARAMETERS[name]
        assert signature[name].default == declared.default, name
        assert type(signature[name].default) is type(declared.default), name
        assert signature[name].annotation == declared.annotation, name
    defaults, hints, helps = _estimator_signature(cls.__name__)
    assert defaults == cls().get_params(deep=False)
    assert list(defaults) == list(names)
    real = typing.get_type_hints(cls.__init__)
    for name, hint in hints.items():
        if name != "stopping_criterion":  # a class of the package: read as object
            assert hint == real[name], name
    # The docstring documents every parameter, with its default, from the declaration.
    doc = inspect.getdoc(cls)
    for name in names:
        assert f"\n{name} : {parameters.PARAMETERS[name].kind}, default=" in doc, name
    assert doc.index("Parameters\n----------") < doc.index("num_layers :")
    assert helps["loss_fn" if "loss_fn" in names else "dropout"]
