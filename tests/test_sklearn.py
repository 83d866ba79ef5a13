"""scikit-learn integration: clone, API checks, parameters, pickling, identifier, searches.

The estimators must be model scikit-learn citizens: ``__init__`` only stores its arguments,
``fit`` validates them and returns ``self``, fitted state ends in ``_``, ``clone`` / ``pickle`` /
``GridSearchCV`` / ``RandomizedSearchCV`` (also with ``n_jobs=2`` and metadata routing) work.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
import torch
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, RandomizedSearchCV
from sklearn.utils import estimator_checks

from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, InteractionMatrix, StoppingCriterion
from gru4rec import metrics as gmetrics
from gru4rec.datasets import last_item_split, make_synthetic_sessions
from gru4rec.metrics import make_next_item_scorer, mrr_at_k, recall_at_k

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = [GRU4RecNegSampling, GRU4RecCrossEntropy]


SMALL = dict(hidden_size=16, batch_size=32, max_epochs=2, device="cpu")


def small(cls=GRU4RecNegSampling, **kw):
    params = dict(SMALL)
    if cls is GRU4RecNegSampling:
        params["num_negatives"] = 16
    return cls(**{**params, "seed": 0, **kw})


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return make_synthetic_sessions(300, 50, seed=3)


@pytest.fixture(scope="module")
def X(events) -> InteractionMatrix:
    return InteractionMatrix.from_events(events)


@pytest.fixture(scope="module")
def validation(X):
    """(validation_in, validation_out) of other sessions, in the training item vocabulary."""
    df = make_synthetic_sessions(120, 50, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # items the training data lacks
        Xv = InteractionMatrix.from_events(df, item_vocabulary=X.item_vocabulary)
        return last_item_split(Xv)


@pytest.fixture(scope="module")
def fitted(X):
    return small().fit(X)


@pytest.fixture(scope="module")
def fitted_ce(X):
    return small(GRU4RecCrossEntropy).fit(X)


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def _same_params(a: dict, b: dict) -> bool:
    """Parameter dicts equal, StoppingCriterion instances compared by identity."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, StoppingCriterion) or isinstance(y, StoppingCriterion):
            if x is not y:
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


# -- sklearn's data-free API checks ------------------------------------------------------------

API_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_mixin_order",
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("check_name", API_CHECKS)
def test_sklearn_api_check(cls, check_name):
    check = getattr(estimator_checks, check_name, None)
    if check is None:
        pytest.skip(f"{check_name} is not in scikit-learn {sklearn.__version__}")
    # Every check takes (name, estimator); run it on the defaults and on a configured one.
    check(cls.__name__, cls())
    check(cls.__name__, cls(hidden_size=8, seed=1, device="cpu", learning_rate=0.1))


# -- clone ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_clone_unfitted_keeps_params(cls):
    est = cls(hidden_size=8, learning_rate=0.05, seed=7, device="cpu")
    c = clone(est)
    assert c is not est and type(c) is cls
    assert c.get_params() == est.get_params()


def test_clone_keeps_stopping_criterion_instance_params():
    crit = StoppingCriterion(gmetrics.recall_at_k, needs="ranks", k=10, name="r10")
    est = GRU4RecNegSampling(stopping_criterion=crit, seed=1)
    c = clone(est)
    got = c.get_params()["stopping_criterion"]
    assert isinstance(got, StoppingCriterion)
    assert (got.name, got.k, got.needs, got.func) == ("r10", 10, "ranks", gmetrics.recall_at_k)


@pytest.mark.parametrize("which", ["neg", "ce"])
def test_clone_fitted_gives_unfitted_estimator_with_equal_params(which, fitted, fitted_ce, X):
    est = fitted if which == "neg" else fitted_ce
    c = clone(est)
    assert c.get_params() == est.get_params()
    # Only the constructor parameters are set: no fitted (trailing "_") or private state.
    assert set(vars(c)) == set(est.get_params(deep=False))
    assert not hasattr(c, "model_") and not hasattr(c, "history_")
    with pytest.raises(NotFittedError):
        c.predict(X)
    # The original stays fitted and usable.
    assert est.predict(X).shape == X.shape


