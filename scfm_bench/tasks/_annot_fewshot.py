"""Few-shot annotation: how many labelled cells per class does an embedding need?

For each shot count n, ``draws`` seeded stratified draws pick n training cells per class (classes
with at most n cells are left out and listed); every other cell of the kept classes is a test cell.
Each draw is one evaluation fold, so the suite's values are means over draws; per-draw macro-F1 and
balanced accuracy are recorded (params ``per_draw``) for confidence intervals and learning curves
(params ``shots``). Ids: ``<probe>_fewshot<n>_<id>``.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics import MetricInputs, Outcome
from scfm_bench.tasks._annot_probes import chosen_summary, fit_probe, probe_outcomes, skipped, suite_ids, target_name


def draw_shots(y: np.ndarray, shots: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Training indices (``shots`` per class), test indices (the rest of those classes), and the classes left out."""
    values, counts = np.unique(y, return_counts=True)
    kept = values[counts > shots]
    train = np.concatenate([rng.choice(np.flatnonzero(y == v), shots, replace=False) for v in kept]) if len(kept) else np.array([], int)
    test = np.setdiff1d(np.flatnonzero(np.isin(y, kept)), train)
    return np.sort(train), test, [str(v) for v in values[counts <= shots]]


def fewshot_outcomes(task, data, embedding, y, params, seed, suite) -> list[Outcome]:
    from scfm_bench.registry import METRICS

    classification = METRICS.get("classification")
    outcomes: list[Outcome] = []
    for shots in params.shots:
        rng = np.random.default_rng([seed, shots])
        draws = [draw_shots(y, shots, rng) for _ in range(params.draws)]
        left_out = draws[0][2]
        prefixes = [f"{p}_fewshot{shots}" for p in params.probes]
        if len(np.unique(y)) - len(left_out) < 2:
            outcomes += skipped([f"{p}_{i}" for p in prefixes for i in suite_ids(suite)],
                                f"fewshot with {shots} shots needs 2 classes with more than {shots} cells.")
            continue
        test = np.concatenate([te for _, te, _ in draws])
        folds = np.concatenate([np.full(len(te), d) for d, (_, te, _) in enumerate(draws)])
        for probe, prefix in zip(params.probes, prefixes):
            preds, chosen = [], []
            for tr, te, _ in draws:
                est, info = fit_probe(probe, embedding[tr], y[tr], seed=seed, grid=params.probe_grid)
                preds.append(est.predict(embedding[te]).astype(str))
                chosen.append(info)
            per_draw = [classification(MetricInputs(X=embedding[te], labels=y[te], predictions=p)).values
                        for (_, te, _), p in zip(draws, preds)]
            extra = {"probe": probe, "protocol": "fewshot", "shots": shots, "draws": params.draws,
                     "n_train_cells": int(len(draws[0][0])), "n_test_cells": int(len(draws[0][1])),
                     "classes_excluded_from_training": left_out, "probe_params": chosen_summary(chosen),
                     "per_draw": {k: [d[k] for d in per_draw] for k in ("macro_f1", "balanced_accuracy")},
                     "target": target_name(data)}
            outcomes += probe_outcomes(task.score, suite, X=embedding[test], y=y[test], pred=np.concatenate(preds),
                                       folds=folds, has_ontology=data.ontology_ids is not None,
                                       knn_method=params.knn_method, prefix=prefix, extra=extra)
    return outcomes
