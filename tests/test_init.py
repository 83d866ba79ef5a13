"""Tests of the package itself (gru4rec/__init__.py): what it exports, its version and licence."""

from __future__ import annotations

from pathlib import Path

import pytest

import gru4rec

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_exported_name_exists_and_the_estimators_are_exported():
    for name in gru4rec.__all__:
        assert hasattr(gru4rec, name), name
    assert {"GRU4RecNegSampling", "GRU4RecCrossEntropy", "InteractionMatrix"} <= set(
        gru4rec.__all__
    )


def test_version_is_the_one_the_distribution_declares():
    assert gru4rec.__version__ == _pyproject()["project"]["version"]


def test_licence_is_an_spdx_string_with_its_file():
    meta = _pyproject()
    assert meta["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    # Setuptools reads SPDX strings from version 77 on.
    assert any(
        r.replace(" ", "").startswith("setuptools>=77") for r in meta["build-system"]["requires"]
    )
