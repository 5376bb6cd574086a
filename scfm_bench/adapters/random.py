"""Negative control: i.i.d. Gaussian noise with PCA's dimension (cells) or gene_pca's (genes).
Anything scoring below it is broken."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from scfm_bench.adapters._base import Adapter
from scfm_bench.registry import ADAPTERS

GENE_DIM = 50  # gene embeddings: gene_pca's dimension


@ADAPTERS.register("random")
class RandomControl(Adapter):
    key = "random"
    display_name = "Random (control)"
    kind = "control"
    description = "Standard-normal embedding of PCA's dimension, seeded."

    def embed_batch(self, adata) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((adata.n_obs, adata.obsm["X_pca"].shape[1])).astype(np.float32)

    def gene_embeddings(self, genes: Sequence[str], *, adata=None) -> np.ndarray:
        """Standard-normal gene vectors of GENE_DIM, seeded per (seed, gene id): order-independent."""
        return np.stack([np.random.default_rng([self.seed, zlib.crc32(str(g).encode())]).standard_normal(GENE_DIM)
                         for g in genes]).astype(np.float32) if len(genes) else np.empty((0, GENE_DIM), np.float32)
