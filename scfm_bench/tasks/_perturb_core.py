"""Pseudobulk statistics, leakage-free read-out genes, splits and the closed-form predictors of the
perturbation task (spec perturbation.md §1.3-1.5). Everything after the one sparse aggregation works
on (conditions × genes) matrices, so a 90k-cell screen is never densified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


# Gene embeddings of a model: ``genes -> (len(genes), d)`` with NaN rows for genes it does not know.
GeneEmbedder = Callable[[Sequence[str]], np.ndarray]


@dataclass
class ConditionStats:
    """Per condition (row): cell count, mean and variance (ddof 1) of the log values, and the sums of
    expm1(values) and their squares (what scanpy's seurat HVG flavor needs)."""

    names: list[str]
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    e_sum: np.ndarray
    e_sumsq: np.ndarray

    def index(self, names: Sequence[str]) -> np.ndarray:
        pos = {c: i for i, c in enumerate(self.names)}
        return np.array([pos[c] for c in names], dtype=int)


def condition_stats(X, conditions: np.ndarray, *, names: list[str] | None = None) -> ConditionStats:
    import scipy.sparse as sp

    names = names if names is not None else sorted(set(conditions))
    codes = {c: i for i, c in enumerate(names)}
    rows = np.array([codes[c] for c in conditions])
    ind = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(len(names), len(rows)))
    n = np.asarray(ind.sum(1)).ravel()
    X = sp.csr_matrix(X, dtype=np.float64)
    s = (ind @ X).toarray()
    ss = (ind @ X.multiply(X)).toarray()
    E = X.expm1()
    e_sum = (ind @ E).toarray()
    e_sumsq = (ind @ E.multiply(E)).toarray()
    mean = s / n[:, None]
    var = np.maximum(ss - n[:, None] * mean**2, 0) / np.maximum(n - 1, 1)[:, None]
    return ConditionStats(names, n, mean, var, e_sum, e_sumsq)


def seurat_hvg(stats: ConditionStats, rows: np.ndarray, n_top: int) -> np.ndarray:
    """scanpy ``highly_variable_genes(flavor="seurat", n_top_genes=n_top)`` on the cells of ``rows``,
    computed from sufficient statistics (equality with scanpy is tested). Returns a gene mask."""
    import pandas as pd
    from scanpy.preprocessing._highly_variable_genes import _get_disp_stats, _get_mean_bins

    n = stats.n[rows].sum()
    mean = stats.e_sum[rows].sum(0) / n
    var = (stats.e_sumsq[rows].sum(0) - n * mean**2) / (n - 1)
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    df = pd.DataFrame({"means": np.log1p(mean), "dispersions": np.log(dispersion)})
    df["mean_bin"] = _get_mean_bins(df["means"], "seurat", 20)
    disp = _get_disp_stats(df, "seurat")
    norm = ((df["dispersions"] - disp["avg"]) / disp["dev"]).to_numpy()
    valid = norm[~np.isnan(norm)]
    n_top = min(n_top, valid.size)
    cut = np.sort(valid)[::-1][n_top - 1]
    return np.nan_to_num(norm, nan=-np.inf) >= cut


def welch_t(stats: ConditionStats, rows: np.ndarray, ctrl: int) -> np.ndarray:
    """Welch t of each condition in ``rows`` against the controls, per gene (0 where both are constant)."""
    se = np.sqrt(stats.var[rows] / stats.n[rows, None] + stats.var[ctrl] / stats.n[ctrl])
    diff = stats.mean[rows] - stats.mean[ctrl]
    return np.divide(diff, se, out=np.zeros_like(diff), where=se > 0)


# ---- splits -------------------------------------------------------------------------------------

