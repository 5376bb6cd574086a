"""Probe-free gene–gene retrieval (gene_function task): do a gene's nearest neighbours in embedding
space share its GO terms?

For term t with member genes M_t among n genes, precision@k_t is the share of the k nearest
neighbours (cosine, self excluded) of each member that are members too, averaged over M_t; its chance
level is (|M_t| − 1) / (n − 1), and enrichment_t = precision@k_t / chance. Both are averaged over terms
(macro).
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, metric


@metric(MetricSpec(key="term_retrieval", label="Same-term precision@k among gene neighbours", family="retrieval",
                   higher_is_better=True, range=(0.0, float("inf")), inputs=("X", "go_labels"), outputs=("precision", "enrichment"),
                   citation="Manning, Raghavan & Schütze 2008, Introduction to Information Retrieval, ch. 8 (precision@k)"))
def term_retrieval(X: np.ndarray, labels: np.ndarray, *, k: int = 10) -> dict[str, float]:
    """``precision``: macro precision@k of same-term neighbours; ``enrichment``: its macro ratio to chance."""
    from sklearn.neighbors import NearestNeighbors

    labels = labels.astype(bool)
    n = len(X)
    k = min(k, n - 1)
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X).kneighbors(return_distance=False)
    size = labels.sum(0)
    hits = np.zeros(labels.shape[1])
    for j in range(k):  # one neighbour rank at a time keeps memory at genes x terms
        hits += (labels[nn[:, j]] & labels).sum(0)
    precision = hits / (k * np.maximum(size, 1))
    chance = (size - 1) / (n - 1)
    ok = size >= 2
    return {"precision": float(precision[ok].mean()), "enrichment": float((precision[ok] / chance[ok]).mean())}
