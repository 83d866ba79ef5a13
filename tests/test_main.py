"""Tests of gru4rec.__main__: ``python -m gru4rec`` runs the command line and exits with its
status."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import gru4rec.cli

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_module_exits_with_the_status_main_returns(monkeypatch):
    monkeypatch.setattr(gru4rec.cli, "main", lambda: 7)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("gru4rec", run_name="__main__")
    assert exit_info.value.code == 7


@pytest.mark.slow
def test_python_dash_m_exit_status_and_message(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "gru4rec", "evaluate", str(tmp_path / "none.csv"), "--model", "m"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("gru4rec: error:")