def split_folds(perts: list[str], split: str, *, seed: int, n_folds: int, double_train_fraction: float,
                n_clusters: int, signatures: np.ndarray | None = None) -> list[tuple[list[str], list[str]]]:
    """(train, test) perturbation lists per fold. S1: k-fold over singles; S2: a random share of the
    doubles whose two singles were measured goes to training with all singles; S3: leave one k-means
    cluster of single-perturbation signatures out at a time."""
    rng = np.random.default_rng(seed)
    singles = [p for p in perts if "+" not in p]
    if split == "double_seen2":
        seen = set(singles)
        doubles = [p for p in perts if "+" in p and all(t in seen for t in p.split("+"))]
        if len(doubles) < 4:
            return []
        order = rng.permutation(len(doubles))
        n_train = int(round(double_train_fraction * len(doubles)))
        return [(singles + [doubles[i] for i in order[:n_train]], [doubles[i] for i in order[n_train:]])]
    if split == "shift":
        from sklearn.cluster import KMeans

        k = min(n_clusters, len(singles) // 2)
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(signatures)
        groups = [[singles[i] for i in np.flatnonzero(labels == c)] for c in range(k)]
    else:
        order = rng.permutation(len(singles))
        groups = [[singles[i] for i in part] for part in np.array_split(order, min(n_folds, len(singles) // 2))]
    return [([p for p in singles if p not in set(g)], g) for g in groups if len(g) >= 2]


# ---- embeddings and probes ----------------------------------------------------------------------

def set_embeddings(vectors: dict[str, np.ndarray], perts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """e_p = Σ_{g∈T(p)} e_g and whether every target of p has a vector (coverage)."""
    d = len(next(iter(vectors.values())))
    out = np.zeros((len(perts), d))
    covered = np.zeros(len(perts), dtype=bool)
    for i, p in enumerate(perts):
        targets = p.split("+")
        if all(t in vectors for t in targets):
            out[i] = np.sum([vectors[t] for t in targets], axis=0)
            covered[i] = True
    return out, covered


def project(train: np.ndarray, other: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """z-score per dimension and PCA to ``dims``, both fitted on the training perturbations only."""
    mu, sd = train.mean(0), train.std(0)
    sd[sd == 0] = 1.0
    zt, zo = (train - mu) / sd, (other - mu) / sd
    _, _, vt = np.linalg.svd(zt - zt.mean(0), full_matrices=False)
    k = min(dims, vt.shape[0])
    centre = zt.mean(0)
    return (zt - centre) @ vt[:k].T, (zo - centre) @ vt[:k].T


def pca_scores(Xtrain: np.ndarray, k: int) -> np.ndarray:
    """Ahlmann-Eltze's G: the first k PC scores of the training pseudobulk (genes as observations,
    each perturbation column centred, like ``irlba::prcomp_irlba``)."""
    Xc = Xtrain - Xtrain.mean(0)
    u, s, _ = np.linalg.svd(Xc, full_matrices=False)
    k = min(k, len(s))
    return u[:, :k] * s[:k]


def ridge_solve(A: np.ndarray, lam: float) -> np.ndarray:
    """(A + λI)⁻¹ in float64."""
    return np.linalg.solve(A + lam * np.eye(A.shape[0]), np.eye(A.shape[0]))


def fit_predict(kind: str, Yc: np.ndarray, P_train: np.ndarray, P_test: np.ndarray, *, lam: float, k: int,
                G: np.ndarray | None) -> np.ndarray:
    """Predicted change minus b (genes × n_test) of a probe on embeddings P (rows = perturbations).

    ``lin``: bilinear ``G W P`` with ``W = (GᵀG+λI)⁻¹ Gᵀ Yc Pᵀ (PPᵀ+λI)⁻¹``; ``ridge``: ``B e_p`` with
    ``B = Yc Pᵀ (PPᵀ+λI)⁻¹``; ``knn``: mean of the centred changes of the k cosine-nearest training
    perturbations."""
    P = P_train.T  # K × m
    if kind == "knn":
        a = P_train / np.maximum(np.linalg.norm(P_train, axis=1, keepdims=True), 1e-12)
        q = P_test / np.maximum(np.linalg.norm(P_test, axis=1, keepdims=True), 1e-12)
        nn = np.argsort(-(q @ a.T), axis=1, kind="stable")[:, : min(k, len(a))]
        return Yc[:, nn].mean(2)
    right = Yc @ P.T @ ridge_solve(P @ P.T, lam)  # genes × K
    if kind == "ridge":
        return right @ P_test.T
    W = ridge_solve(G.T @ G, lam) @ G.T @ right
    return G @ W @ P_test.T
