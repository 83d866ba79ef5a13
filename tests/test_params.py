"""Tests of gru4rec.params: every constructor parameter is checked in fit, naming it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tiny import (
    events,
    neg,
    xent,
)

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling
from gru4rec.params import PARAMS, validate

# One table of bad values for both estimators: types (strings, floats, bools and None where
# another type is needed), ranges, choices, flags and names.
BAD_PARAMS = [
    ("num_layers", "1"),
    ("num_layers", 1.0),
    ("num_layers", False),
    ("num_layers", 0),
    ("hidden_size", "8"),
    ("hidden_size", 8.0),
    ("hidden_size", True),
    ("hidden_size", None),
    ("hidden_size", -1),
    ("hidden_size", 0),
    ("hidden_size", 2.5),
    ("num_components", None),
    ("num_components", -5),
    ("num_components", 0),
    ("dropout", "0"),
    ("dropout", None),
    ("dropout", 1.0),
    ("dropout", -0.1),
    ("dropout", 1.5),
    ("optimization_algorithm", None),
    ("optimization_algorithm", ["sgd"]),
    ("optimization_algorithm", "adam"),
    ("optimization_algorithm", "rmsprop"),
    ("momentum", None),
    ("momentum", "0.1"),
    ("momentum", 1.0),
    ("momentum", -0.5),
    ("momentum", 1.5),
    ("clipnorm", "1"),
    ("clipnorm", 0),
    ("clipnorm", 0.0),
    ("bptt", "1"),
    ("bptt", 0),
    ("batch_size", np.float64(4)),
    ("batch_size", True),
    ("batch_size", -2),
    ("batch_size", 1.5),
    ("batch_size", 0),
    ("max_epochs", 1.5),
    ("max_epochs", None),
    ("max_epochs", 0),
    ("learning_rate", "0.1"),
    ("learning_rate", None),
    ("learning_rate", True),
    ("learning_rate", 0.0),
    ("learning_rate", float("nan")),
    ("learning_rate", float("inf")),
    ("learning_rate", -0.1),
    ("stopping_criterion", None),
    ("stopping_criterion", 1),
    ("stopping_criterion", "auc"),
    ("stop_early", 1),
    ("stop_early", "yes"),
    ("max_iter_no_change", 2.0),
    ("max_iter_no_change", 0),
    ("min_improvement", None),
    ("min_improvement", -1.0),
    ("seed", "1"),
    ("seed", 1.0),
    ("seed", True),
    ("seed", -1),
    ("seed", 1.5),
    ("save_best_to_file", "no"),
    ("keep_last", None),
    ("keep_last", "yes"),
    ("predict_topK", "5"),
    ("predict_topK", 0),
    ("validation_sample_size", 1.0),
    ("validation_sample_size", 0),
    ("dropout_hidden", "0.1"),
    ("dropout_hidden", 1.2),
    ("constrained_embedding", 0),
    ("constrained_embedding", None),
    ("device", None),
    ("device", 0),
    ("device", "gpu"),
    ("device", "cuda:x"),
    ("device", "meta"),
    ("device", "tpu"),
    ("verbose", None),
    ("num_threads", 0),
    ("num_threads", -1),
    ("num_threads", 1.5),
    ("num_threads", "2"),
    ("num_threads", True),
    ("session_col", None),
    ("session_col", 0),
    ("time_col", 3),
    ("session_order", "id"),
]
NEG_ONLY = [
    ("loss_fn", None),
    ("loss_fn", ["bpr"]),
    ("loss_fn", "hinge"),
    ("num_negatives", None),
    ("num_negatives", 2.0),
    ("num_negatives", True),
    ("num_negatives", 0),
    ("num_negatives", -3),
    ("sample_alpha", None),
    ("sample_alpha", "1"),
    ("sample_alpha", -0.5),
    ("bpreg", None),
    ("bpreg", -1.0),
    ("elu_param", -1),
    ("elu_param", -1.0),
    ("logq", "1"),
    ("logq", -1.0),
]


def _cases():
    for name, value in BAD_PARAMS:
        for make in (neg, xent):
            yield pytest.param(make, name, value, id=f"{make.__name__}-{name}={value!r}")
    for name, value in NEG_ONLY:
        yield pytest.param(neg, name, value, id=f"neg-{name}={value!r}")


@pytest.mark.parametrize(("make", "param", "value"), list(_cases()))
def test_init_keeps_a_bad_value_and_fit_rejects_it_naming_the_parameter(make, param, value):
    est = make(**{param: value})  # __init__ accepts anything ...
    assert est.get_params()[param] is value
    est.set_params(**{param: value})  # ... and so does set_params
    with pytest.raises(ValueError, match=re.escape(param)):
        est.fit(events())
    assert not hasattr(est, "model_")
    assert est.get_params()[param] is value  # fit changes no parameter


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
