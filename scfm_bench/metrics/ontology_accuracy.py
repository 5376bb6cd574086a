"""Ontology-tolerant accuracy: a prediction counts as correct at the true Cell Ontology term
(``exact``) or, separately, when it is the true term or one of its direct parents or children
(``within1``: "T cell" for a "CD4-positive, alpha-beta T cell", or the reverse). This is how a
reference labelled at another granularity is scored on a query. Averaged over folds; cells whose
truth or prediction is not in the ontology are dropped and counted."""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, Scored, metric
from scfm_bench.metrics._ontology import CL_CITATION, check_ontology_option, mapped_ids, per_fold


@metric(MetricSpec("ontology_accuracy", "Ontology-tolerant accuracy", "ontology", True, (0.0, 1.0),
                   ("ontology_ids", "predictions", "folds"), CL_CITATION, outputs=("exact", "within1"),
                   optional=("folds",), check_options=check_ontology_option))
def ontology_accuracy(ontology_ids, predictions, folds, *, ontology=None, max_unmapped: float = 0.5) -> Scored:
    onto, truth, info = mapped_ids(ontology_ids, ontology, max_unmapped=max_unmapped)
    pred = mapped_ids(predictions, onto, max_unmapped=1.0)[1]
    ok = truth.mask & pred.mask
    near: dict[tuple[str, str], bool] = {}
    exact, within1 = [], []
    for idx in per_fold(folds, len(ok)):
        t_ids, p_ids = truth.ids[idx][ok[idx]], pred.ids[idx][ok[idx]]
        if len(t_ids) == 0:
            continue
        hits = []
        for t, p in zip(t_ids, p_ids):
            if (t, p) not in near:
                near[t, p] = t == p or p in onto.parents.get(t, ()) or t in onto.parents.get(p, ())
            hits.append(near[t, p])
        exact.append(float(np.mean(t_ids == p_ids)))
        within1.append(float(np.mean(hits)))
    info.update(n_cells_dropped=int((~ok).sum()))
    return Scored({"exact": float(np.mean(exact)) if exact else 0.0,
                   "within1": float(np.mean(within1)) if within1 else 0.0}, info)
