"""The silhouette family (metrics/_silhouette.py) equals scib-metrics' own functions, which compute the
same sums from a full jax distance matrix, chunk by chunk: silhouette label, isolated labels, silhouette
batch and BRAS, on seeded inputs including one above 8,192 cells and one with unequal, unsorted labels."""

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs
from scfm_bench.metrics._silhouette import cluster_distance_sums, silhouette_samples
from scfm_bench.registry import METRICS

CASES = [  # (n_per, n_labels, n_batches, dim, batch_shift, seed)
    (60, 4, 3, 12, 2.0, 0),
    (150, 6, 2, 30, 0.5, 1),
    (40, 3, 5, 8, 0.0, 2),
]


def _shuffled_unequal(make_blobs, n_per, n_labels, n_batches, dim, shift, seed):
    X, labels, batch = make_blobs(n_per=n_per, n_labels=n_labels, n_batches=n_batches, dim=dim, batch_shift=shift, seed=seed)
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(labels))[: int(0.8 * len(labels))]  # unequal label sizes, cells not sorted by label
    return X[keep], labels[keep], batch[keep]


def _scib_values(X, labels, batch):
    import scib_metrics

    return {"silhouette_label": scib_metrics.silhouette_label(X, labels),
            "isolated_labels": scib_metrics.isolated_labels(X, labels, batch),
            "silhouette_batch": scib_metrics.silhouette_batch(X, labels, batch),
            "bras": scib_metrics.bras(X, labels, batch)}


def _ours(X, labels, batch):
    inputs = MetricInputs(X=X, labels=labels, batch=batch)
    return {k: METRICS.get(k)(inputs) for k in ("silhouette_label", "isolated_labels", "silhouette_batch", "bras")}


@pytest.mark.slow  # scib-metrics compiles its jax kernels for every label size: ~20 s a case
@pytest.mark.parametrize("case", CASES)
def test_silhouette_family_equals_scib_metrics(make_blobs, case):
    X, labels, batch = _shuffled_unequal(make_blobs, *case)
    ours, ref = _ours(X, labels, batch), _scib_values(X, labels, batch)
    assert 0.05 < ref["bras"] < 0.999 and 0.05 < ref["silhouette_label"] < 0.999  # not a trivial case
    for k, v in ref.items():
        value = ours[k].values if k == "silhouette_label" else ours[k]
        assert value == pytest.approx(float(v), abs=1e-6), k


@pytest.mark.slow
def test_silhouette_family_equals_scib_metrics_on_more_than_8192_cells(make_blobs):
    X, labels, batch = make_blobs(n_per=2100, n_labels=4, n_batches=3, dim=20, batch_shift=1.0, seed=5)
    assert len(labels) > 8192
    ours, ref = _ours(X, labels, batch), _scib_values(X, labels, batch)
    for k, v in ref.items():
        value = ours[k].values if k == "silhouette_label" else ours[k]
        assert value == pytest.approx(float(v), abs=1e-6), k


def test_per_cell_samples_equal_scib_metrics_for_every_option(make_blobs):
    import scib_metrics

    X, labels, _ = _shuffled_unequal(make_blobs, 50, 5, 2, 10, 0.0, 3)
    for metric in ("euclidean", "cosine"):
        for between in ("nearest", "mean_other", "furthest"):
            ref = scib_metrics.utils.silhouette_samples(X, labels, metric=metric, between_cluster_distances=between)
            ours = silhouette_samples(X, labels, metric=metric, between_cluster_distances=between)
            np.testing.assert_allclose(ours, ref, atol=2e-6, err_msg=f"{metric}/{between}")


def test_distance_sums_do_not_depend_on_threads_or_tiling(make_blobs, monkeypatch):
    """Row chunks run on a thread pool; each tile is computed the same way whatever the threads."""
    from threadpoolctl import threadpool_limits

    import scfm_bench.metrics._silhouette as sil

    X, labels, _ = make_blobs(n_per=300, n_labels=3, seed=4)
    codes = np.unique(labels, return_inverse=True)[1]
    with threadpool_limits(1):
        one = cluster_distance_sums(X, codes, 3)
    with threadpool_limits(2):
        two = cluster_distance_sums(X, codes, 3)
    np.testing.assert_array_equal(one, two)
    monkeypatch.setattr(sil, "_ROWS", 37)
    monkeypatch.setattr(sil, "_TILE", 101)
    np.testing.assert_allclose(cluster_distance_sums(X, codes, 3), one, rtol=1e-6)
    # brute force in float64
    D = np.sqrt(((X[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1))
    expected = np.stack([D[:, codes == c].sum(1) for c in range(3)], axis=1)
    np.testing.assert_allclose(one, expected, rtol=1e-5)


def test_isolated_labels_and_silhouette_label_share_one_pass(make_blobs, monkeypatch):
    import scfm_bench.metrics._silhouette as sil

    X, labels, batch = make_blobs(n_per=30, n_labels=3, seed=6)
    calls = []
    real = sil.cluster_distance_sums
    monkeypatch.setattr(sil, "cluster_distance_sums", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(sil, "_memo", [])
    inputs = MetricInputs(X=X, labels=labels, batch=batch)
    METRICS.get("silhouette_label")(inputs)
    METRICS.get("isolated_labels")(inputs)
    assert len(calls) == 1
    METRICS.get("silhouette_label")(MetricInputs(X=X.copy(), labels=labels, batch=batch))  # another embedding
    assert len(calls) == 2
