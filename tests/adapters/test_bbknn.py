"""BBKNN: its graph is scored by the graph metrics only (embedding metrics not applicable, with the
reason), and those values equal scib-metrics called directly on BBKNN's own graph."""

from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.adapters.bbknn import BBKNN
from scfm_bench.metrics import NeighborGraph


@pytest.fixture(scope="module")
def two_batches():
    from scfm_bench.data import BUILDERS, preprocess

    ad = preprocess(BUILDERS["synthetic"](n_cells=400, n_genes=300, n_batches=2, n_cell_types=4, batch_effect=1.0, seed=0),
                    n_top_genes=200, n_pcs=20)
    ad.uns["scfm_bench_fields"] = {"label": "cell_type", "batch": "batch"}
    return ad


def _scib_form(distances):
    """BBKNN's sparse distances as scib-metrics' NeighborsResults, built here independently of
    pack_knn: per row the cell itself first (distance 0), then its stored neighbours by distance."""
    from scib_metrics.nearest_neighbors import NeighborsResults

    D = distances.toarray()
    D[D == 0] = np.inf
    np.fill_diagonal(D, 0)
    k = int((distances.getnnz(axis=1)).min()) + 1
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return NeighborsResults(indices=idx, distances=np.take_along_axis(D, idx, axis=1))


def test_graph_metrics_equal_scib_metrics_on_bbknns_graph_and_embedding_metrics_are_skipped(two_batches):
    import bbknn.matrix
    import scib_metrics

    from scfm_bench.config import load_suite
    from scfm_bench.registry import TASKS
    from scfm_bench.tasks import TaskData

    ad = two_batches
    labels, batch = ad.obs["cell_type"].astype(str).to_numpy(), ad.obs["batch"].astype(str).to_numpy()
    packed = BBKNN(seed=0).embed_batch(ad)
    assert packed.shape == (ad.n_obs, 2 * 6)  # 3 neighbours in each of 2 batches, the cell itself included
    graph = NeighborGraph.from_packed(packed.astype(np.float32))  # as the embedding cache stores it
    task = TASKS.get("batch_integration")
    suite = load_suite().metric_suite("scib_metrics_default")
    data = TaskData(adata=ad, labels=labels, batch=batch)
    out = {o.id: o for o in task().run(data, None, params=task.Params(), seed=0, suite=suite, neighbors=graph)}

    distances, _, _ = bbknn.matrix.bbknn(np.asarray(ad.obsm["X_pca"], dtype=np.float64), batch, computation="cKDTree")
    ref = _scib_form(distances)
    np.testing.assert_array_equal(graph.get(90).indices, ref.indices)
    assert out["graph_connectivity"].value == pytest.approx(float(scib_metrics.graph_connectivity(ref, labels)), abs=1e-6)
    assert out["ilisi"].value == pytest.approx(float(scib_metrics.ilisi_knn(ref, batch)), abs=1e-6)
    for graph_metric in ("clisi", "kbet"):
        assert out[graph_metric].status == "ok", out[graph_metric].reason
    for embedding_metric in ("silhouette_label", "bras", "isolated_labels", "pcr_comparison", "kmeans_nmi", "scgraph"):
        assert out[embedding_metric].status == "skipped"
        assert "not applicable: the model yields a kNN graph, not an embedding" in out[embedding_metric].reason


def test_runner_scores_the_graph_and_skips_embedding_tasks(two_batches, tmp_path):
    """Through the CLI: batch_integration reads BBKNN's graph; annotation (probes need an embedding) and
    `embed` refuse it with the reason."""
    import subprocess
    import sys

    from scfm_bench.records import read_records

    ad = two_batches.copy()
    ad.X = ad.layers["counts"]
    path = tmp_path / "two_batches.h5ad"
    ad.write_h5ad(path)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, cwd=tmp_path)

    r = cli("run", "--dataset", str(path), "--label-key", "cell_type", "--batch-key", "batch", "-t", "batch_integration",
            "-t", "annotation", "-m", "bbknn", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    recs = {(x.task, x.metric): x for x in read_records(tmp_path / "out")}
    assert recs[("batch_integration", "ilisi")].status == "ok" and recs[("batch_integration", "graph_connectivity")].status == "ok"
    assert "not applicable" in recs[("batch_integration", "silhouette_label")].reason
    assert recs[("annotation", "*")].status == "skipped" and "yields a kNN graph, not an embedding" in recs[("annotation", "*")].reason
    r = cli("embed", "--dataset", str(path), "--label-key", "cell_type", "--batch-key", "batch", "-m", "bbknn",
            "-o", str(tmp_path / "e.npy"))
    assert r.returncode == 2 and "yields a kNN graph" in r.stderr