# -- our equivalents of the data checks ----------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fit_returns_self(cls, X, events):
    est = small(cls, max_epochs=1)
    assert est.fit(X) is est
    assert est.fit(events) is est  # also from a DataFrame of raw events


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_params_unchanged_by_fit_and_seed_none_stays_none(cls, X, validation):
    est = small(cls, seed=None, max_epochs=1)
    before = est.get_params()
    ident = est.identifier
    est.fit(X, validation_data=validation)
    after = est.get_params()
    assert _same_params(before, after), (before, after)
    assert after["seed"] is None
    assert isinstance(est.seed_, (int, np.integer)) and not isinstance(est.seed_, bool)
    assert est.identifier == ident


def test_stopping_criterion_instance_not_mutated_by_fit(X, validation):
    crit = StoppingCriterion(gmetrics.recall_at_k, needs="ranks", k=20, name="nir20")
    est = small(stopping_criterion=crit, stop_early=True, max_iter_no_change=1, max_epochs=2)
    est.fit(X, validation_data=validation)
    assert est.get_params()["stopping_criterion"] is crit
    # The parameter object keeps its fresh state; the fitted copy records the epochs.
    assert crit.n_updates == 0 and crit.history == [] and crit.best_value is None
    assert crit.stop_early is False and crit.max_iter_no_change == 5
    assert est.stopping_criterion_ is not crit and est.stopping_criterion_.n_updates >= 1


def test_seed_used_is_recorded_and_reproduces_the_fit(X):
    a = small(seed=None, max_epochs=1).fit(X)
    assert isinstance(a.seed_, int)
    b = small(seed=a.seed_, max_epochs=1).fit(X)
    assert b.seed_ == a.seed_
    np.testing.assert_array_equal(_dense(a.predict(X)), _dense(b.predict(X)))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fit_twice_same_seed_same_predictions(cls, X):
    est = small(cls, seed=5)
    p1 = _dense(est.fit(X).predict(X))
    h1 = [r["train_loss"] for r in est.history_]
    p2 = _dense(est.fit(X).predict(X))  # refit of the same object
    h2 = [r["train_loss"] for r in est.history_]
    p3 = _dense(small(cls, seed=5).fit(X).predict(X))  # a fresh object
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(p1, p3)
    assert h1 == h2
    p4 = _dense(small(cls, seed=6).fit(X).predict(X))
    assert not np.array_equal(p1, p4)  # the seed matters, so the comparison above can fail


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_check_is_fitted(cls, X):
    from sklearn.utils.validation import check_is_fitted

    est = small(cls, max_epochs=1)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    check_is_fitted(est.fit(X))
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(est))


@pytest.mark.parametrize("copier", ["pickle", "deepcopy"])
def test_pickle_after_set_params_without_refit_keeps_predict(copier, X):
    import copy

    est = small(hidden_size=8, max_epochs=1).fit(X)
    expected = _dense(est.predict(X))
    est.set_params(hidden_size=12)  # takes effect at the next fit only
    np.testing.assert_array_equal(_dense(est.predict(X)), expected)
    loaded = pickle.loads(pickle.dumps(est)) if copier == "pickle" else copy.deepcopy(est)
    np.testing.assert_array_equal(_dense(loaded.predict(X)), expected)
    assert loaded.get_params()["hidden_size"] == 12


def test_set_params_changes_the_loss(X):
    bpr = small(loss_fn="bpr").fit(X)
    switched = small(loss_fn="bpr").set_params(loss_fn="bpr-max").fit(X)
    direct = small(loss_fn="bpr-max").fit(X)
    losses = [[r["train_loss"] for r in m.history_] for m in (bpr, switched, direct)]
    # recpack's set_params(loss_fn=...) silently kept the old loss; ours trains with the new one.
    assert losses[1] == losses[2]
    assert losses[1] != losses[0]
    np.testing.assert_array_equal(_dense(switched.predict(X)), _dense(direct.predict(X)))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_set_params_changes_the_model_size(cls, X):
    est = small(cls, hidden_size=8, max_epochs=1).fit(X)
    assert est.model_.hidden_size == 8
    est.set_params(hidden_size=12).fit(X)
    assert est.model_.hidden_size == 12
    n_params = {p.shape for p in est.model_.parameters()}
    assert any(12 in shape for shape in n_params)
    assert not any(8 in shape for shape in n_params)


def test_set_params_on_fitted_estimator_takes_effect_on_refit(X):
    est = small(max_epochs=1).fit(X)
    est.set_params(max_epochs=2)
    assert len(est.fit(X).history_) == 2


def test_init_does_no_device_probing_or_global_seeding():
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the global state)
    GRU4RecNegSampling(seed=123, device="cuda")
    GRU4RecCrossEntropy(seed=123, device="auto")
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


# -- identifier, name, filename ------------------------------------------------------------------


