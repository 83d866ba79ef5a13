"""GRU4Rec: session-based next-item recommendation with a GRU, in PyTorch.

scikit-learn-style estimators with recpack's API (:class:`GRU4RecNegSampling`,
:class:`GRU4RecCrossEntropy`) trained the way the reference implementation
trains: session-parallel mini-batches, shared popularity-sampled negatives,
bpr-max / sampled cross-entropy losses and Adagrad with momentum.
"""

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
