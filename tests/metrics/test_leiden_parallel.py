"""The declared faster Leiden sweep (``n_jobs: 2`` in a suite entry's kwargs, hence in the record's
params): resolutions in parallel processes give the same values as the sequential sweep."""

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs
from scfm_bench.registry import METRICS


@pytest.mark.slow  # joblib starts 2 worker processes that import scib-metrics
def test_parallel_leiden_sweep_equals_sequential(make_blobs):
    X, labels, _ = make_blobs(n_per=150, n_labels=4, dim=6)
    X += np.random.default_rng(1).normal(scale=2.0, size=X.shape).astype(np.float32)  # overlapping types
    inputs = MetricInputs(X=X, knn_method="exact")
    leiden = METRICS.get("nmi_ari_leiden")
    seq = leiden.fn(inputs.knn15, labels, n_jobs=1)
    par = leiden.fn(inputs.knn15, labels, n_jobs=2)
    assert seq == par and 0 < seq["nmi"] <= 1
