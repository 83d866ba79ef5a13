"""Tests of gru4rec.params: every constructor parameter is checked in fit, naming it."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import (
    events,
    neg,
    xent,
)

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling
from gru4rec.params import PARAMS, validate

BAD_PARAMS = [
    # strings, floats, bools and None where an int is needed
    ("hidden_size", "8"),
    ("hidden_size", 8.0),
    ("hidden_size", True),
    ("hidden_size", None),
    ("num_layers", "1"),
    ("num_layers", 1.0),
    ("num_layers", False),
    ("num_components", None),
    ("batch_size", np.float64(4)),
    ("batch_size", True),
    ("bptt", "1"),
    ("max_epochs", 1.5),
    ("max_epochs", None),
    ("max_iter_no_change", 2.0),
    ("predict_topK", "5"),
    ("predict_topK", 0),
    ("validation_sample_size", 1.0),
    ("seed", "1"),
    ("seed", 1.0),
    ("seed", True),
    ("seed", -1),
    # numbers
    ("learning_rate", "0.1"),
    ("learning_rate", None),
    ("learning_rate", True),
    ("learning_rate", 0.0),
    ("learning_rate", float("nan")),
    ("learning_rate", float("inf")),
    ("momentum", None),
    ("momentum", "0.1"),
    ("momentum", 1.0),
    ("dropout", "0"),
    ("dropout", None),
    ("dropout", 1.0),
    ("dropout_hidden", "0.1"),
    ("clipnorm", "1"),
    ("clipnorm", 0),
    ("min_improvement", None),
    # choices, flags, names
    ("optimization_algorithm", None),
    ("optimization_algorithm", ["sgd"]),
    ("optimization_algorithm", "adam"),
    ("stopping_criterion", None),
    ("stopping_criterion", 1),
    ("stopping_criterion", "nope"),
    ("stop_early", 1),
    ("stop_early", "yes"),
    ("keep_last", None),
    ("save_best_to_file", "no"),
    ("constrained_embedding", 0),
    ("verbose", None),
    ("session_col", None),
    ("time_col", 3),
    ("session_order", "id"),
    ("num_threads", 0),
    ("num_threads", -1),
    ("num_threads", 1.5),
    ("num_threads", "2"),
    ("num_threads", True),
    ("device", None),
    ("device", 0),
    ("device", "gpu"),
    ("device", "cuda:x"),
    ("device", "meta"),
]
NEG_ONLY = [
    ("loss_fn", None),
    ("loss_fn", ["bpr"]),
    ("loss_fn", "hinge"),
    ("num_negatives", None),
    ("num_negatives", 2.0),
    ("num_negatives", True),
    ("sample_alpha", None),
    ("sample_alpha", "1"),
    ("logq", "1"),
    ("bpreg", None),
    ("elu_param", -1),
]


@pytest.mark.parametrize(("param", "value"), BAD_PARAMS + NEG_ONLY)
def test_wrong_parameter_raises_value_error_naming_it(param, value):
    est = neg(**{param: value})
    assert est.get_params()[param] is value  # stored unchanged, checked in fit
    with pytest.raises(ValueError, match=param):
        est.fit(events())
    assert not hasattr(est, "model_")


@pytest.mark.parametrize(("param", "value"), BAD_PARAMS[::3])
def test_wrong_parameter_cross_entropy(param, value):
    with pytest.raises(ValueError, match=param):
        xent(**{param: value}).fit(events())


def test_numpy_integers_are_accepted():
    est = neg(hidden_size=np.int64(8), batch_size=np.int32(4), seed=np.uint32(3))
    est.fit(events())
    assert est.model_.hidden_size == 8


def test_seed_beyond_64_bits_raises_naming_seed():
    with pytest.raises(ValueError, match="seed"):
        neg(seed=2**64).fit(events())


def test_the_table_covers_both_signatures_and_their_defaults_agree():
    neg_params = GRU4RecNegSampling().get_params()
    ce_params = GRU4RecCrossEntropy().get_params()
    assert set(neg_params) | set(ce_params) == set(PARAMS)
    assert set(ce_params) < set(neg_params)
    # The parameters both have start from the same defaults.
    assert {k: v for k, v in neg_params.items() if k in ce_params} == ce_params
    assert neg_params["num_threads"] == 1  # so ce_params's too
    # Every default passes its own check.
    validate(neg_params)
    validate(ce_params)
