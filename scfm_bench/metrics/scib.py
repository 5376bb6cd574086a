"""The scIB metrics of scib-metrics 0.5.10: computed by it, or by an exact faster kernel of ours that
gives its values (the silhouette family in metrics/_silhouette.py; kBET made reproducible in
metrics/_kbet.py). Each function gets exactly the inputs the Benchmarker would (kNN with 15/50/90
neighbours; pre-integration PCA for PCR comparison), so values equal the Benchmarker's (parity tests).
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, Scored, Units, metric

_SCIB = "Luecken et al. 2022, Nat Methods 19:41 (scIB); scib-metrics 0.5.10 (YosefLab)"


def _sm():
    import logging

    import scib_metrics

    # scib-metrics installs its own INFO handler on import; its per-label notes are noise here
    scib_metrics.settings.verbosity = logging.WARNING
    return scib_metrics


@metric(MetricSpec("isolated_labels", "Isolated labels", "bio", True, (0.0, 1.0), ("X", "labels", "batch"), _SCIB,
                   min_cells_per_label=2, quadratic=True))
def isolated_labels(X, labels, batch, *, rescale: bool = True, iso_threshold: int | None = None) -> float:
    """scib-metrics' isolated_labels: mean over the labels found in the fewest batches of their cells'
    silhouette (all labels, euclidean), shared with silhouette_label."""
    from scib_metrics.metrics._isolated_labels import _get_isolated_labels

    from scfm_bench.metrics._silhouette import silhouette_samples

    _sm()
    s = silhouette_samples(X, labels)
    s = (s + 1) / 2 if rescale else s
    labels = np.asarray(labels)
    return float(np.mean([s[labels == lab].mean() for lab in _get_isolated_labels(labels, batch, iso_threshold)]))


@metric(MetricSpec("nmi_ari_kmeans", "KMeans NMI/ARI", "bio", True, (-0.5, 1.0), ("X", "labels"), _SCIB,
                   outputs=("nmi", "ari")))
def nmi_ari_kmeans(X, labels) -> dict[str, float]:
    """k-means (scib-metrics' implementation, seed 0, stopped at its fixed point: metrics/_kmeans.py)
    with k = number of labels, scored as scib-metrics' nmi_ari_cluster_labels_kmeans scores it."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from scfm_bench.metrics._kmeans import kmeans_labels

    _sm()
    pred = kmeans_labels(X, len(np.unique(labels)))
    return {"nmi": float(normalized_mutual_info_score(labels, pred, average_method="arithmetic")),
            "ari": float(adjusted_rand_score(labels, pred))}


@metric(MetricSpec("nmi_ari_leiden", "Leiden NMI/ARI (best resolution)", "bio", True, (-0.5, 1.0), ("knn15", "labels"), _SCIB,
                   outputs=("nmi", "ari")))
def nmi_ari_leiden(knn, labels, *, optimize_resolution: bool = True, resolution: float = 1.0, seed: int = 42,
                   n_jobs: int | None = None, resolutions: list[float] | None = None) -> dict[str, float]:
    """Leiden on the 15-NN UMAP connectivities; resolution swept over 0.2..2.0, the one with the best
    NMI is reported (and ARI at that resolution) — the scIB convention, with the graph built once
    (metrics/_leiden.py). The resolutions run in ``n_jobs`` forked processes (default: the usable cores
    from 20,000 cells); the values are the same in any number, as each resolution seeds its own RNG.
    ``resolutions`` (a declared, faster option: e.g. [0.4, 0.8, 1.2, 1.6, 2.0] halves the sweep at 10⁶
    cells) sweeps those instead; equal to the default only when the best resolution is among them."""
    from scfm_bench.metrics._leiden import nmi_ari_leiden as leiden

    return leiden(knn.knn_graph_connectivities, labels, optimize_resolution=optimize_resolution,
                  resolution=resolution, seed=seed, n_jobs=n_jobs, resolutions=resolutions)


@metric(MetricSpec("silhouette_label", "Silhouette label", "bio", True, (0.0, 1.0), ("X", "labels"), _SCIB,
                   min_cells_per_label=2, quadratic=True))
def silhouette_label(X, labels, *, rescale: bool = True, metric: str = "euclidean") -> Scored:
    """scib-metrics' silhouette_label is the mean of its per-cell silhouette_samples (rescaled (s + 1) / 2):
    computed here from those samples, which are kept as per-cell units."""
    from scfm_bench.metrics._silhouette import silhouette_samples

    s = silhouette_samples(X, labels, metric=metric)
    cells = (s + 1) / 2 if rescale else s
    return Scored(float(cells.mean()), units={"": Units("cell", np.arange(len(s)), cells)})


@metric(MetricSpec("clisi", "cLISI", "bio", True, (0.0, 1.0), ("knn90", "labels"), _SCIB))
def clisi(knn, labels, *, perplexity: float | None = None, scale: bool = True) -> float:
    return float(_sm().clisi_knn(knn, labels, perplexity=perplexity, scale=scale))


@metric(MetricSpec("silhouette_batch", "Silhouette batch", "batch", True, (0.0, 1.0), ("X", "labels", "batch"), _SCIB,
                   min_batches=2, min_cells_per_label=2, quadratic=True))
def silhouette_batch(X, labels, batch, *, rescale: bool = True, metric: str = "euclidean",
                     between_cluster_distances: str = "nearest") -> float:
    from scfm_bench.metrics._silhouette import silhouette_batch as batch_asw

    return batch_asw(X, labels, batch, rescale=rescale, metric=metric, between_cluster_distances=between_cluster_distances)


@metric(MetricSpec("bras", "BRAS", "batch", True, (0.0, 1.0), ("X", "labels", "batch"), _SCIB, min_batches=2,
                   min_cells_per_label=2, quadratic=True))
def bras(X, labels, batch, *, metric: str = "cosine", between_cluster_distances: str = "mean_other") -> float:
    """scib-metrics' bras is its silhouette_batch with cosine distances and the mean distance to other batches."""
    from scfm_bench.metrics._silhouette import silhouette_batch as batch_asw

    return batch_asw(X, labels, batch, metric=metric, between_cluster_distances=between_cluster_distances)


@metric(MetricSpec("ilisi", "iLISI", "batch", True, (0.0, 1.0), ("knn90", "batch"), _SCIB, min_batches=2))
def ilisi(knn, batch, *, perplexity: float | None = None, scale: bool = True) -> float:
    return float(_sm().ilisi_knn(knn, batch, perplexity=perplexity, scale=scale))


@metric(MetricSpec("kbet", "kBET (per label)", "batch", True, (0.0, 1.0), ("knn50", "batch", "labels"), _SCIB, min_batches=2,
                   quadratic=True))
def kbet(knn, batch, labels, *, alpha: float = 0.05, diffusion_n_comps: int = 100, seed: int = 0) -> float:
    """scib-metrics' kbet_per_label with its hidden state removed (seeded ARPACK start vector, exact
    diffusion-space neighbours; see metrics/_kbet.py): same inputs and seed, same value, in any
    process, after any other metric, with any number of BLAS threads."""
    from scfm_bench.metrics._kbet import kbet_per_label

    _sm()
    return kbet_per_label(knn, batch, labels, alpha=alpha, diffusion_n_comps=diffusion_n_comps, seed=seed)[0]


@metric(MetricSpec("graph_connectivity", "Graph connectivity", "batch", True, (0.0, 1.0), ("knn15", "labels"), _SCIB))
def graph_connectivity(knn, labels) -> float:
    return float(_sm().graph_connectivity(knn, labels))


@metric(MetricSpec("pcr_comparison", "PCR comparison", "batch", True, (0.0, 1.0), ("X_pre", "X", "batch"), _SCIB,
                   min_batches=2))
def pcr_comparison(X_pre, X, batch, *, scale: bool = True) -> float:
    return float(_sm().pcr_comparison(np.asarray(X_pre), X, batch, scale=scale, categorical=True))
