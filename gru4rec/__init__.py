"""GRU4Rec: session-based next-item recommendation with a GRU, in PyTorch.

scikit-learn-style estimators with recpack's API (:class:`GRU4RecNegSampling`,
:class:`GRU4RecCrossEntropy`) trained the way the reference implementation
trains: session-parallel mini-batches, shared popularity-sampled negatives,
bpr-max / sampled cross-entropy losses and Adagrad with momentum.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .estimator import GRU4RecCrossEntropy, GRU4RecNegSampling, TrainingDivergedError
    from .matrix import InteractionMatrix, SessionArrays, Vocabulary
    from .stopping import StoppingCriterion

__version__ = "0.1.0"

__all__ = [
    "GRU4RecCrossEntropy",
    "GRU4RecNegSampling",
    "InteractionMatrix",
    "SessionArrays",
    "StoppingCriterion",
    "TrainingDivergedError",
    "Vocabulary",
    "__version__",
]

# Imported on first use: the command line (`gru4rec --help`) needs neither torch nor
# scikit-learn, which take seconds to import.
_HOME = {
    "GRU4RecCrossEntropy": "estimator",
    "GRU4RecNegSampling": "estimator",
    "TrainingDivergedError": "estimator",
    "InteractionMatrix": "matrix",
    "SessionArrays": "matrix",
    "Vocabulary": "matrix",
    "StoppingCriterion": "stopping",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
