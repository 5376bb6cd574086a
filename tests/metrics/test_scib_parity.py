"""Each scIB value equals what scib-metrics' Benchmarker gives for the same embedding, labels and batches.

kBET is the exception in the first test: the Benchmarker's kBET has hidden random state (see
metrics/_kbet.py and tests/metrics/test_kbet.py); on small data its value still equals ours.
"""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from scfm_bench.config import load_suite, packaged_suite_dir
from scfm_bench.metrics import MetricInputs, evaluate_suite
from scfm_bench.metrics._neighbors import knn
from scfm_bench.registry import METRICS

COLUMN = {  # our suite ids -> Benchmarker column names
    "isolated_labels": "Isolated labels", "kmeans_nmi": "KMeans NMI", "kmeans_ari": "KMeans ARI",
    "silhouette_label": "Silhouette label", "clisi": "cLISI", "bras": "BRAS", "silhouette_batch": "Silhouette batch",
    "ilisi": "iLISI", "graph_connectivity": "Graph connectivity", "pcr_comparison": "PCR comparison",
}


@pytest.mark.slow
def test_parity_with_benchmarker(make_blobs):
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    X, labels, batch = make_blobs(n_per=60, n_labels=4, n_batches=3, dim=12, batch_shift=2.0)
    X_pre = X + np.random.default_rng(1).normal(scale=0.5, size=X.shape).astype(np.float32)
    ad = AnnData(np.zeros((len(labels), 1), dtype=np.float32), obs=pd.DataFrame({"cell_type": labels, "batch": batch}))
    ad.obs_names = [f"c{i}" for i in range(ad.n_obs)]
    ad.obsm["X_emb"], ad.obsm["X_pre"] = X, X_pre
    bm = Benchmarker(ad, batch_key="batch", label_key="cell_type", embedding_obsm_keys=["X_emb"],
                     pre_integrated_embedding_obsm_key="X_pre", progress_bar=False,
                     bio_conservation_metrics=BioConservation(),
                     batch_correction_metrics=BatchCorrection(bras=True))
    bm.prepare(neighbor_computer=lambda data, k: knn(data, k, method="exact"))
    bm.benchmark()
    ref = bm.get_results(min_max_scale=False).loc["X_emb"]

    suites = load_suite(packaged_suite_dir()).metric_suites
    inputs = MetricInputs(X=X, labels=labels, batch=batch, X_pre=X_pre, knn_method="exact")
    ours = {o.id: o for s in ("scib_metrics_default", "scib_classic") for o in evaluate_suite(suites[s], inputs)}
    for our_id, col in COLUMN.items():
        if col == "Silhouette batch":
            import scib_metrics

            expected = scib_metrics.silhouette_batch(X, labels, batch)
        else:
            expected = float(ref[col])
        assert ours[our_id].status == "ok", ours[our_id].reason
        assert ours[our_id].value == pytest.approx(expected, abs=1e-6), our_id
    # the aggregates follow the Benchmarker's 0.6/0.4 weighting of family means
    from scfm_bench.metrics import compute_aggregates

    agg = {o.id: o.value for o in compute_aggregates(suites["scib_metrics_default"], list(ours.values()))}
    assert agg["bio_conservation"] == pytest.approx(float(ref["Bio conservation"]), abs=1e-6)
    batch_cols = ["BRAS", "iLISI", "KBET", "Graph connectivity", "PCR comparison"]
    expected_batch = (float(ref[batch_cols].sum()) - float(ref["KBET"]) + ours["kbet"].value) / len(batch_cols)
    assert agg["batch_correction"] == pytest.approx(expected_batch, abs=1e-6)
    assert agg["total"] == pytest.approx(0.6 * agg["bio_conservation"] + 0.4 * expected_batch, abs=1e-6)


@pytest.mark.slow
def test_leiden_and_kbet_equal_benchmarker_with_its_own_neighbours(make_blobs):
    """On <= 4,096 cells the Benchmarker's pynndescent search and ours find the same neighbours, so with
    self at distance 0 our Leiden NMI/ARI and kBET equal what it computes entirely by itself."""
    from scib_metrics.benchmark import BatchCorrection, Benchmarker, BioConservation

    X, labels, batch = make_blobs(n_per=500, n_labels=4, n_batches=3, dim=12, batch_shift=0.3, seed=3)
    ad = AnnData(np.zeros((len(labels), 1), dtype=np.float32), obs=pd.DataFrame({"cell_type": labels, "batch": batch}))
    ad.obs_names = [f"c{i}" for i in range(ad.n_obs)]
    ad.obsm["X_emb"] = ad.obsm["X_pre"] = X
    off = {k: False for k in ("isolated_labels", "nmi_ari_cluster_labels_kmeans", "silhouette_label", "clisi_knn")}
    bm = Benchmarker(ad, batch_key="batch", label_key="cell_type", embedding_obsm_keys=["X_emb"],
                     pre_integrated_embedding_obsm_key="X_pre", progress_bar=False,
                     bio_conservation_metrics=BioConservation(nmi_ari_cluster_labels_leiden=True, **off),
                     batch_correction_metrics=BatchCorrection(bras=False, ilisi_knn=False, graph_connectivity=False,
                                                              pcr_comparison=False))
    bm.benchmark()  # prepare() with its own pynndescent neighbour computer
    ref = bm.get_results(min_max_scale=False).loc["X_emb"]
    inputs = MetricInputs(X=X, labels=labels, batch=batch)
    leiden = METRICS.get("nmi_ari_leiden")(inputs)
    assert leiden["nmi"] == pytest.approx(float(ref["Leiden NMI"]), abs=1e-6)
    assert leiden["ari"] == pytest.approx(float(ref["Leiden ARI"]), abs=1e-6)
    assert METRICS.get("kbet")(inputs) == pytest.approx(float(ref["KBET"]), abs=1e-6)


def test_single_batch_skips_batch_metrics(make_blobs):
    X, labels, _ = make_blobs(n_per=20, n_labels=3)
    suite = load_suite(packaged_suite_dir()).metric_suites["scib_metrics_default"]
    out = {o.id: o for o in evaluate_suite(suite, MetricInputs(X=X, labels=labels, batch=np.array(["b"] * len(labels)),
                                                                 X_pre=X, knn_method="exact"))}
    assert out["bras"].status == "skipped" and "at least 2 batches" in out["bras"].reason
    assert out["silhouette_label"].status == "ok"


def test_tiny_label_is_reported(make_blobs):
    X, labels, batch = make_blobs(n_per=20, n_labels=3)
    labels = labels.astype(object)
    labels[0] = "lonely"
    suite = load_suite(packaged_suite_dir()).metric_suites["zero_shot"]
    out = {o.id: o for o in evaluate_suite(suite, MetricInputs(X=X, labels=labels, knn_method="exact"))}
    assert out["asw_label"].status == "skipped" and "'lonely' (1)" in out["asw_label"].reason
