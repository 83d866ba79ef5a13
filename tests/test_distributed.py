"""Tests of gru4rec.distributed on a real Dask LocalCluster (2 worker processes, 1 thread each):
recommend_dask, and tuning and scoring with the Dask joblib backend (skipped without Dask)."""

from __future__ import annotations

import pickle
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold

from gru4rec import GRU4RecNegSampling, InteractionMatrix
from gru4rec.datasets import make_synthetic_sessions
from gru4rec.distributed import recommend_dask

try:
    import dask.dataframe as dd
    import distributed
except ImportError:  # the tests that need Dask skip; the one of its absence runs
    dd = distributed = None

needs_dask = pytest.mark.skipif(distributed is None, reason="pip install -e '.[dask]'")

PARAMS = dict(
    loss_fn="bpr-max", num_negatives=16, batch_size=32, hidden_size=16, max_epochs=2, seed=0
)


#: A loaded CI machine can stall a worker's event loop for a while (importing torch): more
#: patience than the default before a connection counts as lost.
PATIENT = {"distributed.comm.timeouts.tcp": "300s", "distributed.comm.timeouts.connect": "120s"}


@pytest.fixture(scope="module")
def client():
    import dask

    with (
        dask.config.set(PATIENT),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def events():
    ev = make_synthetic_sessions(n_sessions=200, n_items=400, seed=5)
    ev["item_id"] = "item" + ev["item_id"].astype(str)  # raw ids that are not indices
    return ev


class ThreadCheck:
    """Fails the fit unless torch runs with exactly the threads of the worker it is on."""

    def __call__(self, est, record):
        worker = distributed.get_worker()  # raises outside a worker: the fit ran on the cluster
        if torch.get_num_threads() != worker.state.nthreads:
            raise AssertionError(
                f"fit on {worker.address} uses {torch.get_num_threads()} torch threads, "
                f"the worker has {worker.state.nthreads}"
            )


@needs_dask
def test_grid_search_on_dask_equals_n_jobs_1(client, events):
    X = InteractionMatrix.from_events(events)
    grid = {"learning_rate": [0.05, 0.2]}
    cv = KFold(n_splits=2, shuffle=True, random_state=0)
    local = GridSearchCV(GRU4RecNegSampling(**PARAMS), grid, cv=cv, n_jobs=1).fit(X)
    # error_score="raise": a ThreadCheck failure fails the test; refit=False: every fit
    # happens on the workers.
    remote = GridSearchCV(
        GRU4RecNegSampling(**PARAMS), grid, cv=cv, refit=False, error_score="raise"
    )
    # Workers whose torch would oversubscribe their one thread: only the estimators' own
    # num_threads (default 1) keeps each fit at the worker's thread count.
    client.run(torch.set_num_threads, 2)
    with joblib.parallel_config(backend="dask"):
        remote.fit(X, callbacks=[ThreadCheck()])
    # ... and the workers' own setting is back afterwards.
    assert client.run(torch.get_num_threads) == {w: 2 for w in client.scheduler_info()["workers"]}
    client.run(torch.set_num_threads, 1)
    assert set(local.cv_results_) == set(remote.cv_results_)
    for key, value in local.cv_results_.items():
        if key.endswith("_time"):
            continue
        if isinstance(value, list | np.ma.MaskedArray) or value.dtype == object:
            assert list(value) == list(remote.cv_results_[key]), key
        else:
            np.testing.assert_array_equal(value, remote.cv_results_[key], err_msg=key)


@needs_dask
def test_thread_check_fails_off_the_cluster(events):
    X = InteractionMatrix.from_events(events)
    with pytest.raises(ValueError):  # distributed.get_worker() outside a worker
        GRU4RecNegSampling(**PARAMS).fit(X, callbacks=[ThreadCheck()])


@pytest.fixture(scope="module")
def model(events):
    return GRU4RecNegSampling(**PARAMS).fit(events)


def expected_recommendations(model, events, k):
    ordered = events.sort_values(["session_id", "timestamp"], kind="stable")
    groups = ordered.groupby("session_id", sort=True)["item_id"].agg(list)
    items, scores = model.recommend(list(groups), k=k)
    return pd.DataFrame(
        {
            "session_id": np.repeat(groups.index.to_numpy(), k),
            "rank": np.tile(np.arange(1, k + 1), len(groups)),
            "item_id": items.ravel(),
            "score": scores.ravel(),
        }
    )


@needs_dask
def test_recommend_dask_equals_recommend_with_more_partitions_than_workers(client, model, events):
    k = 7
    # Rows shuffled: within a session the timestamp, not the row order, gives the order.
    shuffled = events.sample(frac=1.0, random_state=0)
    ddf = dd.from_pandas(shuffled.set_index("session_id"), npartitions=6)
    assert ddf.npartitions > len(client.scheduler_info()["workers"])
    recs = recommend_dask(model, ddf, k=k)
    got = recs.compute()
    pd.testing.assert_series_equal(got.dtypes, recs._meta.dtypes)  # metadata is truthful
    got = got.sort_values(["session_id", "rank"]).reset_index(drop=True)
    want = expected_recommendations(model, events, k)
    assert got["session_id"].nunique() == events["session_id"].nunique()
    np.testing.assert_array_equal(got["session_id"], want["session_id"])
    np.testing.assert_array_equal(got["rank"], want["rank"])
    np.testing.assert_array_equal(got["item_id"].to_numpy(object), want["item_id"].to_numpy(object))
    # Batches of other sessions change the float32 rounding of the GEMMs, nothing more.
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)


