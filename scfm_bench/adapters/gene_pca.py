"""Gene baseline: each gene's loadings on the first 50 principal components of the dataset's
log-normalised, gene-standardised expression — what co-expression in this dataset alone knows."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import GeneAdapter
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)
ID_COLUMNS = ("gene_symbol", "ensembl_id")  # var columns of the other namespace (the shared-data convention)


class GenePCAParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_comps: int = Field(50, ge=2, description="Principal components (loadings per gene).")
    max_cells: int = Field(20_000, ge=100, description="Seeded subsample of cells above this many (memory of the dense scaled matrix).")


@ADAPTERS.register("gene_pca")
class GenePCA(GeneAdapter):
    key = "gene_pca"
    display_name = "Gene PCA loadings"
    description = "Genes x 50 PCA loadings of the dataset's log-normalised expression (co-expression baseline)."
    Params = GenePCAParams

    def gene_embeddings(self, genes: Sequence[str], *, adata=None) -> np.ndarray:
        """Loadings (components scaled by the sd of their scores) for ``genes`` (symbols or Ensembl ids);
        NaN rows for genes the dataset lacks or never detects. Fitted once per dataset object."""
        if adata is None:  # a caller without the dataset (e.g. the perturbation probes) finds no gene known
            log.warning("model 'gene_pca' embeds genes by a dataset's expression and was called without one (adata=)")
            return np.full((len(genes), self.params.n_comps), np.nan, dtype=np.float32)
        if getattr(self, "_fitted", (None,))[0] is not adata:
            self._fitted = (adata, *self._fit(adata))
        _, index, loadings = self._fitted
        out = np.full((len(genes), self.params.n_comps), np.nan, dtype=np.float32)
        rows = np.array([index.get(_key(g), -1) for g in genes], dtype=int)
        out[rows >= 0] = loadings[rows[rows >= 0]]
        return out

    def _fit(self, adata) -> tuple[dict[str, int], np.ndarray]:
        import scanpy as sc
        import scipy.sparse as sp
        from sklearn.decomposition import PCA

        index: dict[str, int] = {}
        for col in (*ID_COLUMNS, None):  # var_names last: they win over the columns
            ids = adata.var_names if col is None else adata.var[col] if col in adata.var else []
            index.update({_key(g): i for i, g in enumerate(ids) if isinstance(g, str)})
        cells = np.arange(adata.n_obs)
        if adata.n_obs > self.params.max_cells:
            cells = np.sort(np.random.default_rng(self.seed).choice(adata.n_obs, self.params.max_cells, replace=False))
        counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
        sub = sc.AnnData(sp.csr_matrix(counts[cells], dtype=np.float32))
        sc.pp.normalize_total(sub, target_sum=1e4)
        sc.pp.log1p(sub)
        X = sub.X.toarray()
        sd = X.std(0)
        detected = sd > 0
        X = np.clip((X[:, detected] - X[:, detected].mean(0)) / sd[detected], -10, 10)  # scanpy's scale(max_value=10)
        k = min(self.params.n_comps, *X.shape)
        pca = PCA(k, svd_solver="randomized", random_state=self.seed).fit(X)
        loadings = np.full((adata.n_vars, self.params.n_comps), np.nan, dtype=np.float32)
        loadings[detected] = 0.0
        loadings[np.flatnonzero(detected)[:, None], np.arange(k)] = pca.components_.T * np.sqrt(pca.explained_variance_)
        self.run_info = {"cells": int(len(cells)), "genes_detected": int(detected.sum()), "n_comps": int(k),
                         "explained_variance_ratio": float(pca.explained_variance_ratio_.sum())}
        return index, loadings


def _key(gene) -> str:
    """Ensembl ids without their version suffix; symbols unchanged."""
    g = str(gene)
    return g.split(".")[0] if g.startswith("ENS") else g
