"""The exact kNN (metrics/_neighbors.py) against scanpy's own neighbour search, and the shared graph.

Defect fixed: a float32 brute-force search put a cell's distance to itself at ~1e-6 instead of 0,
and UMAP's connectivities read that as the nearest-neighbour distance ρ, so the 15-NN
connectivities differed from scanpy's by up to 0.7 on identical neighbour sets.
"""

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs
from scfm_bench.metrics._neighbors import NeighborGraph, exact_knn, knn


def _with_duplicates(X):
    """Append an identical pair, away from the rest: each is at distance 0 from the other, ordered by
    index as scanpy does. (Where equal distances fall exactly at the k-th place, sklearn's heap order
    decides which one scanpy keeps; that order is unspecified, so the pair sits where it cannot happen.)"""
    far = np.full((2, X.shape[1]), 40.0, dtype=X.dtype)
    return np.vstack([X, far])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_umap_connectivities_equal_scanpy(make_blobs, seed):
    import scanpy as sc
    from anndata import AnnData

    X, _, _ = make_blobs(n_per=300 + 100 * seed, n_labels=4, dim=10 + 10 * seed, seed=seed)
    X = _with_duplicates(X)
    ad = AnnData(np.zeros((len(X), 1), dtype=np.float32))
    ad.obsm["X_e"] = X
    sc.pp.neighbors(ad, n_neighbors=15, use_rep="X_e", method="umap")  # scanpy runs its own kNN search
    ours = knn(X, 90, method="exact").subset_neighbors(15)
    diff = abs(ours.knn_graph_connectivities.tocsr() - ad.obsp["connectivities"])
    assert diff.max() <= 1e-6
    n = len(X) - 2
    assert (ours.indices[:n + 1, 0] == np.arange(n + 1)).all() and (ours.distances[:, 0] == 0).all()
    assert ours.indices[n + 1, :2].tolist() == [n, n + 1] and ours.distances[n + 1, 1] == 0


@pytest.mark.parametrize("search", ["faiss", "torch"])
def test_exact_knn_equals_brute_force_float64(monkeypatch, search):
    import scfm_bench.metrics._neighbors as nb

    if search == "torch":  # the GPU path's candidate search, run here on torch's CPU device
        monkeypatch.setattr(nb, "_faiss_candidates", lambda X32, m: nb._torch_candidates(X32, m, "cpu"))
    monkeypatch.setattr(nb, "_FAISS_ROWS", 256)  # several query blocks, and
    monkeypatch.setattr(nb, "_REFINE_BYTES", 8 * 40 * 8 * 50)  # several re-measured blocks of 50 rows
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(700, 8)) * 50 + 1000).astype(np.float32)  # large offset: cancellation-prone
    X[650:] = X[:50]  # duplicated cells: distance-0 ties, ordered by index
    idx, dist = exact_knn(X, 30)
    X64 = X.astype(np.float64)
    D = np.sqrt(((X64[:, None, :] - X64[None, :, :]) ** 2).sum(-1))
    order = np.lexsort((np.broadcast_to(np.arange(len(X)), D.shape), D), axis=1)[:, :30]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(dist, np.take_along_axis(D, order, axis=1), rtol=1e-6)
    assert (dist[650:, 1] == 0).all() and (dist[:, 0] == 0).all()


def test_one_graph_per_embedding_shared_by_tasks(make_blobs, monkeypatch):
    import scfm_bench.metrics._neighbors as nb

    calls = []
    real = nb.knn
    monkeypatch.setattr(nb, "knn", lambda X, k, **kw: calls.append(k) or real(X, k, **kw))
    X, labels, batch = make_blobs(n_per=60, n_labels=3)
    graph = NeighborGraph(X)
    a = MetricInputs(X=X, labels=labels, neighbors=graph)
    b = MetricInputs(X=X, labels=labels, batch=batch, neighbors=graph)
    assert a.knn15 is b.knn15 and a.knn90 is b.knn90  # the same objects: connectivities computed once
    assert b.knn50.n_neighbors == 50 and calls == [90]
    graph.get(120)  # a metric needing more neighbours rebuilds once at the larger k, smaller k still subset
    assert calls == [90, 120] and graph.get(90).n_neighbors == 90 and graph.get(90).indices.shape[1] == 90
    with pytest.raises(ValueError, match="different embedding"):
        MetricInputs(X=X.copy(), neighbors=graph)
