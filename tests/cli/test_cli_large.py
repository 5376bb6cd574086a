"""`scfm-bench run` on a dataset above both large-n thresholds scores batch integration with no setting
changed: the approximate kNN above metrics/_neighbors.EXACT_MAX_CELLS, the declared subsample of the
quadratic metrics above metrics/_subsample.QUADRATIC_MAX_CELLS. The thresholds are lowered here so a
1,200-cell file crosses both (the 200k-cell measurement is in the README)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_run_above_the_large_n_thresholds_scores_batch_integration(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scfm_bench.cli import app
    from scfm_bench.data import BUILDERS
    from scfm_bench.metrics import _neighbors, _subsample
    from scfm_bench.records import read_records

    monkeypatch.setattr(_neighbors, "EXACT_MAX_CELLS", 1000)
    monkeypatch.setattr(_subsample, "QUADRATIC_MAX_CELLS", 600)
    n = 1200
    path = tmp_path / "big.h5ad"
    BUILDERS["synthetic"](n_cells=n, n_genes=300, n_batches=3, n_cell_types=4, seed=1).write_h5ad(path)
    r = CliRunner().invoke(app, ["run", "--dataset", str(path), "--task", "batch_integration", "--model", "pca",
                                 "--label-key", "cell_type", "--batch-key", "batch", "-o", str(tmp_path / "out"), "--quiet"])
    assert r.exit_code == 0, r.output
    recs = {x.metric: x for x in read_records(tmp_path / "out")}
    for m in ("isolated_labels", "kmeans_nmi", "silhouette_label", "clisi", "bras", "ilisi", "kbet", "graph_connectivity",
              "pcr_comparison", "bio_conservation", "batch_correction", "total"):
        assert recs[m].status == "ok" and np.isfinite(recs[m].value), (m, recs[m].reason)
    for m in ("isolated_labels", "silhouette_label", "bras", "kbet"):  # declared, never silent
        s = recs[m].params["sampling"]
        assert s["method"] == "stratified" and s["of"] == n and 600 - 12 <= s["n"] <= 600 and s["seed"] == 0
    for m in ("clisi", "ilisi", "graph_connectivity", "kmeans_nmi", "pcr_comparison"):
        assert "sampling" not in recs[m].params
    assert recs["clisi"].params["knn"]["method"] == _neighbors.APPROXIMATE  # every cell, approximate graph
