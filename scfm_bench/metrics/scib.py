"""The scIB metrics, computed by scib-metrics 0.5.10 (kBET made reproducible in metrics/_kbet.py).

Each function feeds scib-metrics exactly the inputs its Benchmarker would (kNN with 15/50/90
neighbours; pre-integration PCA for PCR comparison), so values equal the Benchmarker's (parity test).
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
    return float(_sm().isolated_labels(X, labels, batch, rescale=rescale, iso_threshold=iso_threshold))


@metric(MetricSpec("nmi_ari_kmeans", "KMeans NMI/ARI", "bio", True, (-0.5, 1.0), ("X", "labels"), _SCIB,
                   outputs=("nmi", "ari")))
def nmi_ari_kmeans(X, labels) -> dict[str, float]:
    """k-means (scib-metrics' jax implementation, seed 0) with k = number of labels."""
    return {k: float(v) for k, v in _sm().nmi_ari_cluster_labels_kmeans(X, labels).items()}


@metric(MetricSpec("nmi_ari_leiden", "Leiden NMI/ARI (best resolution)", "bio", True, (-0.5, 1.0), ("knn15", "labels"), _SCIB,
                   outputs=("nmi", "ari")))
def nmi_ari_leiden(knn, labels, *, optimize_resolution: bool = True, resolution: float = 1.0, seed: int = 42,
                   n_jobs: int = 1) -> dict[str, float]:
    """Leiden on the 15-NN UMAP connectivities; resolution swept over 0.2..2.0, the one with the best
    NMI is reported (and ARI at that resolution) — the scIB convention. ``n_jobs`` > 1 runs the
    resolutions in parallel processes (same values: each resolution seeds its own RNG; 60k cells, 2
    shared cores: 453 s → 333 s with 2, a copy of the graph per process)."""
    out = _sm().nmi_ari_cluster_labels_leiden(knn, labels, optimize_resolution=optimize_resolution,
                                              resolution=resolution, n_jobs=n_jobs, seed=seed)
    return {k: float(v) for k, v in out.items()}


@metric(MetricSpec("silhouette_label", "Silhouette label", "bio", True, (0.0, 1.0), ("X", "labels"), _SCIB,
                   min_cells_per_label=2, quadratic=True))
def silhouette_label(X, labels, *, rescale: bool = True, metric: str = "euclidean") -> Scored:
    """scib-metrics' silhouette_label is the mean of its per-cell silhouette_samples (rescaled (s + 1) / 2):
    computed here from those samples, which are kept as per-cell units."""
    s = np.asarray(_sm().utils.silhouette_samples(X, labels, metric=metric), dtype=np.float64)
    cells = (s + 1) / 2 if rescale else s
    return Scored(float(cells.mean()), units={"": Units("cell", np.arange(len(s)), cells)})


@metric(MetricSpec("clisi", "cLISI", "bio", True, (0.0, 1.0), ("knn90", "labels"), _SCIB))
def clisi(knn, labels, *, perplexity: float | None = None, scale: bool = True) -> float:
    return float(_sm().clisi_knn(knn, labels, perplexity=perplexity, scale=scale))


@metric(MetricSpec("silhouette_batch", "Silhouette batch", "batch", True, (0.0, 1.0), ("X", "labels", "batch"), _SCIB,
                   min_batches=2, min_cells_per_label=2, quadratic=True))
def silhouette_batch(X, labels, batch, *, rescale: bool = True, metric: str = "euclidean",
                     between_cluster_distances: str = "nearest") -> float:
    return float(_sm().silhouette_batch(X, labels, batch, rescale=rescale, metric=metric,
                                        between_cluster_distances=between_cluster_distances))


@metric(MetricSpec("bras", "BRAS", "batch", True, (0.0, 1.0), ("X", "labels", "batch"), _SCIB, min_batches=2,
                   min_cells_per_label=2, quadratic=True))
def bras(X, labels, batch, *, metric: str = "cosine", between_cluster_distances: str = "mean_other") -> float:
    return float(_sm().bras(X, labels, batch, metric=metric, between_cluster_distances=between_cluster_distances))


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
