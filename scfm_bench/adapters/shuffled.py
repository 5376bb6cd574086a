"""Negative control: PCA rows permuted across cells (real marginal structure, no cell correspondence)."""

from __future__ import annotations

import numpy as np

from scfm_bench.adapters._base import Adapter
from scfm_bench.registry import ADAPTERS


@ADAPTERS.register("shuffled")
class ShuffledControl(Adapter):
    key = "shuffled"
    display_name = "Shuffled PCA (control)"
    kind = "control"
    description = "The PCA embedding with its rows permuted by a seeded permutation."

    def embed_batch(self, adata) -> np.ndarray:
        X = np.asarray(adata.obsm["X_pca"], dtype=np.float32)
        return X[np.random.default_rng(self.seed).permutation(adata.n_obs)]
