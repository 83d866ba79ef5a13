"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests fit tiny models: extra threads only fight over the CI machine's 2 cores.

    (The library itself never changes torch's thread settings; tests may.)
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real data sets: $GRU4REC_SHARED_DATA, else ../shared/data beside the repository.

    Skips the test when the folder does not exist.
    """
    env = os.environ.get("GRU4REC_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real data sets not found at {path} (set GRU4REC_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def split():
    """A small synthetic time split: ``(train, test, X, X_test)`` (events and matrices)."""
    from gru4rec import InteractionMatrix
    from gru4rec.datasets import make_synthetic_sessions, time_split

    df = make_synthetic_sessions(300, 50, seed=3)
    train, test = time_split(df, test_days=0.02)
    X = InteractionMatrix.from_events(train)
    X_test = InteractionMatrix.from_events(test, item_vocabulary=X.item_vocabulary)
    return train, test, X, X_test


@pytest.fixture
def torch_only(monkeypatch):
    """``torch_only(on)`` switches the compiled kernels on or off for the rest of the test
    (off: the package's torch code, the reference of every kernel)."""
    pytest.importorskip("numba")
    from gru4rec import kernels

    def switch(on: bool) -> None:
        monkeypatch.setattr(kernels, "AVAILABLE", on)

    return switch
