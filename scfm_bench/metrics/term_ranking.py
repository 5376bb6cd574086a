"""Macro AUPRC and AUROC over GO terms (gene_function task): each term's out-of-fold probe scores
rank all genes in scope, and the per-term areas are averaged with equal weight per term.

AUPRC is average precision, AP = Σₙ (Rₙ − Rₙ₋₁) Pₙ over the distinct score thresholds (tied scores
form one step, as in scikit-learn's ``average_precision_score``); its chance level is the term's
prevalence, returned beside it. AUROC is the Mann–Whitney U statistic with tied scores counted half.
Written vectorised here (all terms at once) and checked against scikit-learn in the tests.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, metric

_CITATION = "Davis & Goadrich 2006, ICML (PR vs ROC); Zhou et al. 2019, Genome Biol 20:244 (CAFA3 term-centric AUC)"


def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of each column (terms) of ``scores`` against the bool ``labels``."""
    out = np.empty(labels.shape[1])
    for j in range(labels.shape[1]):
        order = np.argsort(-scores[:, j], kind="mergesort")
        y, s = labels[order, j], scores[order, j]
        last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last row of each group of tied scores
        tp = np.cumsum(y)[last]
        precision, recall = tp / (last + 1), tp / tp[-1]
        out[j] = np.sum(np.diff(np.r_[0.0, recall]) * precision)
    return out


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each column from average ranks (ties count one half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    n_pos = labels.sum(0)
    n_neg = len(labels) - n_pos
    return ((ranks * labels).sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _check(labels: np.ndarray) -> None:
    n_pos = labels.sum(0)
    if np.any(n_pos == 0) or np.any(n_pos == len(labels)):
        raise ValueError("every GO term needs at least one member and one non-member gene among the genes scored")


_SPEC = dict(family="probe", higher_is_better=True, range=(0.0, 1.0), inputs=("go_labels", "go_scores"), citation=_CITATION)


@metric(MetricSpec(key="term_auprc", label="Macro AUPRC over GO terms", outputs=("auprc", "prevalence"), **_SPEC))
def term_auprc(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``auprc``: mean over terms of average precision; ``prevalence``: mean term prevalence (its chance level)."""
    labels = labels.astype(bool)
    _check(labels)
    return {"auprc": float(average_precision(labels, scores).mean()), "prevalence": float(labels.mean(0).mean())}


@metric(MetricSpec(key="term_auroc", label="Macro AUROC over GO terms", **_SPEC))
def term_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean over terms of AUROC (0.5 = chance)."""
    labels = labels.astype(bool)
    _check(labels)
    return float(roc_auc(labels, scores).mean())
