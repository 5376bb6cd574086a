"""LCAD, lowest-common-ancestor distance (Wu et al. 2025, scFM-Bench; from OnClass): how severe
annotation errors are. For a misclassified cell, the directed distance in the Cell Ontology from the
lowest common ancestor of the true and predicted type down to the true type; averaged over the
misclassified cells of each fold, then over folds. Lower is better.

Deviations from the reference, on purpose: where several lowest common ancestors exist (CL is a
DAG), networkx picks one depending on PYTHONHASHSEED; here LCAD is the minimum over all minimal
common ancestors (deterministic). Cells whose truth or prediction is not in the ontology, or whose
pair has no common ancestor, are dropped and counted instead of crashing. A fold without errors
counts as 0, and with no error at all LCAD = 0 with ``n_errors`` = 0 (the reference gives NaN).
Also reported: the number of errors and the fractions of errors predicting an ancestor (too coarse)
or a descendant (too fine) of the truth.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, Scored, metric
from scfm_bench.metrics._ontology import CL_CITATION, check_ontology_option, mapped_ids, per_fold


@metric(MetricSpec("lcad", "LCAD", "ontology", False, (0.0, float("inf")), ("ontology_ids", "predictions", "folds"),
                   f"Wu et al. 2025, Genome Biol 26:334 (scFM-Bench); {CL_CITATION}",
                   outputs=("lcad", "n_errors", "frac_pred_ancestor", "frac_pred_descendant"), counts=("n_errors",),
                   optional=("folds",),
                   check_options=check_ontology_option))
def lcad(ontology_ids, predictions, folds, *, ontology=None, max_unmapped: float = 0.5) -> Scored:
    onto, truth, info = mapped_ids(ontology_ids, ontology, max_unmapped=max_unmapped)
    pred = mapped_ids(predictions, onto, max_unmapped=1.0)[1]
    ok = truth.mask & pred.mask
    fold_means, n_err, n_anc, n_desc, no_common = [], 0, 0, 0, 0
    for idx in per_fold(folds, len(ok)):
        dists = []
        for t, p in zip(truth.ids[idx][ok[idx]], pred.ids[idx][ok[idx]]):
            if t == p:
                continue
            d = onto.lcad(t, p)
            if d is None:
                no_common += 1
                continue
            dists.append(d)
            n_anc += onto.distance(t, p) is not None
            n_desc += onto.distance(p, t) is not None
        n_err += len(dists)
        fold_means.append(float(np.mean(dists)) if dists else 0.0)
    info.update(n_cells_dropped=int((~ok).sum()), n_pairs_without_common_ancestor=no_common, n_folds=len(fold_means))
    return Scored({"lcad": float(np.mean(fold_means)), "n_errors": float(n_err),
                   "frac_pred_ancestor": n_anc / n_err if n_err else 0.0,
                   "frac_pred_descendant": n_desc / n_err if n_err else 0.0}, info)
