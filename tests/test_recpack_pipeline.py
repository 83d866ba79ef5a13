"""recpack 0.3.6's own objects and Pipeline with our estimators.

Runs only where recpack 0.3.6 is importable (it needs numpy<2 and pandas<3, so it usually lives
in a separate virtual environment; ``benchmarks/recpack_pipeline.py`` sets one up). The package
itself never imports recpack.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.matrix import InteractionMatrix, as_interaction_matrix, to_csr_matrix


def _recpack_version() -> str | None:
    try:
        return importlib.metadata.version("recpack")
    except importlib.metadata.PackageNotFoundError:
        return None


pytestmark = pytest.mark.skipif(
    _recpack_version() != "0.3.6",
    reason=f"needs recpack 0.3.6 (installed: {_recpack_version()}); "
    "benchmarks/recpack_pipeline.py runs it in its own venv",
)

SMALL = dict(
    hidden_size=32,
    batch_size=32,
    max_epochs=3,
    learning_rate=0.05,
    seed=0,
    device="cpu",
    verbose=False,
)
_names = itertools.count()
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scenario():
    from recpack.preprocessing.preprocessors import DataFramePreprocessor
    from recpack.scenarios import LastItemPrediction

    df = make_synthetic_sessions(400, 60, mean_length=6.0, seed=0)
    proc = DataFramePreprocessor("item_id", "session_id", "timestamp")
    im = proc.process(df)
    split = LastItemPrediction(validation=True, seed=0)
    split.split(im)
    return im, split


def _register(cls) -> str:
    from recpack.pipelines import ALGORITHM_REGISTRY

    name = f"{cls.__name__}_{next(_names)}"
    ALGORITHM_REGISTRY.register(name, cls)
    return name


def test_recpack_matrix_converts_through_its_public_surface(scenario):
    im, _ = scenario
    ours = as_interaction_matrix(im)
    assert isinstance(ours, InteractionMatrix) and ours is not im
    assert ours.shape == im.shape and ours.num_interactions == im.num_interactions
    assert (ours.values != im.values).nnz == 0
    assert [(u, list(h)) for u, h in ours.sorted_item_history] == [
        (int(u), list(h)) for u, h in im.sorted_item_history
    ]
    assert (to_csr_matrix(im) != im.values).nnz == 0
    # a filtered recpack matrix (non-contiguous interaction ids) converts too
    sub = im.users_in([0, 3, 5])
    assert (as_interaction_matrix(sub).values != sub.values).nnz == 0


def test_fit_predict_score_take_recpack_matrices(scenario):
    _, split = scenario
    val_in, val_out = split.validation_data
    est = GRU4RecNegSampling(**SMALL).fit(split.validation_training_data, (val_in, val_out))
    assert len(est.history_) == SMALL["max_epochs"]
    test_in, _ = split.test_data
    pred = est.predict(test_in)
    assert pred.shape == test_in.shape
    ours = as_interaction_matrix(test_in)
    assert np.allclose(pred.toarray(), est.predict(ours).toarray())
    assert 0.0 <= est.score(split.full_training_data) <= 1.0
    # without timestamps: a ValueError naming the input
    no_ts = test_in.eliminate_timestamps()
    with pytest.raises(ValueError, match="X has no timestamps"):
        est.predict(no_ts)
    with pytest.raises(ValueError, match="validation_out has no timestamps"):
        GRU4RecNegSampling(**SMALL).fit(
            split.validation_training_data, (val_in, val_out.eliminate_timestamps())
        )


def test_save_files_round_trip_between_recpack_and_us(scenario, tmp_path):
    from recpack.matrix import InteractionMatrix as RecpackMatrix

    im, _ = scenario
    sub = im.timestamps_gt(int(np.median(im.timestamps)))
    sub.save(str(tmp_path / "theirs"))
    ours = InteractionMatrix.load(str(tmp_path / "theirs"))
    assert ours.shape == sub.shape and (ours.values != sub.values).nnz == 0
    pd.testing.assert_series_equal(ours.timestamps, sub.timestamps, check_dtype=False)
    ours.save(str(tmp_path / "ours"))
    back = RecpackMatrix.load(str(tmp_path / "ours"))
    assert back.shape == sub.shape and (back.values != sub.values).nnz == 0
    pd.testing.assert_series_equal(back.timestamps, sub.timestamps, check_dtype=False)
    no_ts = as_interaction_matrix(sub).eliminate_timestamps()
    no_ts.save(str(tmp_path / "nots"))
    back = RecpackMatrix.load(str(tmp_path / "nots"))
    assert not back.has_timestamps and (back.values != sub.values).nnz == 0


@pytest.mark.parametrize("cls", [GRU4RecNegSampling, GRU4RecCrossEntropy])
def test_pipeline_with_grid_search_runs_end_to_end(scenario, tmp_path, cls):
    from recpack.pipelines import PipelineBuilder

    _, split = scenario
    name = _register(cls)
    builder = PipelineBuilder(folder_name="run", base_path=str(tmp_path))
    builder.set_data_from_scenario(split)
    builder.add_algorithm("Popularity", params={"K": 100})
    with pytest.warns(UserWarning, match="Grid parameter"):
        builder.add_algorithm(
            name,
            params={k: v for k, v in SMALL.items() if k != "learning_rate"},
            grid={"learning_rate": [0.01, 0.05]},
        )
    builder.set_optimisation_metric("CalibratedRecallK", K=10)
    builder.add_metric("CalibratedRecallK", K=[10, 20])
    builder.add_metric("ReciprocalRankK", K=20)
    pipeline = builder.build()
    pipeline.run()
    metrics = pipeline.get_metrics(short=True)
    assert set(metrics.index) == {"Popularity", cls.__name__}
    assert set(metrics.columns) == {
        "CalibratedRecallK_10",
        "CalibratedRecallK_20",
        "ReciprocalRankK_20",
    }
    ours, pop = metrics.loc[cls.__name__], metrics.loc["Popularity"]
    assert ((ours >= 0) & (ours <= 1)).all()
    # the synthetic sessions follow item-to-item transitions that popularity cannot see
    assert ours["CalibratedRecallK_20"] > pop["CalibratedRecallK_20"]
    tried = pipeline.optimisation_results
    assert sorted(p["learning_rate"] for p in tried["params"]) == [0.01, 0.05]
    assert tried["identifier"].str.startswith(cls.__name__ + "(").all()


def test_the_documented_pipeline_script_runs(tmp_path):
    """docs/migrating.rst shows docs/examples/recpack_pipeline.py; it runs as written."""
    script = REPO_ROOT / "docs" / "examples" / "recpack_pipeline.py"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TQDM_DISABLE="1")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    # recpack logs to stdout too: the table starts at its header
    lines = lines[next(i for i, ln in enumerate(lines) if "CalibratedRecallK_10" in ln) :]
    assert lines[0].split() == [
        "CalibratedRecallK_10",
        "CalibratedRecallK_20",
        "ReciprocalRankK_20",
    ]
    scores = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in lines[1:]}
    assert set(scores) == {"Popularity", "GRU4RecNegSampling"}
    assert scores["GRU4RecNegSampling"][1] > scores["Popularity"][1]
