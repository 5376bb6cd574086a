"""Fmax, the protein-centric maximum F-measure of CAFA, applied to genes (gene_function task).

For a threshold τ, gene g's predicted terms are P_g(τ) = {t : s_gt ≥ τ} and its true terms T_g:
precision pr(τ) averages |P_g ∩ T_g| / |P_g| over the m(τ) genes with at least one prediction,
recall rc(τ) averages |P_g ∩ T_g| / |T_g| over all n genes annotated with at least one term of the
aspect, and Fmax = max_τ 2·pr·rc / (pr + rc) over τ = 0.01, 0.02, …, 1.00 (Radivojac et al. 2013;
Jiang et al. 2016). Predictions are not propagated up the graph here: the terms are a pruned subset.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, metric


@metric(MetricSpec(key="fmax", label="Fmax (CAFA protein-centric)", family="probe", higher_is_better=True, range=(0.0, 1.0),
                   inputs=("go_labels", "go_scores"),
                   citation="Radivojac et al. 2013, Nat Methods 10:221-227 (CAFA1); Jiang et al. 2016, Genome Biol 17:184 (CAFA2)"))
def fmax(labels: np.ndarray, scores: np.ndarray, *, steps: int = 100) -> float:
    """max over τ ∈ {1/steps, …, 1} of the harmonic mean of gene-averaged precision and recall."""
    labels = labels.astype(bool)
    annotated = labels.any(1)
    if not annotated.any():
        raise ValueError("fmax needs at least one gene annotated with a term")
    truth, scores = labels[annotated], scores[annotated]
    n_true = truth.sum(1)
    best = 0.0
    for tau in np.arange(1, steps + 1) / steps:
        pred = scores >= tau - 1e-12  # the grid is decimal; keep 0.3 >= 0.3 true despite float error
        n_pred = pred.sum(1)
        if not n_pred.any():
            break  # higher thresholds predict nothing either
        tp = (pred & truth).sum(1)
        pr = float((tp[n_pred > 0] / n_pred[n_pred > 0]).mean())
        rc = float((tp / n_true).mean())
        if pr + rc > 0:
            best = max(best, 2 * pr * rc / (pr + rc))
    return best
