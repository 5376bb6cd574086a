"""Leiden NMI/ARI (metrics/_leiden.py, the graph built once for the sweep) equals scib-metrics'
nmi_ari_cluster_labels_leiden on the same kNN result, swept and at one resolution, with the sweep in one
process or in forked ones (the default from 20,000 cells)."""

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
    ref = {k: float(v) for k, v in scib_metrics.nmi_ari_cluster_labels_leiden(knn, labels).items()}
    assert METRICS.get("nmi_ari_leiden").fn(knn, labels, n_jobs=2) == ref


def test_sweep_processes_default_to_the_cores_on_large_graphs(monkeypatch):
    import multiprocessing

    from scfm_bench.metrics import _leiden
    from scfm_bench.metrics._base import usable_cores

    assert _leiden.sweep_jobs(19_999, None) == 1
    assert _leiden.sweep_jobs(20_000, None) == min(usable_cores(), 10)
    assert _leiden.sweep_jobs(100, 3) == 3 and _leiden.sweep_jobs(100, 64) == 10
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)  # a Pool worker may not fork
    assert _leiden.sweep_jobs(10**6, None) == 1 and _leiden.sweep_jobs(10**6, 4) == 1


def test_parallel_leiden_sweep_equals_sequential(make_blobs):
    X, labels, _ = make_blobs(n_per=150, n_labels=4, dim=6)
    X += np.random.default_rng(1).normal(scale=2.0, size=X.shape).astype(np.float32)  # overlapping types
    inputs = MetricInputs(X=X, knn_method="exact")
    leiden = METRICS.get("nmi_ari_leiden")
    seq = leiden.fn(inputs.knn15, labels, n_jobs=1)
    import warnings

    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # JAX's threads are up, as in a run: its fork warning is not the user's concern

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        par = leiden.fn(inputs.knn15, labels, n_jobs=2)
    assert seq == par and 0 < seq["nmi"] <= 1
    assert not [w for w in caught if "fork" in str(w.message)]


def test_declared_shorter_sweep_is_the_full_sweep_restricted(make_blobs):
    """``resolutions`` sweeps those only: the full sweep's value is the better of its two halves'."""
    from scfm_bench.metrics._leiden import RESOLUTIONS

    knn, labels = _overlapping(make_blobs, 150, 1)
    leiden = METRICS.get("nmi_ari_leiden").fn
    halves = [leiden(knn, labels, resolutions=list(RESOLUTIONS[i::2])) for i in (0, 1)]
    assert halves[0] != halves[1]
    assert leiden(knn, labels) == max(halves, key=lambda h: h["nmi"])
