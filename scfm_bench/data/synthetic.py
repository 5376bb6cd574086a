"""Seeded synthetic counts: low-rank cell-type programs plus gene-wise batch effects, gamma-Poisson noise."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scfm_bench.data.pbmc68k import CELL_TYPES

if TYPE_CHECKING:
    from anndata import AnnData

# Cells generated per step: the dense rate block stays ~8k x n_genes float32 whatever n_cells is. A
# constant, so the draws (and the content hash) do not depend on the machine.
_CHUNK_CELLS = 8192


def synthetic(
    *,
    n_cells: int = 2000,
    n_genes: int = 1000,
    n_batches: int = 3,
    n_cell_types: int = 6,
    cell_type_effect: float = 1.0,
    batch_effect: float = 0.5,
    dispersion: float = 5.0,
    seed: int = 0,
) -> AnnData:
    """Counts from ``log rate = gene baseline + type program + batch shift + log library size``.

    Type programs are low rank: ``cell_type_effect * A @ W`` with A (types x r) and W (r x genes)
    standard normal, r = min(n_cell_types, 10), scaled so each type's effect on a gene has standard
    deviation ``cell_type_effect``. Batch shifts are independent per batch and gene with standard
    deviation ``batch_effect``. Counts are gamma-Poisson (negative binomial, inverse overdispersion
    ``dispersion``). Cell types and batches are drawn uniformly and independently, so they are not
    confounded. Each type gets a real Cell Ontology id from the pbmc68k table, cycling when there are
    more than 10 types (types then share ids).
    """
    params = dict(locals())  # the arguments, recorded in uns["provenance"]
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    for key in ("n_cells", "n_genes", "n_batches", "n_cell_types"):
        if params[key] < 1:
            raise ValueError(f"{key} must be >= 1, not {params[key]}")
    if cell_type_effect < 0 or batch_effect < 0 or dispersion <= 0:
        raise ValueError("cell_type_effect and batch_effect must be >= 0 and dispersion > 0")
    rng = np.random.default_rng(seed)
    rank = min(n_cell_types, 10)
    baseline = rng.normal(-2.5, 1.0, n_genes)
    programs = rng.standard_normal((n_cell_types, rank)) @ rng.standard_normal((rank, n_genes)) / np.sqrt(rank)
    log_rate_type = (baseline + cell_type_effect * programs).astype(np.float32)
    log_rate_batch = (batch_effect * rng.standard_normal((n_batches, n_genes))).astype(np.float32)
    cell_type = rng.integers(n_cell_types, size=n_cells)
    batch = rng.integers(n_batches, size=n_cells)
    log_library = rng.normal(0.0, 0.3, n_cells).astype(np.float32)

    blocks = []
    for start in range(0, n_cells, _CHUNK_CELLS):
        cells = slice(start, min(start + _CHUNK_CELLS, n_cells))
        rate = np.exp(log_rate_type[cell_type[cells]] + log_rate_batch[batch[cells]] + log_library[cells, None])
        rate *= rng.gamma(dispersion, 1.0 / dispersion, rate.shape).astype(np.float32)
        blocks.append(sp.csr_matrix(rng.poisson(rate).astype(np.float32)))
    X = sp.vstack(blocks, format="csr")

    types = [CELL_TYPES[t % len(CELL_TYPES)] for t in range(n_cell_types)]
    width = max(4, len(str(n_genes)))
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(cell_type, [f"type_{t}" for t in range(n_cell_types)]),
            "cell_type_ontology_term_id": pd.Categorical(np.array([row[1] for row in types])[cell_type]),
            "cell_type_ontology_label": pd.Categorical(np.array([row[2] for row in types])[cell_type]),
            "batch": pd.Categorical.from_codes(batch, [f"batch_{b}" for b in range(n_batches)]),
        },
        index=[f"cell_{i}" for i in range(n_cells)],
    )
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"GENE{g + 1:0{width}d}" for g in range(n_genes)]))
    adata.uns["provenance"] = {
        "summary": "Entirely synthetic (scfm_bench.data.synthetic.synthetic); the CL ids are real terms, assigned arbitrarily.",
        "params": params,
    }
    return adata
