"""Cell-type annotation with probes on frozen embeddings: kNN, logistic regression, random forest.

Protocols (one file each beside this one, ``_annot_*.py``):

* ``cv``: stratified k-fold, out-of-fold predictions; ``cross_batch``: each batch in turn is the
  query, the other batches the reference (skipped without >= 2 batches).
* ``fewshot``: ``shots`` labelled cells per class, several seeded stratified draws, test on the rest.
* ``novel``: hold out one cell type at a time, flag its cells as unknown (AUROC/AUPRC).
* ``ref_query``: train on the reference rows, predict the query rows (a reference/query pair entry
  of the catalogue, or ``reference_batches``).

A label-aware model (scANVI: its spec's ``uses_labels``) saw the labels of some cells; every protocol
whose test cells include one of those is skipped with the reason (only ref_query can run, when the
model saw reference labels only). A model that predicts labels itself is scored as probe ``own``
(ref_query) on the same test cells and metrics.

The target is the Cell Ontology id when the dataset declares one (so errors can be placed in the
ontology: LCAD, hierarchical F1), else the label. Probe hyper-parameters (k, C) are chosen on inner
folds from grids shared by every model (``probe_grid``) and recorded. Metric-suite ids are reported
per probe and protocol as ``<probe>_<protocol>_<id>``; the suite's primary is read for the first
probe and protocol.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics import Outcome
from scfm_bench.registry import TASKS
from scfm_bench.tasks._annot_probes import (Probe, ProbeGrid, chosen_summary, fit_probe, probe_outcomes, skipped, suite_ids,
                                            target_name)
from scfm_bench.tasks._base import CellOutputs, EmbeddingTask, EmbeddingTaskParams

Protocol = Literal["cv", "cross_batch", "fewshot", "novel", "ref_query"]


class AnnotationParams(EmbeddingTaskParams):
    probes: list[Probe] = Field(["knn", "logreg"], min_length=1, description="Probes to train: knn, logreg, rf.")
    protocols: list[Protocol] = Field(["cv", "cross_batch"], min_length=1,
                                      description="cv, cross_batch, fewshot, novel, ref_query (see the task's docs).")
    n_folds: int = Field(5, ge=2, description="Folds of the stratified cross-validation.")
    min_train_cells: int = Field(5, ge=1, description="cross_batch/ref_query: a class needs this many reference cells to be trained.")
    probe_grid: ProbeGrid = Field(default_factory=ProbeGrid, description="Hyper-parameter grids, the same for every model.")
    shots: list[int] = Field([1, 5, 10, 50], min_length=1, description="fewshot: labelled cells per class.")
    draws: int = Field(5, ge=1, description="fewshot: seeded stratified draws per shot count and seed.")
    novel_min_cells: int = Field(20, ge=2, description="novel: a type is held out in turn when it has this many cells.")
    novel_known_test_fraction: float = Field(0.2, gt=0, lt=1, description="novel: share of the known cells kept out of training as the 'known' test cells.")
    novel_k: int = Field(15, ge=1, description="novel: neighbours of the kNN-distance unknown score.")
    role_key: str = Field("scfm_role", description="ref_query: obs column with 'reference'/'query' (set by pair entries).")
    reference_batches: list[str] = Field(default_factory=list, description="ref_query: without a role column, these batches are the reference and the others the query.")


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


def _fold_outcomes(task, data, embedding, y, protocol, params, seed, suite) -> list[Outcome]:
    """cv and cross_batch: out-of-fold predictions of each probe, scored per fold."""
    try:
        splits, small = _splits(protocol, y, data.batch, params, seed)
    except CellSkipped as exc:
        return skipped([f"{p}_{protocol}_{i}" for p in params.probes for i in suite_ids(suite)], str(exc))
    test = np.concatenate([te for _, te in splits])
    folds = np.concatenate([np.full(len(te), f) for f, (_, te) in enumerate(splits)])
    outcomes = []
    for probe in params.probes:
        preds, chosen = [], []
        for tr, te in splits:
            est, info = fit_probe(probe, embedding[tr], y[tr], seed=seed, grid=params.probe_grid)
            preds.append(est.predict(embedding[te]))
            chosen.append(info)
        extra = {"probe": probe, "protocol": protocol, "n_test_cells": int(len(test)), "probe_params": chosen_summary(chosen),
                 "classes_excluded_from_training": small, "target": target_name(data)}
        outcomes += probe_outcomes(task.score, suite, X=embedding[test], y=y[test], pred=np.concatenate(preds), folds=folds,
                                   has_ontology=data.ontology_ids is not None, knn_method=params.knn_method,
                                   prefix=f"{probe}_{protocol}", extra=extra)
    return outcomes


@TASKS.register("annotation")
class Annotation(EmbeddingTask):
    key = "annotation"
    description = ("Annotate cell types with tuned kNN / logistic-regression / random-forest probes: CV, cross-batch, "
                   "few-shot, novel cell types, reference to query; LCAD, hierarchical F1.")
    Params = AnnotationParams
    needs_label = True
    default_suite = "annotation"
    reads_cell_outputs = True  # run() takes the model's CellOutputs: labels it saw, its own predictions

    @staticmethod
    def primary_id(suite, params) -> str | None:
        if not suite.primary:
            return None
        protocol = params.protocols[0]
        if protocol == "fewshot":
            protocol = f"fewshot{max(params.shots)}"
        if protocol == "novel":
            return f"{params.probes[0]}_novel_auroc_maxprob"
        return f"{params.probes[0]}_{protocol}_{suite.primary}"

    def run(self, data, embedding, *, params, seed, suite, cell_outputs: CellOutputs | None = None):
        from scfm_bench.tasks._annot_fewshot import fewshot_outcomes
        from scfm_bench.tasks._annot_novel import novel_ids, novel_outcomes
        from scfm_bench.tasks._annot_refquery import ref_query_outcomes

        y = data.ontology_ids if data.ontology_ids is not None else data.labels
        y = np.asarray(y).astype(str)
        cell_outputs = cell_outputs or CellOutputs()
        seen = cell_outputs.labels_seen
        outcomes: list[Outcome] = []
        for protocol in params.protocols:
            if seen is not None and seen.any() and protocol != "ref_query":
                # the protocol draws its own training cells, so its test cells include cells whose labels a
                # label-aware model (scANVI) trained on; retraining it per split is not done (cost: README)
                probes = [*params.probes, *(["own"] if cell_outputs.predictions is not None else [])]
                ids = (novel_ids(params.model_copy(update={"probes": probes}), suite) if protocol == "novel" else
                       [f"{p}_{protocol}{n if protocol == 'fewshot' else ''}_{i}" for p in probes
                        for n in (params.shots if protocol == "fewshot" else [""]) for i in suite_ids(suite)])
                outcomes += skipped(ids, f"{protocol}: the model trained on the labels of {int(seen.sum())} cells that this "
                                         "protocol tests on (label leakage); a label-aware model is scored by ref_query only")
                continue
            if protocol in ("cv", "cross_batch"):
                outcomes += _fold_outcomes(self, data, embedding, y, protocol, params, seed, suite)
            elif protocol == "fewshot":
                outcomes += fewshot_outcomes(self, data, embedding, y, params, seed, suite)
            elif protocol == "novel":
                outcomes += novel_outcomes(self, data, embedding, y, params, seed, suite)
            else:
                outcomes += ref_query_outcomes(self, data, embedding, y, params, seed, suite, cell_outputs)
        return outcomes
