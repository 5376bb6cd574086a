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


class PseudobulkSums:
    """Per-group sums of log values, their squares, expm1(values) and its squares, accumulated over
    row chunks of sparse matrices (a 90k-cell screen is never densified nor copied whole to float64)."""

    def __init__(self, n_groups: int, n_genes: int) -> None:
        self.n = np.zeros(n_groups)
        self.m = np.zeros((4, n_groups, n_genes))

    def add(self, X, codes: np.ndarray, *, chunk_nnz: int = 1 << 22) -> "PseudobulkSums":
        """Add the rows of ``X`` to groups ``codes`` (rows with code -1 are ignored)."""
        import scipy.sparse as sp

        from scfm_bench.data.perturbation import row_chunks

        X = sp.csr_matrix(X)
        k = len(self.n)
        for lo, hi in row_chunks(X.indptr, chunk_nnz):
            c = codes[lo:hi]
            keep = c >= 0
            ind = sp.csr_matrix((np.ones(int(keep.sum())), (c[keep], np.flatnonzero(keep))), shape=(k, hi - lo))
            self.n += np.bincount(c[keep], minlength=k)
            blk = sp.csr_matrix(X[lo:hi], dtype=np.float64)
            e = blk.expm1()
            for i, part in enumerate((blk, blk.multiply(blk), e, e.multiply(e))):
                self.m[i] += (ind @ part).toarray()
        return self

    def stats(self, names: list[str], rows: np.ndarray | None = None) -> ConditionStats:
        n, (s, ss, e, ee) = (self.n, self.m) if rows is None else (self.n[rows], self.m[:, rows])
        mean = s / n[:, None]
        var = np.maximum(ss - n[:, None] * mean**2, 0) / np.maximum(n - 1, 1)[:, None]
        return ConditionStats(list(names), n, mean, var, e, ee)


def condition_stats(X, conditions: np.ndarray, *, names: list[str] | None = None) -> ConditionStats:
    names = names if names is not None else sorted(set(conditions))
    codes = {c: i for i, c in enumerate(names)}
    rows = np.array([codes.get(c, -1) for c in conditions])
    return PseudobulkSums(len(names), X.shape[1]).add(X, rows).stats(names)


