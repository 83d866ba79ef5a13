"""The estimators' input contract, as recpack's: what fit, predict, score and validation_data take.

Objects with recpack's public InteractionMatrix surface are accepted (read through that surface
only); inputs without timestamps are a ValueError naming them; scipy matrices and other types are
a TypeError saying what to pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix, Vocabulary
from gru4rec.datasets import last_item_split


def small(cls=GRU4RecNegSampling, **kw):
    params = dict(hidden_size=8, batch_size=16, max_epochs=2, seed=0, device="cpu")
    if cls is GRU4RecNegSampling:
        params["num_negatives"] = 8
    return cls(**{**params, **kw})


class PublicOnly:
    """recpack's public InteractionMatrix members of a wrapped matrix, and nothing else."""

    def __init__(self, matrix: InteractionMatrix):
        object.__setattr__(self, "wrapped", matrix)

    def __getattr__(self, name):
        raise AttributeError(f"PublicOnly has no {name}")

    shape = property(lambda self: self.wrapped.shape)
    values = property(lambda self: self.wrapped.values)
    has_timestamps = property(lambda self: self.wrapped.has_timestamps)
    timestamps = property(lambda self: self.wrapped.timestamps)
    num_interactions = property(lambda self: self.wrapped.num_interactions)
    sorted_item_history = property(lambda self: self.wrapped.sorted_item_history)

    def users_in(self, U, inplace=False):
        return PublicOnly(self.wrapped.users_in(U))


@pytest.fixture(scope="module")
def data(split):
    _, _, X, X_test = split
    val_in, val_out = last_item_split(X_test)
    return X, X_test, val_in, val_out


@pytest.mark.parametrize("cls", [GRU4RecNegSampling, GRU4RecCrossEntropy])
def test_look_alike_objects_work_everywhere(data, cls):
    X, X_test, val_in, val_out = data
    ref = small(cls).fit(X, validation_data=(val_in, val_out))
    est = small(cls).fit(PublicOnly(X), validation_data=(PublicOnly(val_in), PublicOnly(val_out)))
    assert [r["recall"] for r in est.history_] == [r["recall"] for r in ref.history_]
    expect = ref.predict(X_test).toarray()
    np.testing.assert_allclose(est.predict(PublicOnly(X_test)).toarray(), expect, rtol=1e-6)
    np.testing.assert_allclose(ref.predict(PublicOnly(X_test)).toarray(), expect, rtol=1e-6)
    assert est.score(PublicOnly(X_test)) == pytest.approx(ref.score(X_test))


def test_no_timestamps_is_a_value_error_naming_the_input(data):
    X, X_test, val_in, val_out = data
    no_ts = X.eliminate_timestamps()
    with pytest.raises(ValueError, match="X has no timestamps"):
        small().fit(no_ts)
    with pytest.raises(ValueError, match="X has no timestamps"):
        small().fit(PublicOnly(no_ts))
    with pytest.raises(ValueError, match="validation_in has no timestamps"):
        small().fit(X, validation_data=(val_in.eliminate_timestamps(), val_out))
    with pytest.raises(ValueError, match="validation_out has no timestamps"):
        small().fit(X, validation_data=(val_in, val_out.eliminate_timestamps()))
    fitted = small(max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="X has no timestamps"):
        fitted.predict(X_test.eliminate_timestamps())


def test_scipy_matrices_and_other_types_are_type_errors(data):
    X, X_test, val_in, val_out = data
    with pytest.raises(TypeError, match="X is a scipy sparse matrix.*InteractionMatrix"):
        small().fit(X.values)
    with pytest.raises(TypeError, match="validation_out is a scipy sparse matrix"):
        small().fit(X, validation_data=(val_in, val_out.values))
    fitted = small(max_epochs=1).fit(X)
    with pytest.raises(TypeError, match="X is a scipy sparse matrix"):
        fitted.predict(X_test.values)
    with pytest.raises(TypeError, match="X must be an InteractionMatrix"):
        fitted.score(X_test.values.toarray())


def test_validation_data_with_other_item_numbering_is_an_error(split, data):
    _, test, X, _ = split
    _, _, val_in, val_out = data
    reversed_items = Vocabulary(X.item_ids[::-1])
    renumbered = InteractionMatrix.from_events(test, item_vocabulary=reversed_items)
    assert renumbered.shape[1] == X.shape[1]  # the column count alone cannot tell
    for pair, name in (((renumbered, val_out), "validation_in"), ((val_in, renumbered), "")):
        with pytest.raises(ValueError, match=f"{name}.*numbers its items differently"):
            small().fit(X, validation_data=pair)


def test_fit_takes_y_none_as_scikit_learn_passes_it(data):
    X = data[0]
    a = small(max_epochs=1).fit(X, y=None)
    b = small(max_epochs=1).fit(X, None)
    np.testing.assert_array_equal(a.predict(X).toarray(), b.predict(X).toarray())
    with pytest.raises(ValueError, match="y must be None"):
        small(max_epochs=1).fit(X, y=np.zeros(X.shape[0]))
