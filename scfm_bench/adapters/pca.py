"""PCA baseline: the principal components of the log-normalised HVG expression (preprocessing's X_pca)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Adapter
from scfm_bench.registry import ADAPTERS


class PCAParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_comps: int | None = Field(None, ge=2, description="Keep the first n components (default: all computed).")


@ADAPTERS.register("pca")
class PCA(Adapter):
    key = "pca"
    display_name = "PCA"
    version = "2"  # 2: run_info says the embedding is computed in preprocessing (cached metadata changed)
    kind = "baseline"
    description = "First principal components of the log-normalised HVG expression."
    Params = PCAParams

    def embed_batch(self, adata) -> np.ndarray:
        # the PCA ran in preprocessing, shared by every model: this call's time says nothing about PCA's cost
        self.run_info = {"computed_in": "preprocessing (X_pca)"}
        return np.asarray(adata.obsm["X_pca"][:, : self.params.n_comps], dtype=np.float32)
