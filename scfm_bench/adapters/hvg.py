"""HVG baseline: the log-normalised expression of the highly variable genes, used as-is."""

from __future__ import annotations

import numpy as np

from scfm_bench.adapters._base import Adapter
from scfm_bench.registry import ADAPTERS


@ADAPTERS.register("hvg")
class HVG(Adapter):
    key = "hvg"
    display_name = "HVG expression"
    kind = "baseline"
    description = "log1p(CP10k) expression of the highly variable genes (the zero-shot papers' HVG baseline)."

    def embed_batch(self, adata) -> np.ndarray:
        X = adata[:, adata.var["highly_variable"].to_numpy()].X
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
