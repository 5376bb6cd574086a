"""Zero-shot clustering: how well the frozen embedding separates cell types without training.

Leiden with a resolution sweep keeping the best NMI (scIB convention) and KMeans with k = number of
labels; NMI, ARI, rescaled ASW_label and AvgBIO = mean(NMI, ARI, ASW_label) as in the zero-shot
scFM evaluations (Kedzierska et al. 2025). Which metrics run is the suite's (metrics/zero_shot.yaml).
"""

from __future__ import annotations

from scfm_bench.metrics import MetricInputs
from scfm_bench.registry import TASKS
from scfm_bench.tasks._base import EmbeddingTask, ScibTaskParams


@TASKS.register("zero_shot_clustering")
class ZeroShotClustering(EmbeddingTask):
    key = "zero_shot_clustering"
    description = "Cluster the frozen embedding (Leiden sweep, KMeans) and compare with cell-type labels."
    needs_label = True
    Params = ScibTaskParams
    default_suite = "zero_shot"
    shares_neighbors = True  # run() accepts the embedding's NeighborGraph (one kNN search per embedding)

    def run(self, data, embedding, *, params, seed, suite, neighbors=None):
        inputs = MetricInputs(X=embedding, labels=data.labels, batch=data.batch, knn_method=params.knn_method,
                              ontology_ids=data.ontology_ids, expression=data.adata.X, continuous=data.continuous,
                              neighbors=neighbors, seed=seed, exact_quadratic=params.exact_quadratic)
        return self.score(suite, inputs)
