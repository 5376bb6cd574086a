"""k-means (metrics/_kmeans.py) gives scib-metrics' KMeans assignments (all 300 iterations, seed 0)
and hence its NMI/ARI, on seeded inputs: overlapping clusters (assignments move for many iterations),
an empty-prone case with more clusters than blobs, and one above 8,192 cells."""

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs
from scfm_bench.metrics._kmeans import kmeans_labels
from scfm_bench.registry import METRICS


def _scib(X, n_clusters):
    from scib_metrics.utils import KMeans

    return KMeans(n_clusters).fit(X.copy()).labels_


@pytest.mark.parametrize("seed,n_clusters,shift", [(0, 4, 3.0), (1, 7, 0.5), (2, 5, 1.5)])
def test_assignments_equal_scib_metrics_kmeans(make_blobs, seed, n_clusters, shift):
    X, labels, _ = make_blobs(n_per=150, n_labels=4, n_batches=3, dim=10, batch_shift=shift, seed=seed)
    X = X + np.random.default_rng(seed).normal(scale=2.5, size=X.shape).astype(np.float32)  # overlapping blobs
    ours = kmeans_labels(X, n_clusters)
    np.testing.assert_array_equal(ours, _scib(X, n_clusters))
    assert len(np.unique(ours)) > 1


@pytest.mark.slow
def test_nmi_ari_equal_scib_metrics_on_more_than_8192_cells(make_blobs):
    import scib_metrics

    X, labels, _ = make_blobs(n_per=2100, n_labels=4, n_batches=3, dim=20, batch_shift=1.0, seed=5)
    X = X + np.random.default_rng(5).normal(scale=7.0, size=X.shape).astype(np.float32)
    assert len(labels) > 8192
    ours = METRICS.get("nmi_ari_kmeans")(MetricInputs(X=X, labels=labels))
    ref = scib_metrics.nmi_ari_cluster_labels_kmeans(X.copy(), labels)
    assert 0.05 < ref["ari"] < 0.99  # clusters overlap: a non-trivial partition
    assert ours["nmi"] == pytest.approx(float(ref["nmi"]), abs=1e-12)
    assert ours["ari"] == pytest.approx(float(ref["ari"]), abs=1e-12)