def _local_metric(ranks, k=20):
    return recall_at_k(ranks, k)


def test_identifier_format_and_order():
    est = GRU4RecNegSampling(hidden_size=8, loss_fn="bpr-max", learning_rate=0.05)
    ident = est.identifier
    m = re.fullmatch(r"GRU4RecNegSampling\((.*)\)", ident)
    assert m, ident
    params = est.get_params(deep=False)
    keys = [part.split("=", 1)[0] for part in m.group(1).split(",")]
    assert keys == sorted(params) == list(params)
    assert "hidden_size=8" in ident.split("(", 1)[1].split(",")
    assert re.search(r"(^|,)loss_fn='?bpr-max'?(,|$)", m.group(1))
    assert "learning_rate=0.05" in m.group(1).split(",")
    # Stable order whatever the order parameters were set in; differs when a value differs.
    other = GRU4RecNegSampling().set_params(learning_rate=0.05, loss_fn="bpr-max", hidden_size=8)
    assert other.identifier == ident
    assert GRU4RecNegSampling(hidden_size=9).identifier != GRU4RecNegSampling().identifier
    ce = GRU4RecCrossEntropy().identifier
    assert ce.startswith("GRU4RecCrossEntropy(") and "loss_fn" not in ce


@pytest.mark.parametrize(
    "crit",
    [
        StoppingCriterion(_local_metric, needs="ranks", k=20),
        StoppingCriterion(lambda ranks, k: 0.0, needs="ranks", k=5),
        StoppingCriterion.create("ndcg", k=10),
    ],
    ids=["function", "lambda", "named"],
)
def test_identifier_has_no_object_reprs_or_addresses(crit):
    for est in (
        GRU4RecNegSampling(stopping_criterion=crit, device=torch.device("cpu")),
        GRU4RecCrossEntropy(stopping_criterion=crit),
    ):
        ident = est.identifier
        assert "0x" not in ident, ident
        assert " at " not in ident and "<function" not in ident and "object" not in ident
        assert "StoppingCriterion" not in ident
        assert f"stopping_criterion={crit.name}" in ident or (
            f"stopping_criterion={crit.name!r}" in ident
        )


def test_identifier_of_numpy_parameter_values_equals_plain_values():
    plain = GRU4RecNegSampling(loss_fn="bpr-max", hidden_size=8, learning_rate=0.1, seed=3)
    numpy_values = GRU4RecNegSampling(
        loss_fn=np.array(["bpr", "bpr-max"])[1],
        hidden_size=np.int64(8),
        learning_rate=np.float64(0.1),
        seed=np.int32(3),
    )
    assert "np." not in numpy_values.identifier and "numpy" not in numpy_values.identifier
    assert numpy_values.identifier == plain.identifier


IDENTIFIER_SCRIPT = """
import json
from gru4rec import GRU4RecCrossEntropy, GRU4RecNegSampling, StoppingCriterion
from gru4rec import metrics
crit = StoppingCriterion(metrics.recall_at_k, needs="ranks", k=10, name="nir10")
ests = [
    GRU4RecNegSampling(),
    GRU4RecNegSampling(hidden_size=8, loss_fn="bpr-max", learning_rate=1e-3, seed=None,
                       stopping_criterion=crit, clipnorm=None, device="cpu"),
    GRU4RecCrossEntropy(seed=3, dropout=0.25),
]
print(json.dumps([e.identifier for e in ests]))
"""


@pytest.mark.slow
def test_identifier_stable_across_processes():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(IDENTIFIER_SCRIPT, "<identifier>", "exec"), {})
    here = json.loads(buf.getvalue())
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", IDENTIFIER_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=True,
    )
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there == here
    assert len(set(here)) == 3 and all("0x" not in s for s in here)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_name_and_filename(cls, X, validation):
    est = small(cls, max_epochs=1)
    assert est.name == cls.__name__
    # As recpack: str() is the name (repr() stays scikit-learn's), and the file name holds
    # the best value, or the criterion's starting value before any validation.
    assert str(est) == cls.__name__ and repr(est).startswith(f"{cls.__name__}(")
    assert "max_epochs=1" in repr(est) and "num_layers" not in repr(est)
    assert est.filename == f"{cls.__name__}_loss_-inf.trch"
    crit = StoppingCriterion(gmetrics.bpr_loss_metric, minimize=True, needs="scores", name="b")
    assert cls(stopping_criterion=crit).filename == f"{cls.__name__}_loss_inf.trch"
    assert cls(stopping_criterion="bpr").filename == f"{cls.__name__}_loss_inf.trch"
    est.fit(X, validation_data=validation)
    assert est.name == cls.__name__
    assert est.filename == f"{cls.__name__}_loss_{est.best_value_}.trch"
    assert est.best_value_ == pytest.approx(est.history_[est.best_epoch_]["recall"])


