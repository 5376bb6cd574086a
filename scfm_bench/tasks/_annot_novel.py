"""Novel cell-type detection: would a probe notice a cell type it was never trained on?

Each type with at least ``novel_min_cells`` cells is held out in turn (when >= 2 other types
remain). A seeded stratified share ``novel_known_test_fraction`` of the other cells is kept out too;
the probe trains on the remaining known cells. On the test cells (held-out type + kept-out known
cells) two unknown scores are compared with "is of the held-out type": 1 - max class probability
(per probe) and the mean distance to the ``novel_k`` nearest training cells (embedding only, the
same for every probe). AUROC and AUPRC are averaged over held-out types (values per type in params
``per_type``). The held-out cells' forced predictions are scored with the suite's ontology metrics
(LCAD: calling a held-out T cell "CD4 T cell" is a nearer miss than "B cell"), one fold per held-out
type. Ids: ``<probe>_novel_auroc_maxprob``, ``..._auprc_maxprob``, ``novel_auroc_knn_dist``,
``novel_auprc_knn_dist``, ``<probe>_novel_<ontology suite id>``.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics import Outcome
from scfm_bench.tasks._annot_probes import chosen_summary, fit_probe, probe_outcomes, skipped, target_name


def _known_split(y_known: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / test positions among the known cells; a class with < 2 cells stays in training."""
    rng = np.random.default_rng(seed)
    test = []
    for v in np.unique(y_known):
        idx = np.flatnonzero(y_known == v)
        n = int(round(fraction * len(idx))) if len(idx) >= 2 else 0
        test.append(rng.choice(idx, min(n, len(idx) - 1), replace=False))
    test = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(y_known)), test), test


def _auc(is_novel: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(is_novel, score)), float(average_precision_score(is_novel, score))


def novel_ids(params, suite) -> list[str]:
    ontology_ids = [m.id for m in suite.metrics if m.family == "ontology"]
    ids = [f"{p}_novel_{s}" for p in params.probes for s in ("auroc_maxprob", "auprc_maxprob", *ontology_ids)]
    return ids + ["novel_auroc_knn_dist", "novel_auprc_knn_dist"]


def novel_outcomes(task, data, embedding, y, params, seed, suite) -> list[Outcome]:
    from sklearn.neighbors import NearestNeighbors

    values, counts = np.unique(y, return_counts=True)
    held_types = [str(v) for v, c in zip(values, counts) if c >= params.novel_min_cells] if len(values) >= 3 else []
    if not held_types:
        return skipped(novel_ids(params, suite), f"novel needs >= 3 cell types, one of them with >= {params.novel_min_cells} cells.")
    per_type: dict[str, dict[str, dict[str, float]]] = {}  # score name -> held-out type -> {auroc, auprc}
    forced: dict[str, list[np.ndarray]] = {p: [] for p in params.probes}
    chosen: dict[str, list[dict]] = {p: [] for p in params.probes}
    held_cells = []
    for held in held_types:
        novel = np.flatnonzero(y == held)
        known = np.flatnonzero(y != held)
        tr_pos, te_pos = _known_split(y[known], params.novel_known_test_fraction, seed)
        train, test = known[tr_pos], np.concatenate([novel, known[te_pos]])
        is_novel = np.isin(test, novel)
        k = min(params.novel_k, len(train))
        dist = NearestNeighbors(n_neighbors=k).fit(embedding[train]).kneighbors(embedding[test])[0].mean(axis=1)
        auroc, auprc = _auc(is_novel, dist)
        per_type.setdefault("knn_dist", {})[held] = {"auroc": auroc, "auprc": auprc}
        for probe in params.probes:
            est, info = fit_probe(probe, embedding[train], y[train], seed=seed, grid=params.probe_grid)
            chosen[probe].append(info)
            auroc, auprc = _auc(is_novel, 1.0 - est.predict_proba(embedding[test]).max(axis=1))
            per_type.setdefault(f"{probe}_maxprob", {})[held] = {"auroc": auroc, "auprc": auprc}
            forced[probe].append(est.predict(embedding[novel]).astype(str))
        held_cells.append(novel)
    base = {"protocol": "novel", "held_out_types": held_types, "target": target_name(data),
            "known_test_fraction": params.novel_known_test_fraction}
    outcomes = []

    def summary(name: str, prefix: str, suffix: str, extra: dict) -> list[Outcome]:
        vals = per_type[name]
        return [Outcome(f"{prefix}_{m}_{suffix}", "annotation", True, float(np.mean([v[m] for v in vals.values()])),
                        params={**base, **extra, "per_type": {t: v[m] for t, v in vals.items()}})
                for m in ("auroc", "auprc")]

    outcomes += summary("knn_dist", "novel", "knn_dist", {"unknown_score": "mean distance to the k nearest training cells", "k": params.novel_k})
    cells = np.concatenate(held_cells)
    folds = np.concatenate([np.full(len(c), i) for i, c in enumerate(held_cells)])
    onto_suite = suite.model_copy(update={"metrics": [m for m in suite.metrics if m.family == "ontology"],
                                          "aggregates": [], "primary": None})
    for probe in params.probes:
        extra = {"probe": probe, "probe_params": chosen_summary(chosen[probe])}
        outcomes += summary(f"{probe}_maxprob", f"{probe}_novel", "maxprob", {**extra, "unknown_score": "1 - max class probability"})
        if onto_suite.metrics:
            outcomes += probe_outcomes(task.score, onto_suite, X=embedding[cells], y=y[cells],
                                       pred=np.concatenate(forced[probe]), folds=folds,
                                       has_ontology=data.ontology_ids is not None, knn_method=params.knn_method,
                                       prefix=f"{probe}_novel", extra={**base, **extra, "predictions": "forced"})
    return outcomes
