"""ROGI, the roughness index (Aldeghi et al. 2022; the definition of the reference package rogi 0.1):
how rough a property is over the embedding. Complete-linkage clustering of the embedding at every
merge height t (skipping heights closer than ``min_dt`` to the last kept one); σ(t) = 2·size-weighted
std of the per-cluster property means; ROGI = σ(0) − ∫₀¹ σ(t) dt (trapezoid). Distances are divided by
the diagonal of the data's bounding box (Euclidean) or by 2 (cosine), the property is min-max scaled.
Lower is better (smoother).

For cell types the property is one-vs-rest membership of each type and the score is the
frequency-weighted mean over types (the clustering is shared); ``rogi_continuous`` scores each numeric
property a dataset declares (fields.continuous). Memory is O(n²), so above ``max_cells`` a seeded
subsample is used (stratified per type, proportional, for cell types); the cap and the number of cells
used are in the record. The default cap, 10,000, comes from the sweep in benchmarks/bench_ontology.py
(100,000 cells, 50-d, 10 types, 3 seeds, 2 shared cores): 2k 0.3 s, 5k 1.4 s, 10k 6.2 s (1.2 GB peak),
20k 77 s (4.6 GB); the 10k value was within 0.007 of the 20k one (seed sd 0.003), so 10k is the
largest cap that stays well under 30 s.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, Scored, metric
from scfm_bench.metrics._celltypes import finite_embedding
from scfm_bench.metrics._subsample import stratified_subsample

MAX_CELLS = 10_000


def _normalise(y: np.ndarray) -> np.ndarray:
    span = y.max() - y.min()
    return (y - y.min()) / span if span > 1e-10 else y - y.min()


def rogi_from_distances(D: np.ndarray, Y: np.ndarray, *, min_dt: float = 0.01) -> np.ndarray:
    """ROGI of each column of ``Y`` (n x k) on condensed, already normalised distances ``D``."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if D.size and D.max() > 1 + 1e-12:
        raise ValueError("normalised distances exceed 1; the distance scale (max_dist) is wrong")
    Y = np.column_stack([_normalise(np.asarray(y, dtype=np.float64)) for y in np.asarray(Y, dtype=np.float64).T])
    Z = linkage(D, method="complete")
    ts, prev = [], -1.0
    for h in Z[:, 2]:
        if h - min_dt < prev:
            continue
        ts.append(h)
        prev = h

    def sigma(t: float) -> np.ndarray:
        c = fcluster(Z, t=t, criterion="distance") - 1
        size = np.bincount(c).astype(float)
        means = np.stack([np.bincount(c, weights=y) for y in Y.T], axis=1) / size[:, None]
        mu = size @ means / size.sum()
        return 2 * np.sqrt(size @ (means - mu) ** 2 / size.sum())

    thresholds = np.array([0.0, *ts, 1.0])
    sig = np.stack([sigma(-0.1), *(sigma(t) for t in ts), sigma(1.1)])
    auc = np.diff(thresholds) @ ((sig[:-1] + sig[1:]) / 2)
    return sig[0] - auc


def roughness_index(X: np.ndarray, Y: np.ndarray, *, metric: str = "euclidean", min_dt: float = 0.01) -> np.ndarray:
    """rogi 0.1's RoughnessIndex(X, Y, metric).compute_index() for each column of Y."""
    from scipy.spatial.distance import pdist

    if metric == "euclidean":
        d_max = np.sqrt(np.sum((X.max(axis=0) - X.min(axis=0)) ** 2))
    elif metric == "cosine":
        d_max = 2.0
    else:
        raise ValueError(f"ROGI metric {metric!r}: use euclidean or cosine")
    D = pdist(X, metric=metric)
    return rogi_from_distances(D / d_max if d_max > 0 else D, np.asarray(Y).reshape(len(X), -1), min_dt=min_dt)


@metric(MetricSpec("rogi", "ROGI (cell types)", "ontology", False, (0.0, 1.0), ("X", "labels"),
                   "Aldeghi et al. 2022, J Chem Inf Model 62:4660 (rogi 0.1); applied to scFMs by Wu et al. 2025"))
def rogi(X, labels, *, max_cells: int = MAX_CELLS, seed: int = 0, metric: str = "euclidean", min_dt: float = 0.01) -> Scored:
    X = finite_embedding(X)
    labels = np.asarray(labels).astype(str)
    idx = stratified_subsample(labels, max_cells, seed)
    X, labels = X[idx], labels[idx]
    types, counts = np.unique(labels, return_counts=True)
    onehot = (labels[:, None] == types[None, :]).astype(float)
    per_type = roughness_index(X, onehot, metric=metric, min_dt=min_dt)
    value = float(counts @ per_type / counts.sum())
    return Scored(value, {"max_cells": max_cells, "n_cells_used": int(len(idx)), "subsample_seed": seed,
                          "distance": metric})


@metric(MetricSpec("rogi_continuous", "ROGI (continuous properties)", "ontology", False, (0.0, 1.0), ("X", "continuous"),
                   "Aldeghi et al. 2022, J Chem Inf Model 62:4660 (rogi 0.1); applied to scFMs by Wu et al. 2025",
                   dynamic_outputs=True))
def rogi_continuous(X, continuous, *, max_cells: int = MAX_CELLS, seed: int = 0, metric: str = "euclidean",
                    min_dt: float = 0.01) -> Scored:
    """ROGI of each numeric property the dataset declares (fields.continuous), one value per property
    name, all on one seeded subsample (uniform: there are no strata) and one clustering. A dataset that
    declares none gets no values (and no record), unlike one whose task cannot say (skipped)."""
    if not continuous:
        return Scored({})
    X = finite_embedding(X)
    names = list(continuous)
    idx = stratified_subsample(np.zeros(len(X)), max_cells, seed)
    Y = np.column_stack([np.asarray(continuous[k], dtype=np.float64)[idx] for k in names])
    values = roughness_index(X[idx], Y, metric=metric, min_dt=min_dt)
    return Scored(dict(zip(names, map(float, values))), {"max_cells": max_cells, "n_cells_used": int(len(idx)),
                                                          "subsample_seed": seed, "distance": metric})