# -- tags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_sklearn_tags(cls):
    from sklearn.utils import get_tags

    tags = get_tags(cls(device="cpu"))
    assert tags.target_tags.required is False
    assert tags.non_deterministic is False
    assert tags.requires_fit is True
    assert get_tags(cls(device="cuda")).non_deterministic is True
    assert get_tags(cls(device="auto")).non_deterministic is torch.cuda.is_available()


# -- model selection -----------------------------------------------------------------------------


def _search(kind: str, n_jobs: int, cls=GRU4RecNegSampling, **kw):
    base = small(cls, max_epochs=1)
    if kind == "grid":
        return GridSearchCV(
            base,
            {"learning_rate": [0.01, 0.1]},
            n_jobs=n_jobs,
            error_score="raise",
            **kw,
        )
    return RandomizedSearchCV(
        base,
        {"learning_rate": loguniform(1e-3, 2e-1), "hidden_size": [8, 16]},
        n_iter=2,
        random_state=0,
        n_jobs=n_jobs,
        error_score="raise",
        **kw,
    )


@pytest.mark.filterwarnings("ignore:.* dropped .* events:UserWarning")
@pytest.mark.parametrize(
    "kind, data, cls",
    [
        ("grid", "matrix-kfold", GRU4RecNegSampling),
        ("grid", "frame-groupkfold", GRU4RecCrossEntropy),
        ("random", "matrix-kfold", GRU4RecCrossEntropy),
        ("random", "frame-groupkfold", GRU4RecNegSampling),
    ],
    ids=["grid-matrix-neg", "grid-frame-ce", "random-matrix-ce", "random-frame-neg"],
)
def test_search_n_jobs_1_and_2_identical(kind, data, cls, X, events):
    results = []
    for n_jobs in (1, 2):
        refit = n_jobs == 2
        if data == "matrix-kfold":
            search = _search(kind, n_jobs, cls, cv=KFold(n_splits=2), refit=refit).fit(X)
        else:
            search = _search(kind, n_jobs, cls, cv=GroupKFold(n_splits=2), refit=refit)
            search.fit(events, groups=events["session_id"])
        results.append(search)
    a, b = (s.cv_results_ for s in results)
    assert [p for p in a["params"]] == [p for p in b["params"]]
    np.testing.assert_array_equal(a["mean_test_score"], b["mean_test_score"])
    for split in ("split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(a[split], b[split])
    scores = a["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all((scores > 0) & (scores <= 1))
    assert results[0].best_params_ == results[1].best_params_
    assert hasattr(results[1].best_estimator_, "model_")
    # Without scoring=, the search uses est.score: next-item Recall@20 at every position.
    cv = results[0].cv
    if data == "matrix-kfold":
        train, test = next(cv.split(np.arange(len(X))))
        X_train, X_test = X[train], X[test]
    else:
        train, test = next(cv.split(events, groups=events["session_id"]))
        X_train, X_test = events.iloc[train], events.iloc[test]
    est = clone(results[0].estimator).set_params(**a["params"][0]).fit(X_train)
    expected = recall_at_k(est.next_item_ranks(X_test), 20)
    assert a["split0_test_score"][0] == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def designed():
    """Sessions with strong sequential signal; a tiny learning rate cannot learn it."""
    return InteractionMatrix.from_events(make_synthetic_sessions(300, 60, seed=0))


GOOD = {"learning_rate": 0.1, "hidden_size": 16}
DESIGNED_GRID = {"learning_rate": [1e-6, 0.1], "hidden_size": [2, 16]}


@pytest.mark.slow
def test_grid_search_2x2_n_jobs_2_finds_the_good_corner(designed):
    base = small(seed=0)
    search = GridSearchCV(
        base, DESIGNED_GRID, cv=KFold(n_splits=2), n_jobs=2, error_score="raise"
    ).fit(designed)
    assert search.best_params_ == GOOD
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4
    params = search.cv_results_["params"]
    best = scores[params.index(GOOD)]
    for p, s in zip(params, scores, strict=True):
        if p != GOOD:
            assert s < best - 0.02, (p, s, best)
        if p["learning_rate"] == 1e-6:  # untrained: far behind
            assert s < best - 0.2, (p, s, best)
    assert search.best_estimator_.get_params()["hidden_size"] == 16
    assert search.best_estimator_.model_.hidden_size == 16
    assert search.best_score_ == best


def test_grid_search_with_next_item_scorer(X):
    scorer = make_next_item_scorer("mrr")
    cv = KFold(n_splits=2)
    search = GridSearchCV(
        small(max_epochs=1),
        {"learning_rate": [0.01, 0.1]},
        cv=cv,
        scoring=scorer,
        refit=False,
        error_score="raise",
    ).fit(X)
    train, test = next(cv.split(np.arange(len(X))))
    est = small(max_epochs=1, learning_rate=0.1).fit(X[train])
    expected = mrr_at_k(est.next_item_ranks(X[test]), 20)
    assert search.cv_results_["split0_test_score"][1] == pytest.approx(expected, abs=1e-12)
    # MRR@20, not the default Recall@20 score.
    assert expected != pytest.approx(est.score(X[test]), abs=1e-6)


_SEEN_VALIDATION: list = []


class _SpyNegSampling(GRU4RecNegSampling):
    """Records what fit receives as validation_data (same constructor, same parameters)."""

    def fit(self, X, validation_data=None):
        _SEEN_VALIDATION.append(validation_data)
        return super().fit(X, validation_data=validation_data)


def _check_validation_search(search, validation):
    assert len(_SEEN_VALIDATION) == 2 * 2 + 1  # 2 candidates x 2 folds + refit
    for seen in _SEEN_VALIDATION:
        assert isinstance(seen, tuple) and len(seen) == 2
        assert seen[0] is validation[0] and seen[1] is validation[1]  # passed through whole
    best = search.best_estimator_
    assert len(best.history_) == 2
    assert all(isinstance(r.get("recall"), float) for r in best.history_)
    assert best.best_value_ == max(r["recall"] for r in best.history_)
    assert best.best_epoch_ in (0, 1)


@pytest.mark.parametrize("data", ["matrix-kfold", "frame-groupkfold"])
def test_validation_data_passes_through_grid_search(data, X, events, validation):
    _SEEN_VALIDATION.clear()
    if data == "matrix-kfold":
        vdata = validation
        search = GridSearchCV(
            _SpyNegSampling(**{**small().get_params()}),
            {"learning_rate": [0.01, 0.1]},
            cv=KFold(n_splits=2),
            error_score="raise",
        )
        search.fit(X, validation_data=vdata)
    else:
        val_df = make_synthetic_sessions(80, 50, seed=9)
        last = val_df.groupby("session_id").cumcount(ascending=False) == 0
        vdata = (val_df[~last], val_df[last])
        search = GridSearchCV(
            _SpyNegSampling(**{**small().get_params()}),
            {"learning_rate": [0.01, 0.1]},
            cv=GroupKFold(n_splits=2),
            error_score="raise",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # items unknown to a fold
            search.fit(events, groups=events["session_id"], validation_data=vdata)
    _check_validation_search(search, vdata)


@pytest.mark.slow
def test_validation_data_with_metadata_routing(X, validation):
    old = sklearn.get_config()["enable_metadata_routing"]
    _SEEN_VALIDATION.clear()
    try:
        sklearn.set_config(enable_metadata_routing=True)
        grid = {"learning_rate": [0.01, 0.1]}
        # Routing really is on: unrequested metadata is refused.
        unrequested = _SpyNegSampling(**small().get_params())
        with pytest.raises((ValueError, TypeError), match="validation_data"):
            GridSearchCV(unrequested, grid, cv=KFold(n_splits=2)).fit(X, validation_data=validation)
        _SEEN_VALIDATION.clear()
        est = _SpyNegSampling(**small().get_params())
        assert est.set_fit_request(validation_data=True) is est
        search = GridSearchCV(est, grid, cv=KFold(n_splits=2), error_score="raise")
        search.fit(X, validation_data=validation)
        _check_validation_search(search, validation)
        # And with n_jobs=2 (the real class, requests pickled to the workers).
        est2 = small().set_fit_request(validation_data=True)
        search2 = GridSearchCV(est2, grid, cv=KFold(n_splits=2), n_jobs=2, error_score="raise")
        search2.fit(X, validation_data=validation)
        assert all("recall" in r for r in search2.best_estimator_.history_)
    finally:
        sklearn.set_config(enable_metadata_routing=old)
