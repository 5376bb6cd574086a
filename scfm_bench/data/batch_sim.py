"""Seeded technical-batch simulator: splits real cells into batches and distorts their counts per batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp


def simulate_batches(
    counts: sp.csr_matrix,
    labels: np.ndarray,
    *,
    n_batches: int = 3,
    library_sigma: float = 0.3,
    gene_sigma: float = 0.5,
    seed: int = 0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Assign cells to ``n_batches`` batches and apply a multiplicative technical effect per batch.

    Model: batch b has a library-size factor ``L_b ~ LogNormal(0, library_sigma)`` and, per gene g, a
    factor ``G_bg ~ LogNormal(0, gene_sigma)`` (capture efficiency, amplification bias). Each count c of
    gene g in a cell of batch b is replaced by a draw from ``Poisson(c * L_b * G_bg)``, so counts stay
    integers and a gene not detected in a cell stays undetected. Cells are dealt to batches
    round-robin within each label after a shuffle, so every batch holds every cell type in near-equal
    proportion and batch is not confounded with biology.

    Returns the new counts (CSR, float32) and each cell's batch index (0..n_batches-1).
    """
    import scipy.sparse as sp

    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, not {n_batches}")
    if library_sigma < 0 or gene_sigma < 0:
        raise ValueError("library_sigma and gene_sigma must be >= 0")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    batch = np.empty(counts.shape[0], dtype=np.int64)
    for label in np.unique(labels):
        cells = rng.permutation(np.flatnonzero(labels == label))
        batch[cells] = np.arange(cells.size) % n_batches

    library = rng.lognormal(0.0, library_sigma, n_batches)
    gene = rng.lognormal(0.0, gene_sigma, (n_batches, counts.shape[1]))
    counts = sp.csr_matrix(counts)
    row_batch = np.repeat(batch, np.diff(counts.indptr))
    mean = counts.data * library[row_batch] * gene[row_batch, counts.indices]
    # copies: eliminate_zeros works in place and must not touch the caller's index arrays
    out = sp.csr_matrix((rng.poisson(mean).astype(np.float32), counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)
    out.eliminate_zeros()
    return out, batch
