"""Cell-type annotation with probes on frozen embeddings: kNN and logistic regression.

Protocols: ``cv`` (stratified k-fold, out-of-fold predictions) and ``cross_batch`` (each batch in
turn is the query, the other batches the reference; skipped without >= 2 batches). The target is
the Cell Ontology id when the dataset declares one (so errors can be placed in the ontology: LCAD,
hierarchical F1), else the label. Classes with too few cells for a protocol (fewer than ``n_folds``
in the dataset for cv, fewer than ``min_train_cells`` in a reference) are left out of training and
of that evaluation, and the counts are recorded. Metric-suite ids are reported per probe and
protocol as ``<probe>_<protocol>_<id>``; the suite's primary is read for the first probe and protocol.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from pydantic import Field

from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics import MetricInputs, Outcome
from scfm_bench.registry import TASKS
from scfm_bench.tasks._base import EmbeddingTaskParams, Task


class AnnotationParams(EmbeddingTaskParams):
    probes: list[Literal["knn", "logreg"]] = Field(["knn", "logreg"], min_length=1, description="Probes to train.")
    protocols: list[Literal["cv", "cross_batch"]] = Field(["cv", "cross_batch"], min_length=1,
                                                         description="cv: stratified k-fold; cross_batch: leave one batch out.")
    n_folds: int = Field(5, ge=2, description="Folds of the stratified cross-validation.")
    k: int = Field(15, ge=1, description="Neighbours of the kNN probe.")
    min_train_cells: int = Field(5, ge=1, description="cross_batch: a class needs this many reference cells to be trained.")


def _probe(name: str, seed: int, k: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "knn":
        return KNeighborsClassifier(n_neighbors=k)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def _splits(protocol: str, y: np.ndarray, batch, params: AnnotationParams, seed: int):
    """(train, test) index pairs, plus what was excluded; raises CellSkipped when the protocol cannot run."""
    if protocol == "cv":
        from sklearn.model_selection import StratifiedKFold

        values, counts = np.unique(y, return_counts=True)
        small = {str(v): int(c) for v, c in zip(values, counts) if c < params.n_folds}
        keep = np.flatnonzero(~np.isin(y, list(small)))
        if len(np.unique(y[keep])) < 2:
            raise CellSkipped(f"cv needs 2 classes with >= {params.n_folds} cells.")
        skf = StratifiedKFold(params.n_folds, shuffle=True, random_state=seed)
        return [(keep[tr], keep[te]) for tr, te in skf.split(keep, y[keep])], small
    if batch is None or len(np.unique(batch)) < 2:
        raise CellSkipped("cross_batch needs a batch key with at least 2 batches.")
    out, small = [], {}
    for b in np.unique(batch):
        train, test = np.flatnonzero(batch != b), np.flatnonzero(batch == b)
        values, counts = np.unique(y[train], return_counts=True)
        trained = values[counts >= params.min_train_cells]
        for v, c in zip(values, counts):
            if c < params.min_train_cells:
                small[f"{b}:{v}"] = int(c)
        out.append((train[np.isin(y[train], trained)], test[np.isin(y[test], trained)]))
    return out, small


@TASKS.register("annotation")
class Annotation(Task):
    key = "annotation"
    description = "Annotate cell types with kNN / logistic-regression probes (CV and cross-batch); LCAD, hierarchical F1."
    Params = AnnotationParams
    needs_label = True
    default_suite = "annotation"

    @staticmethod
    def primary_id(suite, params) -> str | None:
        return f"{params.probes[0]}_{params.protocols[0]}_{suite.primary}" if suite.primary else None

    def run(self, data, embedding, *, params, seed, suite):
        y = data.ontology_ids if data.ontology_ids is not None else data.labels
        y = np.asarray(y).astype(str)
        ids = [m.id for m in suite.metrics] + [a.id for a in suite.aggregates]
        outcomes: list[Outcome] = []
        for protocol in params.protocols:
            try:
                splits, small = _splits(protocol, y, data.batch, params, seed)
            except CellSkipped as exc:
                outcomes += [Outcome(f"{p}_{protocol}_{i}", "", True, status="skipped", reason=str(exc))
                             for p in params.probes for i in ids]
                continue
            test = np.concatenate([te for _, te in splits])
            folds = np.concatenate([np.full(len(te), f) for f, (_, te) in enumerate(splits)])
            for probe in params.probes:
                pred = np.concatenate([
                    _probe(probe, seed, min(params.k, len(tr))).fit(embedding[tr], y[tr]).predict(embedding[te])
                    for tr, te in splits])
                inputs = MetricInputs(X=embedding[test], labels=y[test], predictions=pred.astype(str), folds=folds,
                                      ontology_ids=y[test] if data.ontology_ids is not None else None,
                                      knn_method=params.knn_method)
                extra = {"probe": probe, "protocol": protocol, "n_test_cells": int(len(test)),
                         "classes_excluded_from_training": small, "target": "ontology_id"
                         if data.ontology_ids is not None else "label"}
                outcomes += [dataclasses.replace(o, id=f"{probe}_{protocol}_{o.id}", params={**o.params, **extra})
                             for o in self.score(suite, inputs)]
        return outcomes
