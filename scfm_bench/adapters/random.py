"""Negative control: i.i.d. Gaussian noise with PCA's dimension. Anything scoring below it is broken."""

from __future__ import annotations

import numpy as np

from scfm_bench.adapters._base import Adapter
from scfm_bench.registry import ADAPTERS


@ADAPTERS.register("random")
class RandomControl(Adapter):
    key = "random"
    display_name = "Random (control)"
    kind = "control"
    description = "Standard-normal embedding of PCA's dimension, seeded."

    def embed_batch(self, adata) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((adata.n_obs, adata.obsm["X_pca"].shape[1])).astype(np.float32)
