"""Batch integration: the scIB metric set (bio conservation and batch correction) via scib-metrics.

The pre-integration reference for PCR comparison is the dataset's HVG PCA (X_pca), as passing a
precomputed key to the scib-metrics Benchmarker does. A dataset with a single batch is skipped.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics import MetricInputs
from scfm_bench.registry import TASKS
from scfm_bench.tasks._base import EmbeddingTask, ScibTaskParams


@TASKS.register("batch_integration")
class BatchIntegration(EmbeddingTask):
    key = "batch_integration"
    description = "Remove batch effects while keeping cell-type structure (scIB metrics)."
    needs_label = True
    needs_batch = True
    Params = ScibTaskParams
    default_suite = "scib_metrics_default"
    shares_neighbors = True  # run() accepts the embedding's NeighborGraph (one kNN search per embedding)

    def run(self, data, embedding, *, params, seed, suite, neighbors=None):
        n_batches = len(np.unique(data.batch))
        if n_batches < 2:
            raise CellSkipped(f"batch integration needs at least 2 batches; the dataset has {n_batches}.")
        inputs = MetricInputs(X=embedding, labels=data.labels, batch=data.batch,
                              X_pre=np.asarray(data.adata.obsm["X_pca"]), knn_method=params.knn_method,
                              ontology_ids=data.ontology_ids, expression=data.adata.X, continuous=data.continuous,
                              neighbors=neighbors, seed=seed, exact_quadratic=params.exact_quadratic)
        return self.score(suite, inputs)
