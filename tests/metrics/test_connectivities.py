"""UMAP connectivities in numpy (metrics/_connectivities.py) equal umap's fuzzy_simplicial_set (what
scib-metrics' NeighborsResults computes with numba) bit for bit, for 15/50/90 neighbours, on seeded
inputs including one above 8,192 cells; and glibc's expf algorithm equals numba's float32 exp."""

import numpy as np
import pytest
from scib_metrics.nearest_neighbors import NeighborsResults

from scfm_bench.metrics._connectivities import Neighbors, _expf, umap_connectivities
from scfm_bench.metrics._neighbors import knn


def _assert_equal_umap(X, k):
    nn = knn(X, k, method="exact")
    assert isinstance(nn, Neighbors)
    ours = nn.knn_graph_connectivities.tocsr()
    ref = NeighborsResults(indices=nn.indices, distances=nn.distances).knn_graph_connectivities.tocsr()
    assert ours.nnz == ref.nnz and abs(ours - ref).max() == 0


@pytest.mark.parametrize("seed,n,dim", [(0, 600, 10), (1, 1500, 30), (2, 900, 5)])
def test_connectivities_equal_umap(seed, n, dim):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, dim)) + rng.integers(0, 4, n)[:, None] * 2.0).astype(np.float32)
    X[:5] = X[5]  # duplicates: zero distances beyond self
    for k in (15, 50, 90):
        _assert_equal_umap(X, k)


@pytest.mark.slow
def test_connectivities_equal_umap_on_more_than_8192_cells():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(9000, 20)) + rng.integers(0, 6, 9000)[:, None]).astype(np.float32)
    _assert_equal_umap(X, 15)


def test_expf_equals_numba_float32_exp():
    import numba

    @numba.njit
    def expf(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = np.exp(x[i])
        return out

    x = np.concatenate([-np.random.default_rng(0).exponential(3.0, 200_000), [0, -87.5, -103.9, -104.0, -np.inf, 5.0]])
    x = x.astype(np.float32)
    np.testing.assert_array_equal(_expf(x), expf(x))


def test_subset_keeps_the_numpy_connectivities():
    X = np.random.default_rng(4).normal(size=(300, 8)).astype(np.float32)
    sub = knn(X, 30, method="exact").subset_neighbors(15)
    assert isinstance(sub, Neighbors)
    np.testing.assert_array_equal(sub.knn_graph_connectivities.toarray(),
                                  umap_connectivities(sub.indices, sub.distances).toarray())
