"""The embedded default dataset: real PBMCs and labels from scanpy's pbmc68k_reduced, simulated batches.

Works offline: scanpy ships the file. Its ``.raw.X`` holds ``log1p(count * s_cell)`` per cell
(normalised to 10,000 counts, stored rounded to 3 decimals), from which the integer counts are
recovered exactly and verified; nothing is rounded unless every value of a cell is consistent with
one integer vector and one scale.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING

import numpy as np

from scfm_bench.data.batch_sim import simulate_batches
from scfm_bench.exceptions import DataError

if TYPE_CHECKING:
    import scipy.sparse as sp
    from anndata import AnnData

# bulk_labels of pbmc68k_reduced -> Cell Ontology id and name. Ids and names are checked against the
# Cell Ontology shipped with cellxgene-ontology-guide in tests/data/test_pbmc68k.py.
CELL_TYPES: tuple[tuple[str, str, str], ...] = (
    # (label, CL id, CL name)
    ("CD14+ Monocyte", "CL:0001054", "CD14-positive monocyte"),
    ("Dendritic", "CL:0000451", "dendritic cell"),
    ("CD56+ NK", "CL:0000623", "natural killer cell"),
    ("CD4+/CD25 T Reg", "CL:0000815", "regulatory T cell"),
    ("CD19+ B", "CL:0000236", "B cell"),
    ("CD8+ Cytotoxic T", "CL:0000794", "CD8-positive, alpha-beta cytotoxic T cell"),
    ("CD4+/CD45RO+ Memory", "CL:0000897", "CD4-positive, alpha-beta memory T cell"),
    ("CD8+/CD45RA+ Naive Cytotoxic", "CL:0000900", "naive thymus-derived CD8-positive, alpha-beta T cell"),
    ("CD4+/CD45RA+/CD25- Naive T", "CL:0000895", "naive thymus-derived CD4-positive, alpha-beta T cell"),
    ("CD34+", "CL:0008001", "hematopoietic precursor cell"),
)

# Half the 3-decimal storage step, plus float32 rounding of values below ~10.
LOG_ATOL = 5e-4 + 1e-6


def counts_from_lognorm(X, *, log_atol: float = LOG_ATOL) -> tuple[sp.csr_matrix, np.ndarray]:
    """Invert ``X = log1p(count * s_cell)`` row by row; return integer counts (CSR float32) and s per cell.

    The smallest non-zero value of a cell is taken to be count 1 (or 2, for a cell without any count
    of 1) to get a first scale; the counts and scale are then refined until one scale fits every value
    within ``log_atol`` in log space. A cell for which no such fit exists raises DataError.
    """
    import scipy.sparse as sp

    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    X.eliminate_zeros()  # stored zeros are count 0, not part of the fit
    out = np.empty(X.nnz, dtype=np.float32)
    scales = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        x = X.data[lo:hi]
        if x.size == 0 or x.min() <= 0:
            raise DataError(f"counts recovery: cell {i} has no positive values; cannot infer its scale.")
        fit = _fit_cell(x, np.expm1(x), log_atol)
        if fit is None:
            raise DataError(
                f"counts recovery: cell {i}'s values are not log1p(integer x scale) within {log_atol:g}; "
                f"refusing to round them. The source data changed or is not log-normalised counts."
            )
        out[lo:hi], scales[i] = fit
    return sp.csr_matrix((out, X.indices.copy(), X.indptr.copy()), shape=X.shape), scales


def _fit_cell(x: np.ndarray, e: np.ndarray, atol: float) -> tuple[np.ndarray, float] | None:
    for smallest_count in (1, 2):
        s = e.min() / smallest_count
        for _ in range(4):
            c = np.rint(e / s)
            if c.min() < 1:
                break
            # every stored value pins s to an interval; one s must lie in all of them
            s_lo = np.max(np.expm1(x - atol) / c)
            s_hi = np.min(np.expm1(x + atol) / c)
            if s_lo <= s_hi:
                s = 0.5 * (s_lo + s_hi)
                c_max = c.max()
                # the largest count must stay distinguishable from its neighbours at this tolerance
                unambiguous = np.log1p((c_max + 1) * s) - np.log1p(c_max * s) > 2 * atol
                if np.array_equal(np.rint(e / s), c) and unambiguous:
                    return c, s
            else:
                s = float(e @ c / (c @ c))  # least-squares scale for these counts, then try again
    return None


def pbmc68k_semisynthetic(*, n_batches: int = 3, library_sigma: float = 0.3, gene_sigma: float = 0.5, seed: int = 0) -> AnnData:
    """700 real PBMCs with 10 real labels (CL-mapped) and ``n_batches`` simulated technical batches."""
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    src = sc.datasets.pbmc68k_reduced()
    counts, _ = counts_from_lognorm(src.raw.X)
    labels = src.obs["bulk_labels"].astype(str).to_numpy()
    table = {label: (cl_id, cl_name) for label, cl_id, cl_name in CELL_TYPES}
    unmapped = sorted(set(labels) - set(table))
    if unmapped:
        raise DataError(f"pbmc68k_reduced has labels without a Cell Ontology mapping: {unmapped}; extend CELL_TYPES.")
    params = {"n_batches": n_batches, "library_sigma": library_sigma, "gene_sigma": gene_sigma, "seed": seed}
    simulated, batch = simulate_batches(counts, labels, **params)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(labels, categories=[row[0] for row in CELL_TYPES if row[0] in set(labels)]),
            "cell_type_ontology_term_id": pd.Categorical([table[label][0] for label in labels]),
            "cell_type_ontology_label": pd.Categorical([table[label][1] for label in labels]),
            "batch": pd.Categorical([f"batch_{b}" for b in batch]),
        },
        index=src.obs_names.astype(str).rename(None),
    )
    adata = ad.AnnData(X=simulated, obs=obs, var=pd.DataFrame(index=src.raw.var_names.astype(str).rename(None)))
    adata.uns["provenance"] = {
        "summary": (
            "Cells, counts and cell-type labels are real: 700 PBMCs from 10x Genomics' Fresh 68k PBMC data "
            "(Zheng et al. 2017, Nat Commun 8:14049) as shipped in scanpy.datasets.pbmc68k_reduced; integer "
            "counts were recovered exactly from its log-normalised .raw.X. The batches are SIMULATED: cells "
            "were split into batches stratified by label and their counts distorted by seeded per-batch "
            "library-size and gene-wise multiplicative factors with Poisson resampling."
        ),
        "cells": "real",
        "labels": "real (bulk_labels), mapped to Cell Ontology ids by scfm_bench.data.pbmc68k.CELL_TYPES",
        "batches": "simulated by scfm_bench.data.batch_sim.simulate_batches",
        "simulator_params": params,
        "source": f"scanpy {version('scanpy')} datasets.pbmc68k_reduced",
        "licence": "BSD-3-Clause (scanpy); 10x Genomics data CC-BY-4.0",
    }
    return adata
