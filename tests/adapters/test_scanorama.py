"""Scanorama: an embedding that mixes the batches of a two-batch synthetic better than the PCA."""

from __future__ import annotations

import numpy as np

from scfm_bench.adapters.scanorama import Scanorama
from scfm_bench.metrics import MetricInputs
from scfm_bench.registry import METRICS


def test_scanorama_improves_ilisi_over_unintegrated_pca():
    from scfm_bench.data import BUILDERS, preprocess

    ad = preprocess(BUILDERS["synthetic"](n_cells=400, n_genes=300, n_batches=2, n_cell_types=4, batch_effect=1.0, seed=0),
                    n_top_genes=200, n_pcs=20)
    ad.uns["scfm_bench_fields"] = {"label": "cell_type", "batch": "batch"}
    batch = ad.obs["batch"].astype(str).to_numpy()
    X = Scanorama({"dimred": 20}, seed=0).embed_batch(ad)
    assert X.shape == (ad.n_obs, 20) and np.isfinite(X).all()
    ilisi = METRICS.get("ilisi")
    pca, integrated = ilisi(MetricInputs(X=ad.obsm["X_pca"], batch=batch)), ilisi(MetricInputs(X=X, batch=batch))
    assert integrated > pca + 0.1, (pca, integrated)
