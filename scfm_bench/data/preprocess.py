"""The shared classical preprocessing: normalise, log1p, HVG (seurat_v3 on counts), PCA."""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)


def preprocess(adata: AnnData, *, n_top_genes: int = 2000, n_pcs: int = 50, seed: int = 0) -> AnnData:
    """Return a preprocessed copy of ``adata`` (X = raw counts); the input is left untouched.

    ``layers["counts"]`` keeps the counts, X becomes log1p of counts normalised to 10,000 per cell,
    ``var["highly_variable"]`` marks the HVGs and ``obsm["X_pca"]`` holds the PCA of the HVGs.
    Every parameter actually used is recorded in ``uns["scfm_bench_preprocess"]``.
    """
    import scanpy as sc

    out = adata.copy()
    out.layers["counts"] = out.X.copy()
    target_sum = 1e4
    sc.pp.normalize_total(out, target_sum=target_sum)
    sc.pp.log1p(out)

    n_hvg = min(n_top_genes, out.n_vars)
    flavor = "seurat_v3"
    try:
        sc.pp.highly_variable_genes(out, flavor=flavor, n_top_genes=n_hvg, layer="counts")
    except ValueError as e:
        # seurat_v3 fits a loess of variance on mean, which can fail on very few genes
        flavor = "seurat"
        logger.warning(
            "HVG selection with flavor='seurat_v3' failed on %d genes (%s); falling back to flavor='seurat' "
            "on the log-normalised values",
            out.n_vars,
            e,
        )
        sc.pp.highly_variable_genes(out, flavor=flavor, n_top_genes=n_hvg)
    n_hvg = int(out.var["highly_variable"].sum())

    n_comps = min(n_pcs, out.n_obs - 1, n_hvg - 1)
    sc.pp.pca(out, n_comps=n_comps, mask_var="highly_variable", svd_solver="arpack", random_state=seed)
    out.uns["scfm_bench_preprocess"] = {
        "counts_layer": "counts",
        "normalize_total_target_sum": target_sum,
        "log1p": True,
        "hvg_flavor": flavor,
        "hvg_layer": "counts" if flavor == "seurat_v3" else "X",
        "n_top_genes_requested": n_top_genes,
        "n_hvg": n_hvg,
        "pca_n_comps_requested": n_pcs,
        "pca_n_comps": n_comps,
        "pca_svd_solver": "arpack",
        "seed": seed,
        "scanpy_version": version("scanpy"),
    }
    return out