def split_half_stats(X, conditions: np.ndarray, *, seed: int) -> tuple[ConditionStats, ConditionStats, ConditionStats]:
    """Stats of every condition and of two random halves of its cells (the split-half noise ceiling),
    from one pass over X: the full sums are the sums of the halves."""
    names, inverse = np.unique(conditions.astype(str), return_inverse=True)
    names = list(names)
    k = len(names)
    rng = np.random.default_rng([seed, 1])
    codes = inverse.copy()
    order = np.argsort(inverse, kind="stable")
    for idx in np.split(order, np.cumsum(np.bincount(inverse, minlength=k))[:-1]):
        codes[rng.permutation(idx)[len(idx) // 2:]] += k  # the second half of each condition
    sums = PseudobulkSums(2 * k, X.shape[1]).add(X, codes)
    a, b = sums.stats(names, np.arange(k)), sums.stats(names, np.arange(k, 2 * k))
    full = PseudobulkSums(k, X.shape[1])
    full.n, full.m = sums.n[:k] + sums.n[k:], sums.m[:, :k] + sums.m[:, k:]
    return full.stats(names), a, b


def replicate_stats(blocks, *, genes: np.ndarray, all_genes: np.ndarray, names: list[str], counts: bool) -> ConditionStats | None:
    """Pseudobulk stats of an independent replicate screen given as (label, CSR block) pairs, on the
    task's genes and conditions; None when the replicate lacks one of the conditions."""
    from scfm_bench.data.perturbation import log_normalise

    pos = {c: i for i, c in enumerate(names)}
    gene_pos = {g: i for i, g in enumerate(all_genes)}
    gene_idx = np.array([gene_pos[g] for g in genes])
    sums = PseudobulkSums(len(names), len(genes))
    for label, X in blocks:
        if label in pos:
            X = (log_normalise(X) if counts else X)[:, gene_idx]
            sums.add(X, np.full(X.shape[0], pos[label]))
    return sums.stats(names) if (sums.n > 0).all() else None


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

Fold = tuple[list[str], list[str], dict[str, str]]  # train, test, test perturbation -> subgroup


def split_folds(perts: list[str], split: str, *, seed: int, n_folds: int, double_train_fraction: float,
                n_clusters: int, signatures: np.ndarray | None = None, gears_train_gene_fraction: float = 0.75,
                gears_combo_seen2_train_fraction: float = 0.75) -> list[Fold]:
    """(train, test, subgroups) per fold. S1: k-fold over singles; S2: a random share of the doubles
    whose two singles were measured goes to training with all singles; S3: leave one k-means cluster of
    single-perturbation signatures out at a time; ``gears_simulation``: GEARS' simulation split."""
    if split == "gears_simulation":
        return [gears_simulation_split(perts, seed=seed, train_gene_fraction=gears_train_gene_fraction,
                                       combo_seen2_train_fraction=gears_combo_seen2_train_fraction)]
    rng = np.random.default_rng(seed)
    singles = [p for p in perts if "+" not in p]
    if split == "double_seen2":
        seen = set(singles)
        doubles = [p for p in perts if "+" in p and all(t in seen for t in p.split("+"))]
        if len(doubles) < 4:
            return []
        order = rng.permutation(len(doubles))
        n_train = int(round(double_train_fraction * len(doubles)))
        folds = [(singles + [doubles[i] for i in order[:n_train]], [doubles[i] for i in order[n_train:]])]
    else:
        if split == "shift":
            from sklearn.cluster import KMeans

            k = min(n_clusters, len(singles) // 2)
            labels = KMeans(k, n_init=10, random_state=seed).fit_predict(signatures)
            groups = [[singles[i] for i in np.flatnonzero(labels == c)] for c in range(k)]
        else:
            order = rng.permutation(len(singles))
            groups = [[singles[i] for i in part] for part in np.array_split(order, min(n_folds, len(singles) // 2))]
        folds = [([p for p in singles if p not in set(g)], g) for g in groups if len(g) >= 2]
    return [(train, test, subgroups(test, {t for p in train for t in p.split("+")})) for train, test in folds]


def subgroups(test: list[str], seen_genes: set[str]) -> dict[str, str]:
    """GEARS' test subgroups: ``unseen_single`` / ``seen_single`` and ``combo_seen{0,1,2}`` (how many
    targets of a combination were seen in training)."""
    out = {}
    for p in test:
        targets = p.split("+")
        k = sum(t in seen_genes for t in targets)
        out[p] = ("seen_single" if k else "unseen_single") if len(targets) == 1 else f"combo_seen{k}"
    return out


def gears_simulation_split(perts: list[str], *, seed: int, train_gene_fraction: float,
                           combo_seen2_train_fraction: float) -> Fold:
    """GEARS' ``prepare_split(split="simulation")`` semantics: a seeded share of the target genes is
    "seen"; their singles train, the other singles are ``unseen_single`` tests; combinations with 0 or 1
    seen genes are tests (``combo_seen0/1``); of those with 2, a share trains and the rest are
    ``combo_seen2`` tests. Draws use numpy's legacy ``RandomState(seed)`` over sorted names, as GEARS
    does, so the seen genes match GEARS' for the same seed and fraction (GEARS' own validation carve-out
    is not reproduced: probes choose hyper-parameters on their inner validation split)."""
    genes = np.unique([t for p in perts for t in p.split("+")])
    seen = set(np.random.RandomState(seed).choice(genes, int(len(genes) * train_gene_fraction), replace=False))
    singles = [p for p in perts if "+" not in p]
    combos = [p for p in perts if "+" in p]
    seen2 = sorted(p for p in combos if all(t in seen for t in p.split("+")))
    n_train = int(len(seen2) * combo_seen2_train_fraction)
    combo_train = set(np.random.RandomState(seed).choice(seen2, n_train, replace=False)) if n_train else set()
    train = [p for p in singles if p in seen] + [p for p in combos if p in combo_train]
    test = [p for p in singles if p not in seen] + [p for p in combos if p not in combo_train]
    return train, test, subgroups(test, seen)


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
