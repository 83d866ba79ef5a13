"""docs/tuning.rst runs as written: its Python blocks in order, the study script as 2 processes.

The block that starts with ``# tune.py`` is the worker script of a shared Optuna study: it is
written to ``tune.py`` and the page's shell line runs, starting two workers at once on the study
an earlier block created; then this process runs the script a third time (later blocks use its
names), so three processes share one SQLite study.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

for _module in ("distributed", "dask.dataframe", "optuna", "optuna_integration", "mlflow"):
    pytest.importorskip(_module, reason=f"docs/tuning.rst needs {_module}: pip install '.[test]'")

REPO_ROOT = Path(__file__).resolve().parent.parent
TUNING = REPO_ROOT / "docs" / "tuning.rst"
SCRIPT_MARK = "# tune.py\n"
_BLOCK = re.compile(r"^\.\. code-block:: python[^\n]*\n((?:[ \t]*\n|[ \t]+[^\n]*\n)+)", re.M)
_BASH = re.compile(r"^\.\. code-block:: bash[^\n]*\n((?:[ \t]*\n|[ \t]+[^\n]*\n)+)", re.M)


def python_blocks(path: Path, pattern: re.Pattern = _BLOCK) -> list[str]:
    """The ``.. code-block:: python`` blocks of a reStructuredText file, dedented."""
    blocks = []
    for m in pattern.finditer(path.read_text()):
        lines = m.group(1).splitlines()
        indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
        blocks.append("\n".join(ln[indent:] for ln in lines).strip() + "\n")
    return blocks


def test_tuning_page_has_the_promised_sections_and_blocks():
    text = TUNING.read_text()
    titles = ("On one machine", "On a Dask cluster", "With Optuna", "Tracking runs with MLflow")
    for title in titles:
        assert f"\n{title}\n---" in text, title
    blocks = python_blocks(TUNING)
    assert sum(b.startswith(SCRIPT_MARK) for b in blocks) == 1


def test_the_study_is_created_once_before_the_workers_start():
    """Workers that all call create_study on a fresh SQLite file race to create its tables
    (``UNIQUE constraint failed: alembic_version``): the page creates the study in a block of
    its own, before the worker script, which only loads it."""
    blocks = python_blocks(TUNING)
    at = next(i for i, b in enumerate(blocks) if b.startswith(SCRIPT_MARK))
    assert "create_study" not in blocks[at] and "optuna.load_study(" in blocks[at]
    storage = re.search(r'storage="([^"]+)"', blocks[at]).group(1)
    assert any("create_study" in b and storage in b for b in blocks[:at])
    assert [b.strip() for b in python_blocks(TUNING, _BASH)] == [WORKERS_LINE]


WORKERS_LINE = "OMP_NUM_THREADS=1 python tune.py & OMP_NUM_THREADS=1 python tune.py & wait"


def test_tuning_examples_run(tmp_path, monkeypatch, capsys):
    import dask
    import optuna

    # A loaded CI machine can stall a worker's event loop for a while (importing torch): more
    # patience than the default before a connection counts as lost.
    patient = {"distributed.comm.timeouts.tcp": "300s", "distributed.comm.timeouts.connect": "120s"}

    saved_config = copy.deepcopy(dask.config.config)  # the page sets a worker option globally
    monkeypatch.chdir(tmp_path)  # the study and MLflow databases land in the working directory
    # `python` in the page's shell line is this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PATH": path}
    namespace: dict = {"__name__": "__example__"}
    try:
        with dask.config.set(patient), warnings.catch_warnings():
            # optuna-integration's OptunaSearchCV is marked experimental, and uses a deprecated
            # optuna module internally; neither is ours to fix.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            for i, code in enumerate(python_blocks(TUNING)):
                if code.startswith(SCRIPT_MARK):
                    (tmp_path / "tune.py").write_text(code)
                    # The page's line, as a shell runs it: two workers at once.
                    (line,) = python_blocks(TUNING, _BASH)
                    workers = subprocess.run(
                        ["bash", "-c", line], env=env, capture_output=True, text=True, timeout=600
                    )
                    assert workers.returncode == 0, workers.stderr[-3000:]
                    assert "Traceback" not in workers.stderr, workers.stderr[-3000:]
                exec(compile(code, f"tuning.rst[block {i}]", "exec"), namespace)  # noqa: S102
    finally:
        for name in ("client", "cluster"):
            if name in namespace:
                namespace[name].close()
        dask.config.config.clear()
        dask.config.config.update(saved_config)
    out = capsys.readouterr().out
    assert "learning_rate" in out

    # Three processes (the shell line's two workers, then this one) ran 2 trials each of the one
    # study in the SQLite file.
    study = optuna.load_study(study_name="gru4rec", storage="sqlite:///gru4rec-study.db")
    assert len(study.trials) == 6
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 6
    assert all(t.intermediate_values for t in finished)  # every trial reported its epochs

    # The Dask scoring returned k ranked items per scored session.
    table = namespace["table"]
    assert list(table.columns) == ["session_id", "rank", "item_id", "score"]
    assert table.groupby("session_id").size().eq(10).all()

    # One MLflow run per trial, with per-epoch metrics and the final ones.
    runs = namespace["runs"]
    assert len(runs) == 2
    assert runs["metrics.best_mrr"].notna().all()
    assert runs["metrics.train_loss"].notna().all()
