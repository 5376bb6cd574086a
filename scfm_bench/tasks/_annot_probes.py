"""Annotation probes on frozen embeddings, tuned the same way for every model.

kNN (k) and logistic regression (C) pick their hyper-parameter on stratified inner folds of the
training cells (macro-F1), from grids that are task parameters and hence identical for every model;
the random forest has fixed settings. When a training set is too small for inner folds (fewer than
2 cells in some class, e.g. 1-shot), nothing is tuned: k = min(default k, smallest class) and
C = 1; the record says so. Every probe exposes ``predict_proba`` (the unknown score of the novel
cell-type protocol uses it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.metrics import MetricInputs, Outcome

Probe = Literal["knn", "logreg", "rf"]


class ProbeGrid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    knn_k: list[int] = Field([5, 15, 30], min_length=1, description="kNN: neighbours tried on the inner folds.")
    logreg_c: list[float] = Field([0.01, 0.1, 1.0, 10.0], min_length=1,
                                  description="Logistic regression: inverse regularisation strengths tried on the inner folds.")
    inner_folds: int = Field(3, ge=2, description="Stratified inner folds used to choose k and C (fewer when a class is smaller).")
    rf_trees: int = Field(100, ge=1, description="Random forest: trees (fixed, not tuned).")
    default_k: int = Field(15, ge=1, description="kNN k when the training set is too small to tune.")


def fit_probe(name: Probe, X: np.ndarray, y: np.ndarray, *, seed: int, grid: ProbeGrid) -> tuple[Any, dict[str, Any]]:
    """A fitted classifier and the hyper-parameters it used (``tuned``: chosen on inner folds or not)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "rf":
        est = RandomForestClassifier(n_estimators=grid.rf_trees, random_state=seed, n_jobs=1).fit(X, y)
        return est, {"n_estimators": grid.rf_trees, "tuned": False}
    smallest = int(np.unique(y, return_counts=True)[1].min())
    n_inner = min(grid.inner_folds, smallest)
    cv = StratifiedKFold(n_inner, shuffle=True, random_state=seed) if n_inner >= 2 else None
    if name == "knn":
        # an inner training set holds about (n_inner - 1) / n_inner of the cells: larger k cannot be fitted there
        values = sorted({k for k in grid.knn_k if k <= len(y) * (n_inner - 1) // max(n_inner, 1)})
        if cv is None or not values:
            k, tuned = min(grid.default_k, smallest), False
        else:
            k, tuned = (_choose_k(X, y, values, cv) if len(values) > 1 else values[0]), len(values) > 1
        info = {"n_neighbors": k, "tuned": tuned}
        return KNeighborsClassifier(n_neighbors=k).fit(X, y), {**info, "inner_folds": n_inner} if tuned else info
    values = sorted(set(grid.logreg_c))
    if cv is None or len(values) == 1:
        c = values[0] if cv is not None else 1.0
        est = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000, random_state=seed)).fit(X, y)
        return est, {"C": c, "tuned": False}
    # the regularisation path over C, warm-started along the grid (faster than one fit per C)
    est = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=values, cv=cv, scoring="f1_macro", max_iter=1000, random_state=seed, l1_ratios=(0.0,),  # plain L2
        use_legacy_attributes=False)).fit(X, y)
    return est, {"C": float(est[-1].C_), "tuned": True, "inner_folds": n_inner}


def _choose_k(X: np.ndarray, y: np.ndarray, values: list[int], cv) -> int:
    """The k with the best mean inner-fold macro-F1 (first on ties), as scikit-learn's GridSearchCV over
    KNeighborsClassifier chooses it, from one neighbour search per fold instead of one per k."""
    from sklearn.metrics import f1_score
    from sklearn.neighbors import NearestNeighbors

    classes, codes = np.unique(y, return_inverse=True)
    scores = np.zeros(len(values))
    for tr, te in cv.split(X, y):
        idx = NearestNeighbors(n_neighbors=max(values)).fit(X[tr]).kneighbors(X[te], return_distance=False)
        votes = np.cumsum(np.eye(len(classes))[codes[tr][idx]], axis=1)  # (test cells, k, classes): votes of the first k
        for i, k in enumerate(values):
            # argmax takes the first of tied classes, as KNeighborsClassifier's uniform vote does
            scores[i] += f1_score(codes[te], votes[:, k - 1].argmax(axis=1), average="macro")
    return values[int(np.argmax(scores))]


def chosen_summary(chosen: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fit hyper-parameters as lists (one entry per outer fit), for the record."""
    return {k: [c.get(k) for c in chosen] for k in dict.fromkeys(k for c in chosen for k in c)}


def probe_outcomes(score, suite, *, X, y, pred, folds, has_ontology: bool, knn_method: str, prefix: str,
                   extra: dict) -> list[Outcome]:
    """Score predictions with the suite; ids become ``<prefix>_<id>`` (kept as they are without a prefix) and
    ``extra`` joins each record's params."""
    inputs = MetricInputs(X=X, labels=y, predictions=np.asarray(pred).astype(str), folds=folds,
                          ontology_ids=y if has_ontology else None, knn_method=knn_method)
    return [dataclasses.replace(o, id=f"{prefix}_{o.id}" if prefix else o.id, params={**o.params, **extra})
            for o in score(suite, inputs)]


def skipped(ids: list[str], reason: str) -> list[Outcome]:
    return [Outcome(i, "", True, status="skipped", reason=reason) for i in ids]


def suite_ids(suite) -> list[str]:
    return [m.id for m in suite.metrics] + [a.id for a in suite.aggregates]


def target_name(data) -> str:
    return "ontology_id" if data.ontology_ids is not None else "label"
