"""scib-metrics 0.5.10's k-means (``scib_metrics.utils.KMeans``, seed 0), stopped at its fixed point.

Its loop condition is ``inertia changed OR n_iter < max_iter``, so it always runs all 300 Lloyd
iterations, each building an n x k x dim masked array in jax: ~13 s for 20k cells. Once an
iteration leaves every assignment unchanged, the centroids and all later iterations are identical, so
stopping there gives its result. The k-means++ start is scib-metrics' own jitted function with the
same key; the iterations are numpy (distances by float64 GEMM: an assignment differs from its float32
one only on an exact tie at float32 precision). tests/metrics/test_kmeans.py checks equality.
"""

from __future__ import annotations

import numpy as np

MAX_ITER = 300  # scib-metrics' default


def kmeans_labels(X: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    import jax
    from scib_metrics.utils._kmeans import _initialize_plus_plus
    from scib_metrics.utils._utils import validate_seed

    X = np.array(X, dtype=np.float32, order="C")
    X -= X.mean(axis=0)  # scib-metrics centres in float32 before everything else
    key = jax.random.split(validate_seed(seed), 1)[0]
    centroids = np.asarray(_initialize_plus_plus(X, n_clusters, key), dtype=np.float64)
    X64 = X.astype(np.float64)
    sq = np.einsum("ij,ij->i", X64, X64)
    assign = None
    for _ in range(MAX_ITER + 1):  # the +1: scib-metrics' final assignment to the last centroids
        d2 = sq[:, None] - 2 * (X64 @ centroids.T) + np.einsum("ij,ij->i", centroids, centroids)[None, :]
        new = np.argmin(d2, axis=1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        counts = np.maximum(np.bincount(assign, minlength=n_clusters), 1)  # an empty cluster's centroid is 0
        centroids = np.zeros((n_clusters, X.shape[1]))
        np.add.at(centroids, assign, X64)
        centroids /= counts[:, None]
    return assign
