"""Shared by the Cell Ontology metrics: load the ontology and map per-cell ids/names onto its graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from scfm_bench.exceptions import CellFailed
from scfm_bench.ontology import CellOntology, Mapping, load_ontology, map_to_ontology

CL_CITATION = "Cell Ontology (Diehl et al. 2016, J Biomed Semantics 7:44), as shipped by cellxgene-ontology-guide"


def check_ontology_option(options: dict[str, Any]) -> None:
    """Suite-time check: a user ontology file (option ``ontology``) must load; raises DataError naming it."""
    if options.get("ontology") is not None:
        load_ontology(options["ontology"])


def mapped_ids(ontology_ids, ontology: str | CellOntology | None, *, max_unmapped: float) -> tuple[CellOntology, Mapping, dict[str, Any]]:
    """Map every cell's value onto the graph; fail when more than ``max_unmapped`` of the cells stay unmapped."""
    onto = ontology if isinstance(ontology, CellOntology) else load_ontology(ontology)
    m = map_to_ontology(ontology_ids, onto)
    n = len(m.ids)
    if n == 0 or m.n_unmapped_cells > max_unmapped * n:
        shown = ", ".join(f"{v!r} ({c} cells)" for v, c in sorted(m.unmapped.items())[:10])
        raise CellFailed(f"{m.n_unmapped_cells} of {n} cells have labels that are neither Cell Ontology ids nor CL "
                         f"names/synonyms (more than {max_unmapped:.0%}): {shown}. Fix: give the dataset a column of "
                         "CL ids (fields.ontology_id) or use CL names.")
    return onto, m, {**onto.info, **m.report()}


def per_fold(folds, n: int) -> list[np.ndarray]:
    """Index arrays of each evaluation fold (one fold when none are given)."""
    if folds is None:
        return [np.arange(n)]
    folds = np.asarray(folds)
    return [np.flatnonzero(folds == f) for f in np.unique(folds)]
