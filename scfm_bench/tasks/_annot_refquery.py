"""Reference -> query annotation: train on the reference cells, predict the query cells.

Roles come from the obs column ``role_key`` ("reference"/"query"; written by a reference/query pair
entry of the catalogue, whose embedding is computed once over both sides), else from
``reference_batches`` (those batches are the reference, the others the query). Reference classes
with fewer than ``min_train_cells`` cells are not trained. Query cells are scored when their type
is a trained class or, with Cell Ontology ids, a direct parent or child of one (such cells can only
be right at distance 1); the others are counted and listed. The suite's ``ontology_accuracy``
reports exact and within-distance-1 accuracy separately. A model with its own predictions (scANVI) is
scored as probe ``own`` on the same query cells. Ids: ``<probe>_ref_query_<id>``.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics import Outcome
from scfm_bench.tasks._annot_probes import fit_probe, probe_outcomes, skipped, suite_ids, target_name


def roles(data, params) -> np.ndarray:
    """'reference' / 'query' (or anything else: unused) per cell; raises CellSkipped when none are declared."""
    obs = data.adata.obs
    if params.role_key in obs:
        return obs[params.role_key].astype(str).to_numpy()
    if params.reference_batches and data.batch is not None:
        unknown = sorted(set(params.reference_batches) - set(data.batch))
        if unknown:
            raise CellSkipped(f"ref_query: reference_batches {unknown} are not batches of this dataset "
                              f"(batches: {sorted(set(data.batch))[:20]}).")
        return np.where(np.isin(data.batch, params.reference_batches), "reference", "query")
    raise CellSkipped(f"ref_query needs a reference/query pair entry (obs column {params.role_key!r}) or "
                      "params.reference_batches with a batch key.")


def _matchable(query_y: np.ndarray, trained: np.ndarray, suite) -> np.ndarray:
    """Query cells whose type is a trained class or a direct parent/child of one in the Cell Ontology."""
    from scfm_bench.ontology import load_ontology, map_to_ontology

    option = next((m.kwargs["ontology"] for m in suite.metrics if m.kwargs.get("ontology")), None)
    onto = load_ontology(option)
    t_ids = set(map_to_ontology(trained, onto).ids) - {""}
    near = t_ids | {p for t in t_ids for p in onto.parents.get(t, ())}
    near |= {c for c in onto.nodes if any(p in t_ids for p in onto.parents.get(c, ()))}
    mapped = map_to_ontology(query_y, onto).ids
    return np.isin(query_y, trained) | np.isin(mapped, sorted(near - {""}))


def ref_query_outcomes(task, data, embedding, y, params, seed, suite, cell_outputs) -> list[Outcome]:
    own = cell_outputs.predictions
    ids = [f"{p}_ref_query_{i}" for p in [*params.probes, *(["own"] if own is not None else [])] for i in suite_ids(suite)]
    try:
        role = roles(data, params)
    except CellSkipped as exc:
        return skipped(ids, str(exc))
    ref, query = np.flatnonzero(role == "reference"), np.flatnonzero(role == "query")
    values, counts = np.unique(y[ref], return_counts=True)
    trained = values[counts >= params.min_train_cells]
    if len(trained) < 2 or len(query) == 0:
        return skipped(ids, f"ref_query needs >= 2 reference classes with >= {params.min_train_cells} cells and some "
                            f"query cells (have {len(trained)} classes, {len(query)} query cells).")
    ref = ref[np.isin(y[ref], trained)]
    keep = _matchable(y[query], trained, suite) if data.ontology_ids is not None else np.isin(y[query], trained)
    unmatched = {str(v): int(c) for v, c in zip(*np.unique(y[query][~keep], return_counts=True))}
    query = query[keep]
    if cell_outputs.labels_seen is not None and cell_outputs.labels_seen[query].any():
        return skipped(ids, f"ref_query: the model trained on the labels of {int(cell_outputs.labels_seen[query].sum())} "
                            "query cells (label leakage): give it the same reference (pair entry or reference_batches)")
    outcomes = []
    for probe in params.probes:
        est, info = fit_probe(probe, embedding[ref], y[ref], seed=seed, grid=params.probe_grid)
        extra = {"probe": probe, "protocol": "ref_query", "n_reference_cells": int(len(ref)), "n_query_cells": int(len(query)),
                 "query_cells_unmatched": unmatched, "probe_params": info, "target": target_name(data),
                 "classes_trained": [str(v) for v in trained]}
        outcomes += probe_outcomes(task.score, suite, X=embedding[query], y=y[query], pred=est.predict(embedding[query]),
                                   folds=None, has_ontology=data.ontology_ids is not None, knn_method=params.knn_method,
                                   prefix=f"{probe}_ref_query", extra=extra)
    if own is not None:
        # the model's own classifier predicts dataset labels: map them to the target through the reference rows
        vocab = dict(zip(data.labels[ref], y[ref]))
        pred = np.array([vocab.get(p, p) for p in own[query]])
        extra = {"probe": "own", "protocol": "ref_query", "n_reference_cells": int(len(ref)), "n_query_cells": int(len(query)),
                 "query_cells_unmatched": unmatched, "target": target_name(data)}
        outcomes += probe_outcomes(task.score, suite, X=embedding[query], y=y[query], pred=pred, folds=None,
                                   has_ontology=data.ontology_ids is not None, knn_method=params.knn_method,
                                   prefix="own_ref_query", extra=extra)
    return outcomes