@needs_dask
def test_recommend_dask_ships_the_model_once(model, events):
    ddf = dd.from_pandas(events.set_index("session_id"), npartitions=8)
    graph = dict(recommend_dask(model, ddf, k=5).__dask_graph__())
    # The graph holds the model once, not once per partition.
    assert len(pickle.dumps(graph)) < 1.5 * len(pickle.dumps(model))


@needs_dask
def test_recommend_dask_session_column_and_empty_partitions(client, model, events):
    ev = events.copy()
    ev["session_id"] = "s" + ev["session_id"].astype(str)
    ddf = dd.from_pandas(ev, npartitions=3, sort=False)
    ddf = ddf.shuffle(on="session_id", npartitions=4)  # sessions whole, by hash
    half = ddf[ddf["session_id"] < "s1"]  # some partitions may end up empty
    got = recommend_dask(model, half, k=3).compute()
    kept = ev[ev["session_id"] < "s1"]
    assert set(got["session_id"]) == set(kept["session_id"])
    assert got.groupby("session_id").size().eq(3).all()


@needs_dask
def test_recommend_dask_bad_input(model, events):
    ddf = dd.from_pandas(events, npartitions=2)
    with pytest.raises(ValueError, match="dask.dataframe.DataFrame"):
        recommend_dask(model, events)
    with pytest.raises(ValueError, match="'sid'"):
        recommend_dask(model, ddf, session_col="sid")
    with pytest.raises(ValueError, match="'iid'"):
        recommend_dask(model, ddf, item_col="iid")
    with pytest.raises(ValueError, match="k must"):
        recommend_dask(model, ddf, k=0)
    with pytest.raises(ValueError, match="fitted"):
        recommend_dask(GRU4RecNegSampling(), ddf)


def test_recommend_dask_without_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)  # import dask now fails
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(ImportError, match=r"gru4rec\[dask\]"):
        recommend_dask(GRU4RecNegSampling(), None)


@needs_dask
def test_recommend_dask_keeps_items_outside_a_categorical_columns_categories(model, events):
    ev = events.copy()
    ev["item_id"] = ev["item_id"].astype("category")
    ev = ev[ev["session_id"] < ev["session_id"].min() + 5]  # few sessions: few categories
    ev["item_id"] = ev["item_id"].cat.remove_unused_categories()
    ddf = dd.from_pandas(ev.set_index("session_id"), npartitions=2)
    got = recommend_dask(model, ddf, k=10).compute(scheduler="sync")
    assert got["item_id"].notna().all()
    assert not set(got["item_id"]) <= set(ev["item_id"].cat.categories)  # other items too
    want = expected_recommendations(model, ev.astype({"item_id": object}), 10)
    got = got.sort_values(["session_id", "rank"]).reset_index(drop=True)
    np.testing.assert_array_equal(got["item_id"].to_numpy(object), want["item_id"].to_numpy(object))
