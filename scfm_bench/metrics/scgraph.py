"""scGraph (Wang, Leskovec & Regev 2025, Islander; scgraph-eval 0.1.2): do distances between
cell-type centroids in the embedding match a reference built from expression, batch by batch?

Reference: for every batch with >= 100 cells, 1,000 HVGs (scanpy, flavour 'seurat') and a 10-PC PCA
of the log-normalised expression; 5 %-per-side trimmed centroids per type; centroid distances
normalised by each column's maximum; the consensus is the NaN-ignoring mean over batches,
re-normalised per column. Embedding: the same centroid distances over all cells. Per type (column):
Spearman (``rank``), Pearson (``corr``) and 1/reference-weighted Pearson (``corr_weighted``, the number
the paper reports as scGraph), the self entry included; the score is the mean over types with a
defined value. Works for any embedding dimension (scgraph-eval's class silently skips non-2-D
embeddings by default; not reproduced). Types with < 10 cells are excluded everywhere. Without a
batch key the whole dataset is one batch.

The reference depends on the expression, not on the embedding, so it is computed once per expression
matrix (the runner passes one per preprocessed dataset), labels, batches and options, and reused for
every embedding scored on them (held while that matrix is alive).
"""

from __future__ import annotations

import hashlib
import warnings
import weakref

import numpy as np

from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics._base import MetricSpec, Scored, metric
from scfm_bench.metrics._celltypes import (centroid_distances, column_correlations, finite_embedding, kept_types,
                                           nanmean_or_fail)


def reference_distances(expression, labels, batch, types: list[str], *, trim: float, min_batch_cells: int,
                        n_top_genes: int, n_comps: int) -> tuple[np.ndarray, list[str]]:
    """Consensus of the per-batch HVG-PCA centroid distances over ``types`` (NaN where never co-observed)."""
    import anndata as ad
    import scanpy as sc

    labels = np.asarray(labels).astype(str)
    batch = np.zeros(len(labels), dtype=int).astype(str) if batch is None else np.asarray(batch).astype(str)
    pos = {t: i for i, t in enumerate(types)}
    total = np.zeros((len(types), len(types)))
    count = np.zeros_like(total)
    used = []
    for b in dict.fromkeys(batch):  # order of appearance
        cells = np.flatnonzero(batch == b)
        if len(cells) < min_batch_cells:
            continue
        A = ad.AnnData(expression[cells])
        A.obs["label"] = labels[cells]
        with warnings.catch_warnings():  # "n_top_genes > number of normalized dispersions": all genes kept, as intended
            warnings.simplefilter("ignore", UserWarning)
            sc.pp.highly_variable_genes(A, n_top_genes=min(n_top_genes, A.n_vars))
        sc.pp.pca(A, n_comps=min(n_comps, A.n_obs - 1, int(A.var["highly_variable"].sum()) - 1),
                  mask_var="highly_variable")
        present = [t for t in types if (labels[cells] == t).any()]
        D = centroid_distances(A.obsm["X_pca"], labels[cells], present, trim)
        idx = np.array([pos[t] for t in present])
        ok = np.isfinite(D)
        total[np.ix_(idx, idx)] += np.where(ok, D, 0.0)
        count[np.ix_(idx, idx)] += ok
        used.append(str(b))
    if not used:
        raise CellSkipped(f"no batch has >= {min_batch_cells} cells to build the scGraph reference.")
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = total / count
        ref = ref / np.nanmax(ref, axis=0, keepdims=True)
    return ref, used


_references: dict[tuple, tuple[weakref.ref, tuple[np.ndarray, list[str]]]] = {}


def cached_reference(expression, labels, batch, types: list[str], **options) -> tuple[np.ndarray, list[str]]:
    """``reference_distances``, computed once per (expression object, labels, batches, types, options)."""
    digest = hashlib.sha256()
    for part in (labels, batch):
        payload = "\0".join(np.asarray(part).astype(str)).encode() if part is not None else b"-"
        digest.update(f"{len(payload)}:".encode() + payload)
    key = (id(expression), digest.hexdigest(), tuple(types), tuple(sorted(options.items())))
    for k in [k for k, (ref, _) in _references.items() if ref() is None]:  # matrices that are gone
        del _references[k]
    hit = _references.get(key)
    if hit is not None and hit[0]() is expression:
        return hit[1][0], list(hit[1][1])
    ref, used = reference_distances(expression, labels, batch, types, **options)
    ref.setflags(write=False)
    try:
        _references[key] = (weakref.ref(expression), (ref, used))
    except TypeError:  # an object without weak references: cannot tell when it is gone, so not cached
        pass
    return ref, list(used)


def scgraph_scores(D_emb: np.ndarray, D_ref: np.ndarray) -> dict[str, float]:
    per = column_correlations(D_emb, D_ref)
    return {k: nanmean_or_fail(v, f"scGraph {k}") for k, v in per.items()}


@metric(MetricSpec("scgraph", "scGraph", "ontology", True, (-1.0, 1.0), ("X", "labels", "batch", "expression"),
                   "Wang, Leskovec & Regev 2025, Nat Biotechnol (Islander; scgraph-eval 0.1.2)",
                   outputs=("rank", "corr", "corr_weighted"), optional=("batch",)))
def scgraph(X, labels, batch, expression, *, trim: float = 0.05, min_batch_cells: int = 100, min_cells: int = 10,
            n_top_genes: int = 1000, n_comps: int = 10) -> Scored:
    X = finite_embedding(X)
    types, small = kept_types(labels, min_cells)
    if len(types) < 3:
        raise CellSkipped(f"needs at least 3 cell types with >= {min_cells} cells; found {len(types)}.")
    ref, batches = cached_reference(expression, labels, batch, types, trim=trim, min_batch_cells=min_batch_cells,
                                    n_top_genes=n_top_genes, n_comps=n_comps)
    D = centroid_distances(X, labels, types, trim)
    info = {"trim": trim, "types_excluded_small": small, "n_types_used": len(types), "reference_batches": batches}
    return Scored(scgraph_scores(D, ref), info)
