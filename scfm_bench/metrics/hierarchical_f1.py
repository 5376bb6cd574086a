"""Ontology-hierarchical precision, recall and F1 (Kiritchenko et al. 2005): a prediction earns
credit for every Cell Ontology ancestor it shares with the truth. Per cell, A(x) = x and its
ancestors, without the ontology's root(s); hP = Σ|A(p) ∩ A(t)| / Σ|A(p)|, hR = Σ|A(p) ∩ A(t)| / Σ|A(t)|
(micro-averaged over the cells of a fold), hF = harmonic mean; each averaged over folds. Cells whose
truth or prediction is not in the ontology are dropped and counted."""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, Scored, metric
from scfm_bench.metrics._ontology import CL_CITATION, check_ontology_option, mapped_ids, per_fold


@metric(MetricSpec("hierarchical_f1", "Hierarchical precision/recall/F1", "ontology", True, (0.0, 1.0),
                   ("ontology_ids", "predictions", "folds"), f"Kiritchenko et al. 2005; {CL_CITATION}",
                   outputs=("precision", "recall", "f1"), optional=("folds",),
                   check_options=check_ontology_option))
def hierarchical_f1(ontology_ids, predictions, folds, *, ontology=None, max_unmapped: float = 0.5) -> Scored:
    onto, truth, info = mapped_ids(ontology_ids, ontology, max_unmapped=max_unmapped)
    pred = mapped_ids(predictions, onto, max_unmapped=1.0)[1]
    ok = truth.mask & pred.mask
    sets: dict[str, set[str]] = {}

    def anc(t: str) -> set[str]:
        if t not in sets:
            sets[t] = onto.ancestors(t, include_self=True) - onto.roots
        return sets[t]

    scores = {"precision": [], "recall": [], "f1": []}
    for idx in per_fold(folds, len(ok)):
        inter = n_pred = n_true = 0
        for t, p in zip(truth.ids[idx][ok[idx]], pred.ids[idx][ok[idx]]):
            a_t, a_p = anc(t), anc(p)
            inter += len(a_t & a_p)
            n_pred += len(a_p)
            n_true += len(a_t)
        hp = inter / n_pred if n_pred else 0.0
        hr = inter / n_true if n_true else 0.0
        scores["precision"].append(hp)
        scores["recall"].append(hr)
        scores["f1"].append(2 * hp * hr / (hp + hr) if hp + hr else 0.0)
    info["n_cells_dropped"] = int((~ok).sum())
    return Scored({k: float(np.mean(v)) for k, v in scores.items()}, info)
