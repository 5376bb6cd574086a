"""Few-shot learning curves: points pooled from the records' per-draw values, written by report --figures."""

from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.leaderboard.learning_curve import curve_points, write_learning_curves
from scfm_bench.records import MetricResult


def _rec(model, shots, draws, seed=0, metric=None):
    return MetricResult(run_id="r", task="annotation_fewshot", dataset="d", model=model, seed=seed,
                        metric=metric or f"knn_fewshot{shots}_macro_f1", value=float(np.mean(draws)),
                        params={"protocol": "fewshot", "probe": "knn", "shots": shots,
                                "per_draw": {"macro_f1": draws, "balanced_accuracy": draws}})


def test_curve_points_pool_draws_and_seeds(tmp_path):
    recs = [_rec("pca", 5, [0.5, 0.6]), _rec("pca", 5, [0.7, 0.8], seed=1), _rec("pca", 1, [0.2, 0.4]),
            _rec("random", 1, [0.1, 0.1]), _rec("pca", 5, [0.0, 0.0], metric="knn_fewshot5_balanced_accuracy")]
    pts = curve_points(recs)[("annotation_fewshot", "d", "knn")]
    assert [p[0] for p in pts["pca"]] == [1, 5]
    s, mean, low, high = pts["pca"][1]
    assert mean == pytest.approx(0.65) and (low, high) == pytest.approx(tuple(np.percentile([0.5, 0.6, 0.7, 0.8], [2.5, 97.5])))
    files = write_learning_curves(recs, tmp_path)
    assert sorted(f.name for f in files) == ["learning_curve_annotation_fewshot__d__knn.png", "learning_curve_annotation_fewshot__d__knn.svg"]
    assert files[0].read_bytes()[:4] == b"\x89PNG"
    assert write_learning_curves([_rec("pca", 1, [0.2])][:0], tmp_path / "none") == []
