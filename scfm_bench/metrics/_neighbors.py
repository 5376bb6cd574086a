"""k-nearest-neighbour graphs in scib-metrics' NeighborsResults form (self is neighbour 0).

``exact`` (scikit-learn brute force) is deterministic and avoids pynndescent's per-process numba
compilation (~36 s); ``pynndescent`` is what scib-metrics' Benchmarker uses and scales to large n.
``auto`` is exact up to 50,000 cells.
"""

from __future__ import annotations

import numpy as np

EXACT_MAX_CELLS = 50_000


def knn(X: np.ndarray, k: int, *, method: str = "auto", seed: int = 0):
    from scib_metrics.nearest_neighbors import NeighborsResults

    n = X.shape[0]
    k = min(k, n - 1)
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_CELLS else "pynndescent"
    if method == "exact":
        from sklearn.neighbors import NearestNeighbors

        dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(X)
    elif method == "pynndescent":
        from scib_metrics.nearest_neighbors import pynndescent

        return pynndescent(X, n_neighbors=k, random_state=seed, n_jobs=1)
    else:
        raise ValueError(f"unknown kNN method {method!r}; use auto, exact or pynndescent")
    return NeighborsResults(indices=np.asarray(idx), distances=np.asarray(dist, dtype=np.float32))
