"""Harmony baseline: harmonypy on the PCA, corrected for the dataset's batch column."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Adapter, InputSpec, obs_column, require
from scfm_bench.registry import ADAPTERS


class HarmonyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    theta: float = Field(2.0, ge=0, description="Diversity clustering penalty.")
    max_iter_harmony: int = Field(10, ge=1)


@ADAPTERS.register("harmony")
class Harmony(Adapter):
    key = "harmony"
    display_name = "Harmony"
    kind = "baseline"
    description = "harmonypy on the 50-PC PCA, batch key as covariate."
    licence = "GPL-3.0 (harmonypy)"
    input_spec = InputSpec(needs_batch=True)
    Params = HarmonyParams

    def embed_batch(self, adata) -> np.ndarray:
        import pandas as pd

        hm = require("harmonypy", "baselines", self.key)
        batch = obs_column(adata, "batch", self.key)
        meta = pd.DataFrame({"batch": batch})
        out = hm.run_harmony(
            np.asarray(adata.obsm["X_pca"], dtype=np.float64), meta, ["batch"],
            theta=self.params.theta, max_iter_harmony=self.params.max_iter_harmony,
            random_state=self.seed, verbose=False,
        )
        Z = np.asarray(out.Z_corr)
        # harmonypy >= 2 returns cells x PCs; older releases PCs x cells
        return (Z if Z.shape[0] == adata.n_obs else Z.T).astype(np.float32)
