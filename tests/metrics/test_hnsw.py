"""The approximate kNN above EXACT_MAX_CELLS (faiss HNSW): scib-metrics' convention (self first, at
distance exactly 0; rows sorted), the same neighbours in every run, near-exact on clustered data, and
the resolution of ``auto`` recorded with every graph metric."""

import numpy as np

from scfm_bench.metrics import MetricInputs, evaluate_suite
from scfm_bench.metrics import _neighbors
from scfm_bench.metrics._neighbors import exact_knn, hnsw_knn, knn, resolve_method


def test_hnsw_self_first_sorted_deterministic_and_close_to_exact(make_blobs):
    X, _, _ = make_blobs(n_per=500, n_labels=4, dim=10)
    X[1] = X[0]  # an identical pair: both must still list themselves first
    idx, dist = hnsw_knn(X, 30)
    assert idx.shape == (2000, 30) and idx.dtype == np.int64 and dist.dtype == np.float32
    assert np.array_equal(idx[:, 0], np.arange(2000)) and (dist[:, 0] == 0).all()
    assert (np.diff(dist, axis=1) >= 0).all()
    assert idx[0, 1] == 1 and dist[0, 1] == 0 and idx[1, 1] == 0
    again = hnsw_knn(X, 30)
    assert np.array_equal(idx, again[0]) and np.array_equal(dist, again[1])
    ex_idx, ex_dist = exact_knn(X, 30)
    recall = np.mean([len(np.intersect1d(a, b)) / 30 for a, b in zip(idx, ex_idx)])
    assert recall > 0.98
    assert np.allclose(np.sort(dist, axis=1)[:, -1], ex_dist[:, -1], rtol=0.05)


def test_auto_switches_to_hnsw_above_the_exact_limit_and_records_it(make_blobs, monkeypatch):
    from scfm_bench.config.schemas import MetricSuite

    X, labels, _ = make_blobs(n_per=100, n_labels=3, dim=8)
    monkeypatch.setattr(_neighbors, "EXACT_MAX_CELLS", 299)
    assert resolve_method(300, "auto") == "hnsw" and resolve_method(299, "auto") == "exact"
    assert resolve_method(300, "exact") == "exact"
    assert np.array_equal(knn(X, 10).indices, hnsw_knn(X, 10)[0])
    suite = MetricSuite.model_validate({"description": "t", "version": 1, "metrics": [
        {"id": "gc", "metric": "graph_connectivity", "family": "bio"}]})
    (o,) = evaluate_suite(suite, MetricInputs(X=X, labels=labels))
    assert o.status == "ok" and o.params["knn"] == {"method": "hnsw"}
    (o,) = evaluate_suite(suite, MetricInputs(X=X, labels=labels, knn_method="exact"))
    assert o.params["knn"] == {"method": "exact"}
