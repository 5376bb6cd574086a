"""Leiden NMI/ARI (metrics/_leiden.py, the graph built once for the sweep) equals scib-metrics'
nmi_ari_cluster_labels_leiden on the same kNN result, swept and at one resolution; the declared faster
sweep (``n_jobs: 2`` in a suite entry's kwargs, hence in the record's params) gives the same values."""

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs
from scfm_bench.registry import METRICS


def _overlapping(make_blobs, n_per, seed):
    X, labels, _ = make_blobs(n_per=n_per, n_labels=4, dim=6, seed=seed)
    X += np.random.default_rng(seed + 1).normal(scale=2.0, size=X.shape).astype(np.float32)  # types overlap
    return MetricInputs(X=X, knn_method="exact").knn15, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leiden_equals_scib_metrics(make_blobs, seed):
    import scib_metrics

    knn, labels = _overlapping(make_blobs, 150, seed)
    leiden = METRICS.get("nmi_ari_leiden").fn
    ours = leiden(knn, labels)
    assert 0 < ours["nmi"] < 1  # a sweep with something to choose
    assert ours == {k: float(v) for k, v in scib_metrics.nmi_ari_cluster_labels_leiden(knn, labels).items()}
    one = scib_metrics.nmi_ari_cluster_labels_leiden(knn, labels, optimize_resolution=False, resolution=0.6, seed=seed)
    assert leiden(knn, labels, optimize_resolution=False, resolution=0.6, seed=seed) == {k: float(v) for k, v in one.items()}


@pytest.mark.slow
def test_leiden_equals_scib_metrics_on_more_than_8192_cells(make_blobs):
    import scib_metrics

    knn, labels = _overlapping(make_blobs, 2100, 5)
    assert knn.n_samples > 8192
    ref = scib_metrics.nmi_ari_cluster_labels_leiden(knn, labels)
    assert METRICS.get("nmi_ari_leiden").fn(knn, labels) == {k: float(v) for k, v in ref.items()}


@pytest.mark.slow  # joblib starts 2 worker processes that import scib-metrics
def test_parallel_leiden_sweep_equals_sequential(make_blobs):
    X, labels, _ = make_blobs(n_per=150, n_labels=4, dim=6)
    X += np.random.default_rng(1).normal(scale=2.0, size=X.shape).astype(np.float32)  # overlapping types
    inputs = MetricInputs(X=X, knn_method="exact")
    leiden = METRICS.get("nmi_ari_leiden")
    seq = leiden.fn(inputs.knn15, labels, n_jobs=1)
    par = leiden.fn(inputs.knn15, labels, n_jobs=2)
    assert seq == par and 0 < seq["nmi"] <= 1
