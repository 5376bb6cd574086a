"""Accuracy, balanced accuracy and macro-F1 of predicted labels (scikit-learn), averaged over folds."""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, Scored, Units, metric
from scfm_bench.metrics._ontology import per_fold


@metric(MetricSpec("classification", "Accuracy / balanced accuracy / macro-F1", "annotation", True, (0.0, 1.0),
                   ("labels", "predictions", "folds"), "scikit-learn (Pedregosa et al. 2011)",
                   outputs=("accuracy", "balanced_accuracy", "macro_f1"), optional=("folds",)))
def classification(labels, predictions, folds) -> Scored:
    import warnings

    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    y, p = np.asarray(labels).astype(str), np.asarray(predictions).astype(str)
    out = {"accuracy": [], "balanced_accuracy": [], "macro_f1": []}
    folds_idx = list(per_fold(folds, len(y)))
    # per-cell accuracy units: correct / (n_folds * fold size) * n, whose mean is the mean of the fold accuracies
    weight = np.zeros(len(y))
    for idx in folds_idx:
        weight[idx] = len(y) / (len(folds_idx) * len(idx))
    for idx in folds_idx:
        with warnings.catch_warnings():  # predicted classes absent from a fold's truth are expected
            warnings.simplefilter("ignore")
            out["accuracy"].append(accuracy_score(y[idx], p[idx]))
            out["balanced_accuracy"].append(balanced_accuracy_score(y[idx], p[idx]))
            out["macro_f1"].append(f1_score(y[idx], p[idx], average="macro", labels=np.unique(y[idx])))
    units = {"accuracy": Units("cell", np.arange(len(y)), (y == p) * weight)}
    return Scored({k: float(np.mean(v)) for k, v in out.items()}, units=units)
