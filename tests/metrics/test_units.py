"""Per-unit values: their mean is the metric value (so a bootstrap over them is a bootstrap of that
metric), they reach the outcomes, and the runner's writer stores them beside the records."""

import numpy as np
import pytest

from scfm_bench.config import load_suite, packaged_suite_dir
from scfm_bench.metrics import MetricInputs, evaluate_suite
from scfm_bench.records import RunWriter, read_units
from scfm_bench.registry import METRICS


def test_silhouette_label_units_are_scib_metrics_per_cell_silhouettes(make_blobs):
    import scib_metrics

    X, labels, _ = make_blobs(n_per=30, n_labels=3, dim=8)
    out = METRICS.get("silhouette_label")(MetricInputs(X=X, labels=labels))
    u = out.units[""]
    assert u.kind == "cell" and len(u.values) == len(labels)
    # the value is scib-metrics' own, and the per-cell values are its silhouette_samples, rescaled
    assert out.values == pytest.approx(float(scib_metrics.silhouette_label(X, labels)), abs=1e-6)
    assert u.values == pytest.approx((np.asarray(scib_metrics.utils.silhouette_samples(X, labels)) + 1) / 2, abs=1e-6)
    assert u.values.mean() == pytest.approx(out.values, abs=1e-12)


def test_accuracy_units_average_to_the_fold_averaged_accuracy():
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 50)
    pred = np.where(rng.random(50) < 0.7, y, "a")
    folds = np.r_[np.zeros(10, int), np.ones(40, int)]  # unequal folds: a plain per-cell mean would differ
    out = METRICS.get("classification")(MetricInputs(X=np.empty((50, 0)), labels=y, predictions=pred, folds=folds))
    expected = np.mean([accuracy_score(y[folds == f], pred[folds == f]) for f in (0, 1)])
    assert out.values["accuracy"] == pytest.approx(expected)
    assert out.units["accuracy"].values.mean() == pytest.approx(expected, abs=1e-12)
    assert (y == pred).mean() != pytest.approx(expected)


def test_units_reach_outcomes_and_round_trip_beside_the_records(make_blobs, tmp_path):
    X, labels, _ = make_blobs(n_per=20, n_labels=3, dim=6)
    suite = load_suite(packaged_suite_dir()).metric_suites["zero_shot"]
    outcomes = {o.id: o for o in evaluate_suite(suite, MetricInputs(X=X, labels=labels, knn_method="exact"))}
    assert outcomes["asw_label"].units is not None and outcomes["nmi_leiden"].units is None
    w = RunWriter(tmp_path, "r1")
    path = w.write_units("zero_shot_clustering", "pbmc", "pca", 0, list(outcomes.values()))
    assert path == tmp_path / "runs" / "r1" / "units" / "zero_shot_clustering__pbmc__pca__seed0.csv.gz"
    w.write("job", [])  # a records file beside it: read_units finds units through the records files
    u = read_units(tmp_path)
    assert set(u["metric"]) == {"asw_label"} and set(u["run_id"]) == {"r1"} and len(u) == len(labels)
    assert u["value"].mean() == pytest.approx(outcomes["asw_label"].value, abs=1e-9)
    assert list(u["id"][:3]) == ["0", "1", "2"]
    assert w.write_units("t", "d", "m", 0, [outcomes["nmi_leiden"]]) is None  # nothing to store: no file
