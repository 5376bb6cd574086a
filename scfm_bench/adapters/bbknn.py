"""BBKNN baseline: a batch-balanced kNN graph on the PCA (each cell's nearest neighbours taken per
batch). It yields a graph, not an embedding (``output = "knn_graph"``): only the graph metrics score
it (graph connectivity, iLISI/cLISI, Leiden NMI/ARI, kBET), the embedding-only ones are not
applicable, as in scIB. The graph is BBKNN's neighbour lists (its ``distances``); scib-metrics derives
the UMAP connectivities from them (BBKNN's connectivity trimming is therefore not applied)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Adapter, InputSpec, obs_column, require
from scfm_bench.registry import ADAPTERS


class BBKNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    neighbors_within_batch: int = Field(3, ge=1, description="Neighbours taken in each batch (BBKNN's default).")
    n_pcs: int = Field(50, ge=2, description="Principal components used.")
    computation: Literal["cKDTree", "annoy", "pynndescent"] = Field(
        "cKDTree", description="Neighbour search: cKDTree is exact (deterministic); annoy/pynndescent approximate (large data).")


@ADAPTERS.register("bbknn")
class BBKNN(Adapter):
    key = "bbknn"
    display_name = "BBKNN"
    kind = "baseline"
    version = "1"
    description = "bbknn.matrix.bbknn on the 50-PC PCA with the batch key: a batch-balanced kNN graph (graph metrics only)."
    licence = "MIT (bbknn)"
    input_spec = InputSpec(needs_batch=True)
    Params = BBKNNParams
    output = "knn_graph"

    def embed_batch(self, adata) -> np.ndarray:
        from scfm_bench.metrics._neighbors import pack_knn

        matrix = require("bbknn.matrix", "baselines", self.key)
        batch = obs_column(adata, "batch", self.key)
        distances, _, info = matrix.bbknn(np.asarray(adata.obsm["X_pca"], dtype=np.float64), batch,
                                          neighbors_within_batch=self.params.neighbors_within_batch,
                                          n_pcs=self.params.n_pcs, computation=self.params.computation,
                                          pynndescent_random_state=self.seed)
        packed = pack_knn(distances)
        self.run_info = {"n_neighbors": int(packed.shape[1] // 2), "bbknn_neighbors": int(info["n_neighbors"])}
        return packed
