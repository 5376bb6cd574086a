"""Scanorama baseline: panoramic stitching of the batches (mutual nearest neighbours in a shared SVD
space), on the log-normalised HVG expression; its integrated low-dimensional embedding."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Adapter, InputSpec, obs_column, require
from scfm_bench.registry import ADAPTERS


class ScanoramaParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimred: int = Field(100, ge=2, description="Dimensions of the integrated embedding (scanorama's default).")
    knn: int = Field(20, ge=1, description="Neighbours for matching across batches.")
    sigma: float = Field(15.0, gt=0, description="Gaussian kernel width of the correction.")
    alpha: float = Field(0.1, ge=0, le=1, description="Alignment score cut-off.")


@ADAPTERS.register("scanorama")
class Scanorama(Adapter):
    key = "scanorama"
    display_name = "Scanorama"
    kind = "baseline"
    description = "scanorama.integrate on the log-normalised HVG expression, one dataset per batch (100 dims)."
    licence = "MIT (scanorama)"
    input_spec = InputSpec(needs_batch=True)
    Params = ScanoramaParams

    def embed_batch(self, adata) -> np.ndarray:
        import scipy.sparse as sp

        scanorama = require("scanorama", "baselines", self.key)
        batch = obs_column(adata, "batch", self.key)
        X = adata.X[:, adata.var["highly_variable"].to_numpy()]
        X = sp.csr_matrix(X, dtype=np.float32)
        genes = adata.var_names[adata.var["highly_variable"].to_numpy()].tolist()
        rows = [np.flatnonzero(batch == b) for b in np.unique(batch)]
        dims = min(self.params.dimred, min(X.shape) - 1)  # the rank its SVD can give
        parts, _ = scanorama.integrate([X[r] for r in rows], [genes] * len(rows), dimred=dims, knn=self.params.knn,
                                       sigma=self.params.sigma, alpha=self.params.alpha, seed=self.seed, verbose=0)
        self.run_info = {"dimred": int(dims), "n_batches": len(rows)}
        out = np.empty((adata.n_obs, parts[0].shape[1]), dtype=np.float32)
        for r, part in zip(rows, parts):
            out[r] = part
        return out
